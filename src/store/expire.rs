//! Removing expired sessions, a bounded batch at a time.

use mongodb::{
    bson::{doc, Bson, DateTime, Document},
    Collection,
};

use super::MongoSessionStore;
use crate::{
    batch::{BatchOptions, Incomplete},
    error::{Error, Result},
    observe::{observed, Op},
};

/// Batches per cursor of a purge (see `purge`).
const SEGMENT: usize = 100;

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
    /// [`size`](BatchOptions::size) at a time. A cursor reads the expired
    /// sessions' ids, a batch per round trip (the `find`, then a `getMore`
    /// each, a new cursor every 100 batches), and each batch is deleted by
    /// one `deleteMany` of those ids that repeats the expiry condition, so a
    /// session touched meanwhile stays. The read of the next batch overlaps
    /// the delete of this one. Every round trip is bounded by the operation
    /// timeout however many sessions have expired. `progress` is called
    /// after each batch with the number deleted so far.
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
        let sessions = &self.inner.collection;
        let expired = self.inner.layout.expired_filter(now);
        self.purge(sessions, expired, options, deleted, progress)
            .await?;
        // Without a TTL index on the sessions (AutoRemove::Interval or
        // Disabled), the endings records are not reaped by one either.
        if self.inner.indexes.ttl.is_none() {
            let expired = doc! { "expires": { "$lte": now } };
            self.purge(&self.inner.endings, expired, options, &mut 0, &mut |_| {})
                .await?;
        }
        Ok(*deleted)
    }

    /// Deletes the documents of `collection` that match `expired`, a batch
    /// at a time, adding each batch's count to `deleted`.
    ///
    /// The expired documents are read through cursors of at most
    /// [`SEGMENT`] batches, each batch one round trip; a cursor's next
    /// batch is read while its last one is deleted. A new cursor after each
    /// segment, rather than one for the whole run, because some servers
    /// (SecantusDB) gather a cursor's every result before they answer its
    /// first batch: a round trip that would grow with the collection.
    async fn purge(
        &self,
        collection: &Collection<Document>,
        expired: Document,
        options: BatchOptions,
        deleted: &mut u64,
        progress: &mut impl FnMut(u64),
    ) -> Result<()> {
        let segment = i64::try_from(options.size.saturating_mul(SEGMENT)).unwrap_or(i64::MAX);
        loop {
            let find = collection
                .find(expired.clone())
                .projection(doc! { "_id": 1 })
                .batch_size(options.cursor_batch())
                .limit(segment);
            let (mut cursor, first) = self.open_batches(find, options.size).await?;
            let mut ids = ids_of(first);
            let before = *deleted;
            if ids.is_empty() {
                return Ok(());
            }
            while !ids.is_empty() {
                // `$and`, not `_id` beside the condition's top-level `$or`:
                // so written, a planner that plans each `$or` branch on its
                // own (SecantusDB's) scans the collection for every batch.
                let filter = doc! { "$and": [{ "_id": { "$in": ids } }, expired.clone()] };
                let delete = self.run("deleteMany", collection.delete_many(filter));
                let next = self.next_batch(&mut cursor, options.size);
                let (done, next) = tokio::join!(delete, next);
                *deleted += done?.deleted_count;
                progress(*deleted);
                ids = ids_of(next?);
            }
            // A segment that deleted nothing of what it found (touched
            // since, or taken by another purge running beside this one)
            // ends the run: a server that found what it then would not
            // delete would otherwise be asked again forever.
            if *deleted == before {
                return Ok(());
            }
        }
    }
}

fn ids_of(documents: Vec<Document>) -> Vec<Bson> {
    documents
        .into_iter()
        .filter_map(|mut d| d.remove("_id"))
        .collect()
}
