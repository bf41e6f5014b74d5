//! Touching a session: its expiry moved, its data left alone.

use std::time::SystemTime;

use mongodb::bson::{doc, DateTime};

use super::MongoSessionStore;
use crate::{
    error::Result,
    events::EventKind,
    id::is_plausible,
    observe::{observed, Op},
    write::{touch_update, Clock},
};

impl MongoSessionStore {
    /// Moves a live session's expiry forward without touching its data
    /// (connect-mongo's `touch`). Within `touch_after` of the session's last
    /// write it writes nothing. Returns whether the expiry moved; a session
    /// that no longer exists is not an error (connect-mongo #469/#471).
    /// `expires: None` means now + [`ttl`](Self::ttl).
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn touch(&self, id: &str, expires: Option<SystemTime>) -> Result<bool> {
        observed(Op::Touch, Some(id), self.touch_unobserved(id, expires)).await
    }

    async fn touch_unobserved(&self, id: &str, expires: Option<SystemTime>) -> Result<bool> {
        if !is_plausible(id) {
            return Ok(false);
        }
        let layout = &self.inner.layout;
        let now = DateTime::now();
        let window = self.inner.config.touch_after;
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        if let Some(last) = self.inner.hints.get(id) {
            if now.timestamp_millis().saturating_sub(last) < window_ms {
                return Ok(false);
            }
        }
        let mut filter = layout.live_filter(id, now);
        if let (Some(field), false) = (&layout.fields.last_modified, window.is_zero()) {
            let threshold = DateTime::from_system_time(now.to_system_time() - window);
            // `$not` also matches documents without the field.
            filter.insert(field, doc! { "$not": { "$gte": threshold } });
        }
        let clock = Clock {
            now,
            ..self.clock(expires, None)
        };
        let update = touch_update(layout, clock);
        let result = self
            .run("update", self.inner.collection.update_one(filter, update))
            .await;
        if self.inner.cache.is_some() {
            self.evict(&layout.stored_id(id));
        }
        let result = result?;
        let touched = result.matched_count > 0;
        if touched {
            self.hint(id, now);
            self.inner.events.emit(id, &[EventKind::Touch]);
        }
        Ok(touched)
    }
}
