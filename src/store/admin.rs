//! Operations on the whole collection: rewrap (in bounded batches),
//! listing, counting, clearing.

use std::sync::Arc;

use futures_util::{stream::BoxStream, StreamExt, TryStreamExt};
use mongodb::bson::{doc, DateTime, Document};

use super::MongoSessionStore;
use crate::{
    batch::{BatchOptions, Incomplete},
    error::{Error, Result},
    id::RedactedId,
    observe::{observed, Op},
    outcome::{stored_session, RewrapEvent, RewrapReport, StoredSession},
};

impl MongoSessionStore {
    /// Re-encrypts every session not yet under the key ring's primary key
    /// (after a rotation), one compare-and-swap per session so that
    /// concurrent requests are never overwritten, in batches of 1,000 (see
    /// [`rewrap_with`](Self::rewrap_with)). Sessions are also re-encrypted
    /// by their own next write; this finishes the job so the old key can be
    /// retired.
    ///
    /// # Errors
    ///
    /// [`Error::is_config`](crate::Error::is_config) without encryption; server errors and timeouts.
    pub async fn rewrap(&self) -> Result<RewrapReport> {
        self.rewrap_with(BatchOptions::default(), |_| {})
            .await
            .map_err(Error::from)
    }

    /// [`rewrap`](Self::rewrap), a batch of [`size`](BatchOptions::size)
    /// documents at a time: each batch is read in one round trip, and its
    /// stale sessions are written back [`concurrency`](BatchOptions::concurrency)
    /// at a time, each a compare-and-swap on its version. `observe` hears of
    /// each document skipped as undecodable, and of the totals after each
    /// batch. Idempotent: a run cut short is finished by running it again
    /// (documents already under the primary key are only read).
    ///
    /// # Errors
    ///
    /// [`Incomplete`] with what the completed batches did, and the error
    /// that stopped it (as [`rewrap`](Self::rewrap)'s).
    pub async fn rewrap_with(
        &self,
        options: BatchOptions,
        mut observe: impl FnMut(RewrapEvent<'_>),
    ) -> Result<RewrapReport, Incomplete<RewrapReport>> {
        let mut report = RewrapReport::default();
        let rewrap = self.rewrap_unobserved(options, &mut observe, &mut report);
        let result = observed(Op::Rewrap, None, rewrap).await;
        result.map_err(|error| Incomplete::new(report, error))
    }

    async fn rewrap_unobserved(
        &self,
        options: BatchOptions,
        observe: &mut impl FnMut(RewrapEvent<'_>),
        report: &mut RewrapReport,
    ) -> Result<RewrapReport> {
        if self.inner.layout.encryption.is_none() {
            return Err(Error::config("rewrap needs encryption to be configured"));
        }
        let find = self
            .inner
            .collection
            .find(doc! {})
            .batch_size(options.cursor_batch());
        // One round trip (the cursor's batch) per batch.
        let (mut cursor, mut batch) = self.open_batches(find, options.size).await?;
        loop {
            if batch.is_empty() {
                return Ok(*report);
            }
            let mut tally = RewrapReport {
                examined: batch.len() as u64,
                ..RewrapReport::default()
            };
            let mut writes = Vec::new();
            for document in &batch {
                match self.rewrap_update(document) {
                    Ok(Some(write)) => writes.push(write),
                    Ok(None) => {}
                    // A newer format's is not this release's to rewrite.
                    Err(error) if error.is_decode() || error.is_newer_format() => {
                        tally.undecodable += 1;
                        let layout = &self.inner.layout;
                        let id = document.get(&layout.fields.id).map(ToString::to_string);
                        let session = RedactedId::new(id.as_deref().unwrap_or_default());
                        tracing::warn!(%session, %error, "rewrap: skipped an undecodable session");
                        observe(RewrapEvent::Undecodable {
                            session,
                            error: &error,
                        });
                    }
                    Err(error) => return Err(error),
                }
            }
            let writes = writes
                .into_iter()
                .map(|(stored_id, filter, update)| async move {
                    let result = self
                        .run("update", self.inner.collection.update_one(filter, update))
                        .await;
                    self.evict(&stored_id);
                    Ok::<_, Error>(result?.matched_count > 0)
                });
            let written: Vec<bool> = futures_util::stream::iter(writes)
                .buffer_unordered(options.concurrency.max(1))
                .try_collect()
                .await?;
            for matched in written {
                if matched {
                    tally.rewrapped += 1;
                } else {
                    tally.skipped += 1;
                }
            }
            report.add(tally);
            observe(RewrapEvent::Progress(report));
            batch = self.next_batch(&mut cursor, options.size).await?;
        }
    }

    /// The compare-and-swap that re-encrypts `document` under the primary
    /// key (its stored id, filter and update), or `None` if it needs none.
    fn rewrap_update(&self, document: &Document) -> Result<Option<(String, Document, Document)>> {
        let layout = &self.inner.layout;
        let decoded = layout.decode(document)?;
        if decoded.stale.is_empty() {
            return Ok(None);
        }
        let mut filter = doc! { &layout.fields.id: &decoded.stored_id };
        layout.version_filter(&mut filter, decoded.version);
        layout.newer_excluded(&mut filter);
        let mut set = Document::new();
        set.insert(
            &layout.fields.data,
            layout.encode_values(&decoded.stored_id, &decoded.data)?,
        );
        set.extend(layout.format_stamp());
        let mut update = doc! { "$set": set };
        if let Some(version) = &layout.fields.version {
            update.insert("$inc", doc! { version: 1_i64 });
        }
        Ok(Some((decoded.stored_id, filter, update)))
    }

    /// Every live session, streamed from a cursor (never collected in
    /// memory). connect-mongo's `all`, which returns an array.
    ///
    /// # Errors
    ///
    /// Starting the query can fail like any operation; each item is
    /// a decode error if that document is malformed.
    pub async fn all(&self) -> Result<BoxStream<'static, Result<StoredSession>>> {
        observed(Op::All, None, self.all_unobserved()).await
    }

    async fn all_unobserved(&self) -> Result<BoxStream<'static, Result<StoredSession>>> {
        let mut filter = Document::new();
        self.inner
            .layout
            .restrict_to_live(&mut filter, DateTime::now());
        let cursor = self.run("find", self.inner.collection.find(filter)).await?;
        let inner = Arc::clone(&self.inner);
        let bound = self.inner.config.operation_timeout;
        Ok(cursor
            .map_err(move |e| Error::from_driver("find", bound, e))
            .and_then(move |document| {
                let item = stored_session(&inner.layout, &document);
                async move { item }
            })
            .boxed())
    }

    /// How many live (unexpired) sessions there are. connect-mongo's
    /// `length`, which also counted expired ones.
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn length(&self) -> Result<u64> {
        observed(Op::Length, None, self.length_unobserved()).await
    }

    async fn length_unobserved(&self) -> Result<u64> {
        let mut filter = Document::new();
        self.inner
            .layout
            .restrict_to_live(&mut filter, DateTime::now());
        self.run("count", self.inner.collection.count_documents(filter))
            .await
    }

    /// Deletes every session and keeps the collection and its indexes
    /// (connect-mongo 4/5 dropped the collection, TTL index included).
    /// Returns how many were deleted. One `deleteMany` (connect-mongo's
    /// `clear`, for tests and development): to empty a large collection
    /// in bounded round trips, drop it or use `mongodb-sessions`.
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn clear(&self) -> Result<u64> {
        observed(Op::Clear, None, self.clear_unobserved()).await
    }

    async fn clear_unobserved(&self) -> Result<u64> {
        let result = self
            .run("deleteMany", self.inner.collection.delete_many(doc! {}))
            .await;
        self.evict_all();
        Ok(result?.deleted_count)
    }
}
