//! Ending sessions: a delete recorded in the lineage's endings record
//! before the session goes (see `crate::endings`).

use futures_util::future::join_all;
use mongodb::{
    bson::{doc, DateTime, Document},
    options::ReturnDocument,
};

use super::MongoSessionStore;
use crate::{
    endings::{self, Record},
    error::Result,
    events::EventKind,
    id::is_plausible,
    observe::{observed, Op},
    schema::{LINEAGE_FIELD, USER_FIELD},
};

impl MongoSessionStore {
    /// Ends a session (a logout); `true` if there was one.
    ///
    /// The ending is recorded before the session is deleted, and ends its
    /// whole lineage: a regeneration of the session in flight on any
    /// instance stores nothing, and a session already regenerated from this
    /// id is ended too. An id that names no session, and never did, costs
    /// two reads and writes nothing.
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn delete(&self, id: &str) -> Result<bool> {
        observed(Op::Delete, Some(id), self.delete_unobserved(id)).await
    }

    async fn delete_unobserved(&self, id: &str) -> Result<bool> {
        if !is_plausible(id) {
            return Ok(false);
        }
        let layout = &self.inner.layout;
        let key = layout.stored_id(id);
        let deadline = self.deadline();
        let id_field = &layout.fields.id;
        let find = self
            .inner
            .collection
            .find_one(doc! { id_field: &key })
            .projection(doc! { LINEAGE_FIELD: 1, USER_FIELD: 1 });
        let found = self.run_until("find", find, deadline).await?;
        let token = endings::token();
        let now = DateTime::now();
        let record = match &found {
            // Recorded first: whoever then finds the session gone finds this.
            Some(session) => {
                let lineage = layout.lineage(&key, session.get_str(LINEAGE_FIELD).ok());
                let user = session.get_str(USER_FIELD).ok();
                let update = endings::append(&token, Some(&key), user, now);
                self.record_ending(doc! { "_id": lineage }, update, true, deadline)
                    .await?
            }
            // Gone already: a regeneration's or another logout's delete came
            // first, and recorded it — or there never was such a session,
            // and nothing is written.
            None => {
                let update = endings::append(&token, None, None, now);
                self.record_ending(doc! { "ids": &key }, update, false, deadline)
                    .await?
            }
        };
        let Some(record) = record else {
            self.evict(&key);
            self.inner.hints.forget(id);
            return Ok(false);
        };
        self.inner.pending.put(layout.handle(&key), token);
        let mut victims: Vec<String> = found.iter().map(|_| key.clone()).collect();
        victims.extend(record.successors().map(str::to_string));
        self.delete_sessions(victims, deadline).await?;
        self.inner.hints.forget(id);
        let deleted = found.is_some();
        if deleted {
            self.inner.events.emit(id, &[EventKind::Destroy]);
        }
        Ok(deleted)
    }

    /// Appends an ending to the lineage record `filter` finds (creating it
    /// when `create`), and returns the record as it now is.
    pub(super) async fn record_ending(
        &self,
        filter: Document,
        update: Document,
        create: bool,
        deadline: tokio::time::Instant,
    ) -> Result<Option<Record>> {
        let append = self
            .inner
            .endings
            .find_one_and_update(filter.clone(), update)
            .upsert(create)
            .return_document(ReturnDocument::After);
        let mut record = self.run_until("update", append, deadline).await?;
        if record.is_none() && create {
            // An upsert always leaves a document to return, but SecantusDB
            // (the test server) answers none for the second of two racing
            // upserts, having applied it: read it back.
            let find = self.inner.endings.find_one(filter);
            record = self.run_until("find", find, deadline).await?;
        }
        Ok(record.as_ref().map(Record::parse))
    }

    /// Deletes the sessions stored under `keys`, and waits (bounded) until
    /// every instance's cache has been told; how many there were.
    pub(super) async fn delete_sessions(
        &self,
        mut keys: Vec<String>,
        deadline: tokio::time::Instant,
    ) -> Result<u64> {
        keys.sort_unstable();
        keys.dedup();
        if keys.is_empty() {
            return Ok(0);
        }
        let pending = self.expect_changes();
        if keys.len() >= super::bulk_endings::BULK_FROM {
            // A user's many sessions: a `deleteMany` per batch of ids.
            let mut deleted = 0;
            let result = self.delete_in_bulk(&keys, &mut deleted).await;
            let changed = usize::try_from(deleted).unwrap_or(usize::MAX);
            self.settle(pending, &keys, changed).await;
            return result.map(|()| deleted);
        }
        // One delete per session, by id equality: each is a retryable write
        // and, on a sharded collection, goes to one shard. There are rarely
        // more than one or two.
        let id_field = &self.inner.layout.fields.id;
        let deletes = keys.iter().map(|key| {
            let delete = self.inner.collection.delete_one(doc! { id_field: key });
            self.run_until("delete", delete, deadline)
        });
        let mut deleted = 0;
        let mut failed = None;
        for result in join_all(deletes).await {
            match result {
                Ok(result) => deleted += result.deleted_count,
                Err(e) => failed = Some(e),
            }
        }
        // Only sessions that were still there produce change events.
        let changed = usize::try_from(deleted).unwrap_or(usize::MAX);
        self.settle(pending, &keys, changed).await;
        match failed {
            Some(e) => Err(e),
            None => Ok(deleted),
        }
    }
}
