//! The expiry rules of the store's writes: the store's settings a
//! session's own lifetime combines with (see `lifetime::Rules`), and the
//! clock a write is planned with.

use std::time::SystemTime;

use mongodb::bson::DateTime;

use super::MongoSessionStore;
use crate::{
    lifetime::{Rules, SessionLifetime},
    write::Clock,
};

impl MongoSessionStore {
    /// The store's settings a session's own lifetime combines with.
    pub(super) fn rules(&self) -> Rules {
        Rules {
            idle_timeout: self.inner.config.idle_timeout,
            absolute_timeout: self.inner.layout.absolute_timeout,
            limit: self.inner.layout.lifetime_limit,
            touch_after: self.inner.config.touch_after,
        }
    }

    /// The expiry rules of a write at this moment for a session with `own`
    /// lifetime: `expires` (or now + ttl), or its own idle window, capped at
    /// the absolute lifetime from `created_at` (ms) — or by the server, when
    /// the creation time is not known here.
    pub(super) fn clock(
        &self,
        expires: Option<SystemTime>,
        created_at: Option<i64>,
        own: Option<SessionLifetime>,
    ) -> Clock {
        let now = DateTime::now();
        let expiry = self.rules().expiry(now, expires, created_at, own);
        Clock {
            now,
            expires: expiry.expires,
            touch_after: expiry.window,
            cap_on_server: expiry.cap_on_server,
            stored: None,
        }
    }
}
