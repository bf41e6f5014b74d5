//! Reading a session.

use mongodb::bson::{doc, DateTime};

use super::MongoSessionStore;
use crate::{
    cache::SessionCache, error::Result, id::is_plausible, observe, outcome::LoadedSession,
};

impl MongoSessionStore {
    /// Loads a live session: `None` if there is none, or it has expired
    /// (even if the server has not removed it yet).
    ///
    /// # Errors
    ///
    /// [`Error::is_decode`](crate::Error::is_decode) if the stored document is malformed (the error
    /// names the field); timeouts and server errors as for every operation.
    pub async fn load(&self, id: &str) -> Result<Option<LoadedSession>> {
        let cached = self.inner.cache.is_some();
        observe::observed_load(id, cached, self.load_unobserved(id)).await
    }

    async fn load_unobserved(&self, id: &str) -> Result<Option<LoadedSession>> {
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
        if let Some(last_modified) = loaded.last_modified {
            self.hint(id, DateTime::from_system_time(last_modified));
        }
        if let (Some(cache), Some(ticket)) = (cache, ticket) {
            cache.insert(key, &loaded, ticket);
        }
        Ok(Some(loaded))
    }
}
