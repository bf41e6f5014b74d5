//! Reading a session.

use mongodb::bson::{doc, DateTime};

use super::MongoSessionStore;
use crate::{
    cache::SessionCache, error::Result, id::is_plausible, observe, outcome::LoadedSession,
};

/// How a loaded session's expiry will be moved, which decides whether the
/// load is worth remembering for [`touch`](MongoSessionStore::touch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Touches {
    /// By [`touch`](MongoSessionStore::touch), which is given only the id
    /// (actix-session's `update_ttl`, connect-mongo's `touch`): the load's
    /// last-write time lets a touch inside `touch_after` skip its round trip.
    ById,
    /// By a save of the map the load returned, which carries that time
    /// itself (tower-sessions): nothing to remember.
    #[cfg_attr(not(feature = "tower-sessions"), allow(dead_code))]
    BySave,
}

impl MongoSessionStore {
    /// Loads a live session: `None` if there is none, or it has expired
    /// (even if the server has not removed it yet).
    ///
    /// # Errors
    ///
    /// [`Error::is_decode`](crate::Error::is_decode) if the stored document is malformed (the error
    /// names the field); timeouts and server errors as for every operation.
    pub async fn load(&self, id: &str) -> Result<Option<LoadedSession>> {
        self.load_with(id, Touches::ById).await
    }

    /// [`load`](Self::load) for a caller that says how the session's expiry
    /// will be moved.
    pub(crate) async fn load_with(
        &self,
        id: &str,
        touches: Touches,
    ) -> Result<Option<LoadedSession>> {
        let cached = self.inner.cache.is_some();
        observe::observed_load(id, cached, self.load_unobserved(id, touches)).await
    }

    async fn load_unobserved(&self, id: &str, touches: Touches) -> Result<Option<LoadedSession>> {
        if !is_plausible(id) {
            return Ok(None);
        }
        let layout = &self.inner.layout;
        let key = layout.stored_id(id);
        let now = DateTime::now();
        let cache = self.inner.cache.as_deref();
        if let Some(hit) = cache.and_then(|c| c.get(&key)) {
            if hit.is_live(now, layout) {
                observe::note_cache_hit();
                return Ok(Some(hit));
            }
        }
        let ticket = cache.map(SessionCache::ticket);
        // By id alone, liveness checked here: an equality on the id is the
        // server's fastest path (mongod's IDHACK), measurably faster than
        // the same lookup with an expiry range beside it.
        let filter = doc! { &layout.fields.id: &key };
        let found = self.run("find", self.inner.raw.find_one(filter)).await?;
        let Some(document) = found else {
            return Ok(None);
        };
        let decoded = layout.decode_raw(&document)?;
        let loaded = LoadedSession::new(decoded, layout);
        if !loaded.is_live(now, layout) {
            return Ok(None);
        }
        if let (Some(last_modified), Touches::ById) = (loaded.last_modified, touches) {
            if self.rules().full_window(loaded.lifetime) {
                self.hint(id, DateTime::from_system_time(last_modified));
            } else {
                self.inner.hints.forget(id);
            }
        }
        if let (Some(cache), Some(ticket)) = (cache, ticket) {
            cache.insert(key, &loaded, ticket);
        }
        Ok(Some(loaded))
    }
}
