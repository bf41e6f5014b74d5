//! The options for where the store runs: the managed services' profiles
//! (Cosmos DB, DocumentDB) and what `build` may do to the collection's
//! existing indexes.

use super::{Service, StoreBuilder};
use crate::index::IndexRepair;

impl StoreBuilder {
    /// The Azure Cosmos DB profile. Cosmos DB's API for MongoDB only honours
    /// a TTL index on its own `_ts` field (the time of the last write), so
    /// the index goes on `_ts` with `expireAfterSeconds` equal to `idle_timeout`
    /// (unless [`expire_after`](Self::expire_after) says otherwise); the
    /// `expires` field is still written and checked on every load, so expiry
    /// is exact even though removal follows the last write.
    /// connect-mongodb-session's `expiresKey: '_ts'` recipe.
    ///
    /// A client the store opens itself ([`from_uri`](crate::MongoSessionStore::from_uri),
    /// [`from_client_options`](crate::MongoSessionStore::from_client_options)) gets
    /// `retryWrites=false` unless its options say otherwise: Cosmos DB
    /// accounts without retryable writes refuse the writes that ask for them
    /// (upswyng #246). A client passed to
    /// [`from_client`](crate::MongoSessionStore::from_client) is used as it
    /// is: build it with `retryWrites=false` yourself (`build` logs a warning
    /// as a reminder, since it cannot see the client's options).
    pub fn cosmos_db(mut self) -> Self {
        self.ttl_index_field = Some("_ts".into());
        self.service = Some(Service::CosmosDb);
        self
    }

    /// The Amazon DocumentDB profile: the default layout and TTL index
    /// (DocumentDB honours a TTL index on `expires`), and, on a client the
    /// store opens itself, `retryWrites=false` unless its options say
    /// otherwise — DocumentDB supports retryable writes only from engine
    /// 8.0.2, so set `retryWrites=true` in the URI there. A client passed to
    /// [`from_client`](crate::MongoSessionStore::from_client) is used as it
    /// is, as with [`cosmos_db`](Self::cosmos_db).
    pub fn document_db(mut self) -> Self {
        self.service = Some(Service::DocumentDb);
        self
    }

    /// What `build` may do when the collection's TTL index disagrees with
    /// this configuration (default [`IndexRepair::InPlace`]: another
    /// `expireAfterSeconds` is changed with `collMod`, anything else is an
    /// error naming the fix; [`IndexRepair::Refuse`] with
    /// `express_layout` (feature `express`), whose Node store sets the
    /// same index up). Every change is logged. The `mongodb-sessions
    /// ensure-indexes --dry-run` command shows what would be done.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), mongodb_session_store::Error> {
    /// use std::time::Duration;
    /// use mongodb_session_store::{IndexRepair, MongoSessionStore};
    ///
    /// // The sessions' TTL index went from 0 to one hour: drop and recreate
    /// // it if the server cannot change it in place.
    /// let store = MongoSessionStore::from_uri("mongodb://localhost:27017/app")
    ///     .expire_after(Duration::from_secs(3600))
    ///     .index_repair(IndexRepair::Recreate)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn index_repair(mut self, repair: IndexRepair) -> Self {
        self.index_repair = Some(repair);
        self
    }
}
