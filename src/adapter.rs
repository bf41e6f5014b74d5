//! What the framework adapters (`tower`, `actix`) share, so neither
//! repeats it.

use crate::{
    error::Result, id::RedactedId, outcome::LoadedSession, store::Touches, MongoSessionStore,
};

impl MongoSessionStore {
    /// [`load`](Self::load) as the adapters want it: an undecodable (or
    /// tampered) session is logged, without its id, and is no session, so
    /// the visitor gets a fresh one.
    pub(crate) async fn load_or_fresh(
        &self,
        id: &str,
        touches: Touches,
    ) -> Result<Option<LoadedSession>> {
        match self.load_with(id, touches).await {
            Err(e) if e.is_decode() => {
                tracing::warn!(session = %RedactedId::new(id), error = %e, "undecodable session treated as absent");
                Ok(None)
            }
            other => other,
        }
    }
}
