//! Operations on the whole collection: rewrap, listing, counting, clearing.

use std::sync::Arc;

use futures_util::{stream::BoxStream, StreamExt, TryStreamExt};
use mongodb::bson::{doc, DateTime, Document};

use super::MongoSessionStore;
use crate::{
    error::{Error, Result},
    id::RedactedId,
    observe::{observed, Op},
    outcome::{stored_session, RewrapEvent, RewrapReport, StoredSession},
};

impl MongoSessionStore {
    /// Re-encrypts every session not yet under the key ring's primary key
    /// (after a rotation), one compare-and-swap per session so that
    /// concurrent requests are never overwritten. Sessions are also
    /// re-encrypted by their own next write; this finishes the job so the
    /// old key can be retired.
    ///
    /// # Errors
    ///
    /// [`Error::is_config`](crate::Error::is_config) without encryption; server errors and timeouts.
    pub async fn rewrap(&self) -> Result<RewrapReport> {
        self.rewrap_with(|_| {}).await
    }

    /// [`rewrap`](Self::rewrap), telling `observe` about each document
    /// looked at and each one skipped as undecodable. Idempotent: a run cut
    /// short is finished by running it again (documents already under the
    /// primary key are only read).
    ///
    /// # Errors
    ///
    /// As [`rewrap`](Self::rewrap).
    pub async fn rewrap_with(&self, observe: impl FnMut(RewrapEvent<'_>)) -> Result<RewrapReport> {
        observed(Op::Rewrap, None, self.rewrap_unobserved(observe)).await
    }

    async fn rewrap_unobserved(
        &self,
        mut observe: impl FnMut(RewrapEvent<'_>),
    ) -> Result<RewrapReport> {
        let layout = &self.inner.layout;
        if layout.encryption.is_none() {
            return Err(Error::config("rewrap needs encryption to be configured"));
        }
        let mut report = RewrapReport::default();
        let mut cursor = self
            .run("find", self.inner.collection.find(doc! {}))
            .await?;
        while let Some(document) = self.run("find", cursor.try_next()).await? {
            report.examined += 1;
            let decoded = match layout.decode(&document) {
                Ok(decoded) => decoded,
                Err(error) => {
                    report.undecodable += 1;
                    let id = document.get(&layout.fields.id).map(ToString::to_string);
                    let session = RedactedId::new(id.as_deref().unwrap_or_default());
                    tracing::warn!(%session, %error, "rewrap: skipped an undecodable session");
                    observe(RewrapEvent::Undecodable {
                        session,
                        error: &error,
                    });
                    observe(RewrapEvent::Progress(&report));
                    continue;
                }
            };
            if decoded.stale.is_empty() {
                observe(RewrapEvent::Progress(&report));
                continue;
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
            let result = self
                .run("update", self.inner.collection.update_one(filter, update))
                .await?;
            if result.matched_count > 0 {
                report.rewrapped += 1;
            } else {
                report.skipped += 1;
            }
            self.evict(&decoded.stored_id);
            observe(RewrapEvent::Progress(&report));
        }
        Ok(report)
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
    /// Returns how many were deleted.
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
