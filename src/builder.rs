//! Building a store: options, validation, connection check and index setup.

use std::time::Duration;

use mongodb::{bson::doc, options::ClientOptions, Client};

use crate::{
    error::{Error, Result},
    index::ensure_ttl_index,
    schema::Fields,
    store::{Config, MongoSessionStore},
};

/// How expired sessions are removed from the collection.
///
/// Whatever is chosen, an expired session is never returned by `load`, even
/// before it has been removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AutoRemove {
    /// A TTL index on the expiry field; the server deletes expired documents
    /// (about once a minute). connect-mongo's `autoRemove: 'native'`.
    #[default]
    Native,
    /// Nothing: no index is created (for users without the `createIndex`
    /// privilege, or who manage indexes themselves). Call
    /// [`MongoSessionStore::delete_expired`] from your own schedule.
    /// connect-mongo's `autoRemove: 'disabled'`.
    Disabled,
}

enum Source {
    Uri(String),
    Client(Client),
}

/// Configures and builds a [`MongoSessionStore`].
///
/// Created by [`MongoSessionStore::from_uri`] or
/// [`MongoSessionStore::from_client`]; every method consumes and returns the
/// builder, and [`build`](Self::build) validates the whole configuration.
#[must_use = "a builder does nothing until `.build().await`"]
pub struct StoreBuilder {
    source: Source,
    database: Option<String>,
    collection: String,
    config: Config,
    connect_timeout: Duration,
    auto_remove: AutoRemove,
}

impl std::fmt::Debug for StoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URI can hold credentials: never print it.
        f.debug_struct("StoreBuilder")
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("config", &self.config)
            .field("connect_timeout", &self.connect_timeout)
            .field("auto_remove", &self.auto_remove)
            .finish_non_exhaustive()
    }
}

impl StoreBuilder {
    fn new(source: Source) -> Self {
        Self {
            source,
            database: None,
            collection: "sessions".into(),
            config: Config::default(),
            connect_timeout: Duration::from_secs(10),
            auto_remove: AutoRemove::default(),
        }
    }

    pub(crate) fn from_uri(uri: impl Into<String>) -> Self {
        Self::new(Source::Uri(uri.into()))
    }

    pub(crate) fn from_client(client: Client) -> Self {
        Self::new(Source::Client(client))
    }

