//! Where a store's client comes from: a URI, driver options, or the
//! application's own client.

use mongodb::{options::ClientOptions, Client};

use super::StoreBuilder;
use crate::store::MongoSessionStore;

impl MongoSessionStore {
    /// Starts building a store that opens its own client from `uri` (and
    /// closes it on [`close`](Self::close)).
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), mongodb_session_store::Error> {
    /// use mongodb_session_store::MongoSessionStore;
    ///
    /// let store = MongoSessionStore::from_uri("mongodb://localhost:27017/app")
    ///     .collection("sessions")
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn from_uri(uri: impl Into<String>) -> StoreBuilder {
        StoreBuilder::from_uri(uri)
    }

    /// Starts building a store that opens its own client from driver
    /// options (connect-mongo's `mongoOptions`, connect-mongodb-session's
    /// `connectionOptions`).
    pub fn from_client_options(options: mongodb::options::ClientOptions) -> StoreBuilder {
        StoreBuilder::from_client_options(options)
    }

    /// Starts building a store on an existing client, which is used as is and
    /// never closed by the store.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use mongodb_session_store::MongoSessionStore;
    ///
    /// let client = mongodb::Client::with_uri_str("mongodb://localhost:27017").await?;
    /// let store = MongoSessionStore::from_client(client)
    ///     .database("app")
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn from_client(client: Client) -> StoreBuilder {
        StoreBuilder::from_client(client)
    }
}

pub(super) enum Source {
    Uri(String),
    Options(Box<ClientOptions>),
    Client(Client),
}
