//! Ending sessions.

use mongodb::bson::doc;

use super::MongoSessionStore;
use crate::{
    error::Result,
    events::EventKind,
    id::is_plausible,
    observe::{observed, Op},
};

impl MongoSessionStore {
    /// Deletes a session; `true` if there was one.
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
        let filter = doc! { &layout.fields.id: &key };
        let pending = self.expect_changes();
        let result = self
            .run("delete", self.inner.collection.delete_one(filter))
            .await;
        let result = match result {
            Ok(result) if result.deleted_count > 0 => {
                self.settle(pending, std::slice::from_ref(&key)).await;
                result
            }
            other => {
                self.evict(&key);
                other?
            }
        };
        if result.deleted_count == 0 {
            // Someone else ended it first: an id regeneration that follows
            // this delete must not bring the data back (see `vanished`).
            self.inner.vanished.insert(layout.handle(&key), ());
        }
        self.inner.hints.forget(id);
        let deleted = result.deleted_count > 0;
        if deleted {
            self.inner.events.emit(id, &[EventKind::Destroy]);
        }
        Ok(deleted)
    }
}