    /// The database holding the sessions. Defaults to the URI's (or the
    /// client's) default database; with neither, `build` fails.
    /// connect-mongo's `dbName`, connect-mongodb-session's `databaseName`.
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.database = Some(name.into());
        self
    }

    /// The collection holding the sessions (default `sessions`).
    /// connect-mongo's `collectionName`, connect-mongodb-session's `collection`.
    pub fn collection(mut self, name: impl Into<String>) -> Self {
        self.collection = name.into();
        self
    }

    /// Expiry used when the framework gives none (default 14 days).
    /// connect-mongo's `ttl` (seconds), connect-mongodb-session's `expires`
    /// (milliseconds) — here a [`Duration`], so there is no unit to get wrong.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = ttl;
        self
    }

    /// Within this long of a session's last write, saving it unchanged writes
    /// nothing (default zero: every save of an unchanged session moves its
    /// expiry). connect-mongo's `touchAfter`.
    ///
    /// The stored expiry can then lag the cookie's by up to this much, so
    /// keep it well below the session lifetime; `build` rejects a value not
    /// below `ttl`.
    pub fn touch_after(mut self, window: Duration) -> Self {
        self.config.touch_after = window;
        self
    }

    /// How long `build` waits for the server to answer (default 10 s). For a
    /// store built from a URI it also bounds server selection for every later
    /// operation, unless the URI sets `serverSelectionTimeoutMS` itself.
    pub fn connect_timeout(mut self, bound: Duration) -> Self {
        self.connect_timeout = bound;
        self
    }

    /// Upper bound on any single operation, including waiting for a server
    /// (default 10 s). Past it the operation fails with an error for which
    /// [`Error::is_timeout`] is true.
    pub fn operation_timeout(mut self, bound: Duration) -> Self {
        self.config.operation_timeout = bound;
        self
    }

    /// Largest session accepted, measured as its values' JSON encoding
    /// (default 1 MiB; MongoDB's own document limit is 16 MiB). A bigger
    /// session fails to save with an error for which [`Error::is_encode`] is
    /// true, before anything is sent to the server.
    pub fn max_session_bytes(mut self, limit: usize) -> Self {
        self.config.max_session_bytes = limit;
        self
    }

    /// How expired sessions are removed (default [`AutoRemove::Native`]).
    /// connect-mongo's `autoRemove`.
    pub fn auto_remove(mut self, mode: AutoRemove) -> Self {
        self.auto_remove = mode;
        self
    }

    /// Validates the options, connects (for a URI), checks that the server
    /// answers within [`connect_timeout`](Self::connect_timeout), and ensures
    /// the TTL index.
    ///
    /// # Errors
    ///
    /// - [`Error::is_config`]: invalid options, an unparsable URI, or no
    ///   database named anywhere;
    /// - [`Error::is_unreachable`]: no server answered in time;
    /// - [`Error::is_index_conflict`]: an index on the expiry field disagrees
    ///   with this configuration (the message says how to fix it);
    /// - [`Error::is_database`]: the server refused (for example, missing
    ///   privileges).
    pub async fn build(self) -> Result<MongoSessionStore> {
        self.validate()?;
        let bound = self.connect_timeout;
        let (client, owns_client, default_db) = match self.source {
            Source::Uri(uri) => {
                let client = client_from_uri(&uri, bound).await?;
                let default_db = client.default_database().map(|db| db.name().to_string());
                (client, true, default_db)
            }
            Source::Client(client) => {
                let default_db = client.default_database().map(|db| db.name().to_string());
                (client, false, default_db)
            }
        };
        let database = self.database.or(default_db).ok_or_else(|| {
            Error::config(
                "no database: name one in the URI path (mongodb://host/mydb) or call \
                 .database(\"mydb\") on the builder",
            )
        })?;
        validate_database_name(&database)?;
        let db = client.database(&database);
        ping(&db, bound).await?;
        let collection = db.collection(&self.collection);
        let fields = Fields::default();
        if self.auto_remove == AutoRemove::Native {
            ensure_ttl_index(&collection, &fields.expires, Duration::ZERO).await?;
        }
        Ok(MongoSessionStore::new(
            client,
            owns_client,
            collection,
            fields,
            self.config,
        ))
    }

    fn validate(&self) -> Result<()> {
        let name = &self.collection;
        if name.is_empty()
            || name.contains('$')
            || name.contains('\0')
            || name.starts_with("system.")
        {
            return Err(Error::config(format!(
                "collection name {name:?} is not valid: it must be non-empty, must not contain \
                 '$' or NUL, and must not start with \"system.\""
            )));
        }
        let config = &self.config;
        if config.ttl.is_zero() {
            return Err(Error::config("ttl must be longer than zero"));
        }
        if config.touch_after >= config.ttl {
            return Err(Error::config(format!(
                "touch_after ({:?}) must be shorter than ttl ({:?}), or sessions could expire \
                 while their touches are skipped",
                config.touch_after, config.ttl
            )));
        }
        if config.max_session_bytes == 0 {
            return Err(Error::config("max_session_bytes must be above zero"));
        }
        if self.connect_timeout.is_zero() || config.operation_timeout.is_zero() {
            return Err(Error::config("timeouts must be longer than zero"));
        }
        Ok(())
    }
}

fn validate_database_name(name: &str) -> Result<()> {
    let bad = name.is_empty() || name.len() > 63 || name.chars().any(|c| "/\\. \"$\0".contains(c));
    if bad {
        return Err(Error::config(format!(
            "database name {name:?} is not valid: 1–63 characters, none of / \\ . space \" $ NUL"
        )));
    }
    Ok(())
}

async fn client_from_uri(uri: &str, bound: Duration) -> Result<Client> {
    // Parsing resolves mongodb+srv:// through DNS, so it gets the bound too.
    let mut options = tokio::time::timeout(bound, ClientOptions::parse(uri))
        .await
        .map_err(|_| Error::unreachable(bound, None))?
        .map_err(|e| Error::config(format!("invalid MongoDB URI: {e}")))?;
    options.server_selection_timeout.get_or_insert(bound);
    options.connect_timeout.get_or_insert(bound);
    options
        .app_name
        .get_or_insert_with(|| "mongodb-session-store".into());
    Client::with_options(options).map_err(|e| Error::config(format!("invalid client options: {e}")))
}

async fn ping(db: &mongodb::Database, bound: Duration) -> Result<()> {
    match tokio::time::timeout(bound, db.run_command(doc! { "ping": 1 })).await {
        Err(_) => Err(Error::unreachable(bound, None)),
        Ok(Err(e)) if is_unreachable(&e) => Err(Error::unreachable(bound, Some(e))),
        Ok(Err(e)) => Err(Error::database("ping", e)),
        Ok(Ok(_)) => Ok(()),
    }
}

pub(crate) fn is_unreachable(error: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    matches!(
        *error.kind,
        ErrorKind::ServerSelection { .. } | ErrorKind::Io(_) | ErrorKind::DnsResolve { .. }
    )
}
