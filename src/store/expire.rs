//! Removing expired sessions, a bounded batch at a time.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, DateTime, Document};

use super::MongoSessionStore;
use crate::{
    batch::{BatchOptions, Incomplete},
    error::{Error, Result},
    observe::{observed, Op},
};

impl MongoSessionStore {
    /// Deletes every expired session and returns how many, in batches of
    /// 1,000 (see [`delete_expired_with`](Self::delete_expired_with)). Only
    /// needed with [`AutoRemove::Disabled`](crate::AutoRemove::Disabled);
    /// the TTL index or the interval task does this otherwise.
    ///
    /// # Errors
    ///
    /// Server errors and timeouts. What the batches before the failure
    /// deleted stays deleted; `delete_expired_with` also says how many.
    pub async fn delete_expired(&self) -> Result<u64> {
        self.delete_expired_with(BatchOptions::default(), |_| {})
            .await
            .map_err(Error::from)
    }

    /// Deletes every session expired when the call began, a batch of
    /// [`size`](BatchOptions::size) at a time: each batch is one `find` of
    /// the next expired ids (in `_id` order, projected to `_id`) and one
    /// `deleteMany` of those ids that repeats the expiry condition, so a
    /// session touched meanwhile stays. Every round trip is bounded by the
    /// operation timeout however many sessions have expired. `progress` is
    /// called after each batch with the number deleted so far.
    ///
    /// Sessions are paged by `_id`, so the ids must be of one BSON type, as
    /// every layout writes them.
    ///
    /// # Errors
    ///
    /// [`Incomplete`] with the number the completed batches deleted, and the
    /// server error or timeout that stopped it; run it again to go on. A
    /// `deleteMany` that failed may still have deleted some of its batch on
    /// the server: those are in neither count.
    pub async fn delete_expired_with(
        &self,
        options: BatchOptions,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, Incomplete<u64>> {
        let mut deleted = 0;
        let purge = self.delete_expired_unobserved(options, &mut deleted, &mut progress);
        let result = observed(Op::DeleteExpired, None, purge).await;
        result.map_err(|error| Incomplete::new(deleted, error))
    }

    async fn delete_expired_unobserved(
        &self,
        options: BatchOptions,
        deleted: &mut u64,
        progress: &mut impl FnMut(u64),
    ) -> Result<u64> {
        // One cut-off for the whole run, so that it ends, and a session
        // touched meanwhile is not deleted.
        let now = DateTime::now();
        let mut after = None;
        loop {
            let ids = self.expired_ids(now, after.as_ref(), options).await?;
            let Some(last) = ids.last().cloned() else {
                break;
            };
            let full = ids.len() >= options.size;
            let mut filter = self.inner.layout.expired_filter(now);
            filter.insert("_id", doc! { "$in": ids });
            let result = self
                .run("deleteMany", self.inner.collection.delete_many(filter))
                .await?;
            *deleted += result.deleted_count;
            progress(*deleted);
            if !full {
                break;
            }
            after = Some(last);
        }
        // Without a TTL index on the sessions (AutoRemove::Interval or
        // Disabled), the endings records are not reaped by one either.
        if self.inner.indexes.ttl.is_none() {
            self.delete_expired_endings(now, options).await?;
        }
        Ok(*deleted)
    }

    /// Deletes the endings records (see `crate::endings`) past their
    /// retention, a batch at a time.
    async fn delete_expired_endings(&self, now: DateTime, options: BatchOptions) -> Result<()> {
        let expired = doc! { "expires": { "$lte": now } };
        loop {
            let find = self
                .inner
                .endings
                .find(expired.clone())
                .projection(doc! { "_id": 1 })
                .limit(options.limit())
                .batch_size(options.cursor_batch());
            let documents: Vec<Document> = self
                .run("find", async { find.await?.try_collect().await })
                .await?;
            let ids: Vec<Bson> = documents
                .into_iter()
                .filter_map(|mut d| d.remove("_id"))
                .collect();
            let full = ids.len() >= options.size;
            if ids.is_empty() {
                return Ok(());
            }
            let mut filter = expired.clone();
            filter.insert("_id", doc! { "$in": ids });
            let delete = self.inner.endings.delete_many(filter);
            self.run("deleteMany", delete).await?;
            if !full {
                return Ok(());
            }
        }
    }

    /// The `_id`s of the next batch of sessions expired at `now`, after
    /// `after`. The `_id` index is walked (hinted): it exists in every
    /// collection, and it keeps each batch's work to the documents between
    /// two batches, where an expiry index and a sort would read every expired
    /// document again for each batch.
    pub(super) async fn expired_ids(
        &self,
        now: DateTime,
        after: Option<&Bson>,
        options: BatchOptions,
    ) -> Result<Vec<Bson>> {
        let mut filter = self.inner.layout.expired_filter(now);
        if let Some(after) = after {
            filter.insert("_id", doc! { "$gt": after });
        }
        let find = self
            .inner
            .collection
            .find(filter)
            .projection(doc! { "_id": 1 })
            .sort(doc! { "_id": 1 })
            .hint(mongodb::options::Hint::Keys(doc! { "_id": 1 }))
            .limit(options.limit())
            .batch_size(options.cursor_batch());
        // The limit is the batch size: one round trip, no getMore.
        let documents: Vec<Document> = self
            .run("find", async { find.await?.try_collect().await })
            .await?;
        Ok(documents
            .into_iter()
            .filter_map(|mut d| d.remove("_id"))
            .collect())
    }
}
