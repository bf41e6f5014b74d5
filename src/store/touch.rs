//! Touching a session: its expiry moved, its data left alone.

use std::time::SystemTime;

use mongodb::bson::DateTime;

use super::MongoSessionStore;
use crate::{
    error::Result,
    events::EventKind,
    id::is_plausible,
    observe::{observed, Op},
    schema::and,
    write::{touch_update, Clock},
};

impl MongoSessionStore {
    /// Moves a live session's expiry forward without touching its data
    /// (connect-mongo's `touch`). Within `touch_after` of the session's last
    /// write it writes nothing. Returns whether the expiry moved; a session
    /// that no longer exists is not an error (connect-mongo #469/#471).
    ///
    /// A session with an idle window of its own
    /// ([`SessionLifetime`](crate::SessionLifetime)) moves by that window,
    /// not by `expires`, and is capped at its own absolute lifetime: the
    /// server applies what the document stores. A session of a newer
    /// document format is never written, and answers `false`.
    /// `expires: None` means now + [`idle_timeout`](Self::idle_timeout).
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
        let stored_id = layout.stored_id(id);
        let mut filter = layout.write_filter(&stored_id, now);
        let rules = self.rules();
        let due = (layout.fields.last_modified.as_deref()).and_then(|f| rules.touch_due(f, now));
        if let Some(due) = due {
            and(&mut filter, due);
        }
        // The session's own lifetime is not known here: the server applies
        // the one stored (a session touched by id alone, or through
        // actix-session's `update_ttl`, which passes the global TTL).
        let clock = Clock {
            now,
            stored: Some(rules.stored()),
            ..self.clock(expires, None, None)
        };
        let update = touch_update(layout, clock);
        let result = self
            .run("update", self.inner.collection.update_one(filter, update))
            .await;
        if self.inner.cache.is_some() {
            self.evict(&stored_id);
        }
        let result = result?;
        let touched = result.matched_count > 0;
        if touched {
            // Only a session a load or save found fit for hints (see
            // `Rules::full_window`) has one to move forward.
            if self.inner.hints.get(id).is_some() {
                self.hint(id, now);
            }
            self.inner.events.emit(id, &[EventKind::Touch]);
        }
        Ok(touched)
    }
}
