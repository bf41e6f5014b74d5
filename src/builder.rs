//! Building a store: options, validation, connection check and index setup.

use std::{sync::Arc, time::Duration};

use mongodb::{
    bson::{doc, Document},
    change_stream::ChangeStream,
    options::{
        ClientOptions, CollectionOptions, ReadConcern, SelectionCriteria, ServerMonitoringMode,
        WriteConcern,
    },
    Client, Collection,
};

use crate::{
    cache::{open_stream, CacheMode, ReadCache, SessionCache},
    codec::Codec,
    crypto::KeyRing,
    error::{Error, Result},
    index::{ensure_ttl_index, ensure_unique_index, ensure_user_index},
    options::{AutoRemove, Config, ConflictPolicy},
    schema::Layout,
    store::MongoSessionStore,
};

/// The longest `ttl`, `max_lifetime` or removal period accepted.
const MAX_LIFETIME: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
/// The longest timeout accepted.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// MongoDB's document size limit.
const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

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

enum Source {
    Uri(String),
    Options(Box<ClientOptions>),
    Client(Client),
}

/// Configures and builds a [`MongoSessionStore`].
///
/// Created by [`MongoSessionStore::from_uri`],
/// [`MongoSessionStore::from_client_options`] or
/// [`MongoSessionStore::from_client`]; every method consumes and returns the
/// builder, and [`build`](Self::build) validates the whole configuration.
#[must_use = "a builder does nothing until `.build().await`"]
pub struct StoreBuilder {
    source: Source,
    database: Option<String>,
    collection: String,
    config: Config,
    layout: Layout,
    timestamps: bool,
    connect_timeout: Duration,
    auto_remove: AutoRemove,
    expire_after: Option<Duration>,
    ttl_index_field: Option<String>,
    collection_options: CollectionOptions,
    cache: Option<ReadCache>,
}

impl std::fmt::Debug for StoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URI and client options can hold credentials: never print them.
        f.debug_struct("StoreBuilder")
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("config", &self.config)
            .field("layout", &self.layout)
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
            layout: Layout::default(),
            timestamps: true,
            connect_timeout: Duration::from_secs(10),
            auto_remove: AutoRemove::default(),
            expire_after: None,
            ttl_index_field: None,
            collection_options: CollectionOptions::builder()
                .selection_criteria(SelectionCriteria::ReadPreference(
                    mongodb::options::ReadPreference::Primary,
                ))
                .build(),
            cache: None,
        }
    }

    pub(crate) fn from_uri(uri: impl Into<String>) -> Self {
        Self::new(Source::Uri(uri.into()))
    }

    pub(crate) fn from_client_options(options: ClientOptions) -> Self {
        Self::new(Source::Options(Box::new(options)))
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

    /// Expiry used when the framework gives none (default 14 days, at most
    /// 100 years).
    /// connect-mongo's `ttl` (seconds), connect-mongodb-session's `expires`
    /// (milliseconds) — here a [`Duration`], so there is no unit to get wrong.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = ttl;
        self
    }

    /// Within this long of a session's last write, saving or touching it
    /// unchanged writes nothing (default zero: every save of an unchanged
    /// session moves its expiry). connect-mongo's `touchAfter`.
    ///
    /// The stored expiry can then lag the cookie's by up to this much, so
    /// keep it well below the session lifetime; `build` rejects a value not
    /// below `ttl`.
    pub fn touch_after(mut self, window: Duration) -> Self {
        self.config.touch_after = window;
        self
    }

    /// How the `data` field is stored (default [`Codec::Bson`]).
    /// connect-mongo's `stringify` ([`Codec::JsonString`]) and
    /// `serialize`/`unserialize` ([`Codec::Custom`]).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.layout.codec = codec;
        self
    }

    /// Whether to write `createdAt` and `lastModified` (default true).
    /// Without them, `lastModified` is still written when `touch_after` is
    /// set (as connect-mongo does), and an absolute lifetime cannot be
    /// enforced. connect-mongo 6's `timestamps`.
    pub fn timestamps(mut self, on: bool) -> Self {
        self.timestamps = on;
        self
    }

    /// Names of the timestamp fields (default `createdAt`, `lastModified`;
    /// connect-mongo 6 uses `createdAt`, `updatedAt`).
    pub fn timestamp_fields(
        mut self,
        created_at: impl Into<String>,
        last_modified: impl Into<String>,
    ) -> Self {
        self.layout.fields.created_at = Some(created_at.into());
        self.layout.fields.last_modified = Some(last_modified.into());
        self
    }

    /// The field holding the session id (default `_id`).
    /// connect-mongodb-session's `idField`. Any other field gets a unique
    /// index, so `create` stays collision-safe.
    pub fn id_field(mut self, name: impl Into<String>) -> Self {
        self.layout.fields.id = name.into();
        self
    }

    /// The field holding the session's values (default `data`; both Node
    /// stores use `session`).
    pub fn data_field(mut self, name: impl Into<String>) -> Self {
        self.layout.fields.data = name.into();
        self
    }

    /// The field holding the expiry date (default `expires`).
    /// connect-mongodb-session's `expiresKey`.
    pub fn expires_field(mut self, name: impl Into<String>) -> Self {
        self.layout.fields.expires = name.into();
        self
    }

    /// Maps the session id to what is stored in the id field.
    /// connect-mongo's `transformId`.
    pub fn transform_id(
        mut self,
        transform: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> Self {
        self.layout.transform_id = Some(Arc::new(transform));
        self
    }

    /// Encrypts every session value at rest with AES-256-GCM under the key
    /// ring's primary key (connect-mongo's `crypto`, without its
    /// per-operation PBKDF2). Values are sealed one key at a time, bound to
    /// their document and field, so concurrent changes still merge and a
    /// ciphertext copied elsewhere does not decrypt. Field names become keyed
    /// hashes. Requires [`Codec::Bson`].
    pub fn encryption(mut self, keys: KeyRing) -> Self {
        self.layout.encryption = Some(keys);
        self
    }

    /// Whether the id field holds an HMAC-SHA-256 of the session id rather
    /// than the id itself (default true), so that no stored id works as a
    /// cookie. Turn it off only for a layout another application reads by
    /// raw id. [`transform_id`](Self::transform_id) replaces it.
    pub fn hash_ids(mut self, on: bool) -> Self {
        self.layout.hash_ids = on;
        self
    }

    /// The secret for the keyed hashes of ids, encrypted field names and
    /// revocation handles (default: a built-in, public key — stored ids are
    /// useless as cookies either way, since ids are 256 random bits; a secret
    /// also stops someone holding the database from testing a guessed id).
    /// Changing it orphans every stored session.
    pub fn id_hash_key(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.layout.hasher = crate::crypto::Hasher::new(secret.as_ref());
        self
    }

    /// Absolute timeout: a session is gone this long after its creation,
    /// however active (OWASP). Enforced on every load and write, and the
    /// stored expiry never passes it. Id regeneration keeps the creation
    /// time. Requires timestamps.
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.layout.max_lifetime = Some(lifetime);
        self
    }

    /// Reads and writes sessions exactly as a Node store does, so an Express
    /// app and this service share them: `session` as connect-mongo's JSON
    /// string or object, or connect-mongodb-session's object; raw ids (the
    /// Node side looks them up as they are); no timestamps or version of
    /// ours beyond `createdAt`/`lastModified` (connect-mongo 6's timestamp
    /// fields, which the Node stores ignore otherwise); express-session's
    /// `cookie` object kept and its expiry rules followed. Writes replace
    /// `session` whole, as the Node stores do.
    #[cfg(feature = "express")]
    #[cfg_attr(docsrs, doc(cfg(feature = "express")))]
    pub fn express_layout(mut self, layout: crate::express::ExpressLayout) -> Self {
        use crate::express::ExpressLayout;
        self.layout.codec = match layout {
            ExpressLayout::ConnectMongo => Codec::JsonString,
            _ => Codec::NodeObject,
        };
        self.layout.fields.data = "session".into();
        self.layout.fields.version = None;
        self.layout.fields.last_modified = Some("lastModified".into());
        self.layout.hash_ids = false;
        self.layout.value_rules = Some(Arc::new(crate::express::CookieRules));
        self
    }

    /// The TTL index's `expireAfterSeconds` (default zero: a document goes
    /// when its expiry date passes). connect-mongodb-session's
    /// `expiresAfterSeconds`.
    pub fn expire_after(mut self, delay: Duration) -> Self {
        self.expire_after = Some(delay);
        self
    }

    /// The Azure Cosmos DB profile. Cosmos DB's API for MongoDB only honours
    /// a TTL index on its own `_ts` field (the time of the last write), so
    /// the index goes on `_ts` with `expireAfterSeconds` equal to `ttl`
    /// (unless [`expire_after`](Self::expire_after) says otherwise); the
    /// `expires` field is still written and checked on every load, so expiry
    /// is exact even though removal follows the last write.
    /// connect-mongodb-session's `expiresKey: '_ts'` recipe.
    pub fn cosmos_db(mut self) -> Self {
        self.ttl_index_field = Some("_ts".into());
        self
    }

    /// Write concern for every write (connect-mongo's
    /// `writeOperationOptions`). Default: the client's.
    pub fn write_concern(mut self, concern: WriteConcern) -> Self {
        self.collection_options.write_concern = Some(concern);
        self
    }

    /// Read concern for every read. Default: the client's.
    pub fn read_concern(mut self, concern: ReadConcern) -> Self {
        self.collection_options.read_concern = Some(concern);
        self
    }

    /// Which servers reads go to. Default: the primary, so a session written
    /// by one request is seen by the next.
    pub fn selection_criteria(mut self, criteria: SelectionCriteria) -> Self {
        self.collection_options.selection_criteria = Some(criteria);
        self
    }

    /// How long `build` waits for the server to answer (default 10 s). For a
    /// store that opens its own client it also bounds server selection for
    /// every later operation, unless the options set it themselves.
    pub fn connect_timeout(mut self, bound: Duration) -> Self {
        self.connect_timeout = bound;
        self
    }

    /// Upper bound on any single operation, including waiting for a server
    /// (default 10 s, at most a day). Past it the operation fails with an error for which
    /// [`Error::is_timeout`] is true.
    pub fn operation_timeout(mut self, bound: Duration) -> Self {
        self.config.operation_timeout = bound;
        self
    }

    /// Largest session accepted, measured as its values take in the stored
    /// document (BSON, or the ciphertexts with encryption; default 1 MiB, at
    /// most 16 MiB, MongoDB's own document limit). A bigger session fails to
    /// save with an error for which [`Error::is_encode`] is true, before
    /// anything is sent to the server. A save that would still take the
    /// document past 16 MiB (another request's keys merged with this one's)
    /// fails with the same kind of error, and nothing is written.
    pub fn max_session_bytes(mut self, limit: usize) -> Self {
        self.config.max_session_bytes = limit;
        self
    }

    /// What a save does when another request changed one of the same keys
    /// since it loaded (default [`ConflictPolicy::LastWriterWins`]).
    /// Changes to different keys always all persist.
    pub fn on_conflict(mut self, policy: ConflictPolicy) -> Self {
        self.config.conflicts = policy;
        self
    }

    /// How expired sessions are removed (default [`AutoRemove::Native`]).
    /// connect-mongo's `autoRemove`.
    pub fn auto_remove(mut self, mode: AutoRemove) -> Self {
        self.auto_remove = mode;
        self
    }

    /// Turns on the read-through cache (off by default): hot sessions load
    /// from memory, kept coherent with other instances by change streams or
    /// a staleness bound. See [`ReadCache`] for when it pays.
    pub fn cache(mut self, cache: ReadCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Validates the options, connects (for a URI), checks that the server
    /// answers within [`connect_timeout`](Self::connect_timeout), ensures the
    /// indexes, and starts background removal and the cache's change stream
    /// if asked.
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
    pub async fn build(mut self) -> Result<MongoSessionStore> {
        self.validate()?;
        self.settle_timestamps();
        let bound = self.connect_timeout;
        let (client, owns_client) = match self.source {
            Source::Uri(ref uri) => (
                client_from_options(parse_uri(uri, bound).await?, bound)?,
                true,
            ),
            Source::Options(ref options) => {
                (client_from_options((**options).clone(), bound)?, true)
            }
            Source::Client(ref client) => (client.clone(), false),
        };
        let default_db = client.default_database().map(|db| db.name().to_string());
        let database = self.database.take().or(default_db).ok_or_else(|| {
            Error::config(
                "no database: name one in the URI path (mongodb://host/mydb) or call \
                 .database(\"mydb\") on the builder",
            )
        })?;
        validate_database_name(&database)?;
        let db = client.database(&database);
        ping(&db, bound).await?;
        let collection =
            db.collection_with_options(&self.collection, self.collection_options.clone());
        self.ensure_indexes(&collection).await?;
        let auto_remove = self.auto_remove;
        let (cache, stream) = match &self.cache {
            Some(config) => {
                let (cache, stream) = open_cache(config, &collection, &self.layout, bound).await;
                (Some(cache), stream)
            }
            None => (None, None),
        };
        let store = MongoSessionStore::new(
            client,
            owns_client,
            collection,
            self.layout,
            self.config,
            cache,
        );
        if let AutoRemove::Interval(period) = auto_remove {
            store.spawn_interval_removal(period);
        }
        if let Some(stream) = stream {
            store.watch_changes(stream);
        }
        Ok(store)
    }

    fn settle_timestamps(&mut self) {
        if self.timestamps {
            return;
        }
        let fields = &mut self.layout.fields;
        fields.created_at = None;
        if self.config.touch_after.is_zero() {
            fields.last_modified = None;
        }
    }

    async fn ensure_indexes(
        &self,
        collection: &mongodb::Collection<mongodb::bson::Document>,
    ) -> Result<()> {
        let fields = &self.layout.fields;
        let needs_unique_id = fields.id != "_id";
        match self.auto_remove {
            AutoRemove::Native => {
                let field = self.ttl_index_field.as_deref().unwrap_or(&fields.expires);
                let cosmos = self.ttl_index_field.is_some();
                let delay = self.expire_after.unwrap_or(if cosmos {
                    self.config.ttl
                } else {
                    Duration::ZERO
                });
                ensure_ttl_index(collection, field, delay).await?;
            }
            AutoRemove::Interval(_) | AutoRemove::Disabled => {}
        }
        if needs_unique_id {
            let create = self.auto_remove != AutoRemove::Disabled;
            ensure_unique_index(collection, &fields.id, create).await?;
        }
        if self.auto_remove != AutoRemove::Disabled {
            ensure_user_index(collection).await?;
        }
        Ok(())
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
        let fields = &self.layout.fields;
        for field in [&fields.id, &fields.data, &fields.expires]
            .into_iter()
            .chain(fields.created_at.as_ref())
            .chain(fields.last_modified.as_ref())
        {
            if field.is_empty()
                || field.starts_with('$')
                || field.contains('.')
                || field.contains('\0')
            {
                return Err(Error::config(format!(
                    "field name {field:?} is not valid: non-empty, no '.', no NUL, not starting with '$'"
                )));
            }
        }
        if let Some(cache) = &self.cache {
            cache.validate()?;
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
        if self.layout.encryption.is_some() && !self.layout.per_key() {
            return Err(Error::config("encryption works with Codec::Bson only"));
        }
        if self.layout.max_lifetime.is_some() && (!self.timestamps || fields.created_at.is_none()) {
            return Err(Error::config(
                "max_lifetime needs timestamps (the creation time)",
            ));
        }
        if matches!(self.layout.max_lifetime, Some(d) if d.is_zero()) {
            return Err(Error::config("max_lifetime must be longer than zero"));
        }
        if config.max_session_bytes == 0 {
            return Err(Error::config("max_session_bytes must be above zero"));
        }
        if matches!(self.auto_remove, AutoRemove::Interval(p) if p.is_zero()) {
            return Err(Error::config(
                "AutoRemove::Interval needs a period above zero",
            ));
        }
        if self.connect_timeout.is_zero() || config.operation_timeout.is_zero() {
            return Err(Error::config("timeouts must be longer than zero"));
        }
        self.validate_bounds()
    }

    /// Durations and sizes past what can be computed with or stored: refused
    /// here rather than overflowing on some later request.
    fn validate_bounds(&self) -> Result<()> {
        let config = &self.config;
        let lifetimes = [
            ("ttl", Some(config.ttl)),
            ("max_lifetime", self.layout.max_lifetime),
            (
                "AutoRemove::Interval",
                match self.auto_remove {
                    AutoRemove::Interval(period) => Some(period),
                    _ => None,
                },
            ),
        ];
        for (name, value) in lifetimes {
            if value.is_some_and(|d| d > MAX_LIFETIME) {
                return Err(Error::config(format!(
                    "{name} must be at most 100 years, not {value:?}"
                )));
            }
        }
        let timeouts = [
            ("operation_timeout", config.operation_timeout),
            ("connect_timeout", self.connect_timeout),
        ];
        for (name, value) in timeouts {
            if value > MAX_TIMEOUT {
                return Err(Error::config(format!(
                    "{name} must be at most a day, not {value:?}"
                )));
            }
        }
        if config.max_session_bytes > MAX_DOCUMENT_BYTES {
            return Err(Error::config(format!(
                "max_session_bytes must be at most 16 MiB (MongoDB's document limit), not {}",
                config.max_session_bytes
            )));
        }
        Ok(())
    }
}

/// The cache `config` asks for, and the change stream that keeps it
/// coherent when the deployment offers one (opened before the store serves
/// anything, so no change can slip between).
async fn open_cache(
    config: &ReadCache,
    collection: &Collection<Document>,
    layout: &Layout,
    bound: Duration,
) -> (SessionCache, Option<ChangeStream<Document>>) {
    let keyed = layout.fields.id == "_id";
    if config.wants_change_streams() {
        let opened = tokio::time::timeout(bound, open_stream(collection, config.bound())).await;
        match opened {
            Ok(Ok(stream)) => {
                let cache = SessionCache::new(config, CacheMode::ChangeStreams, keyed);
                return (cache, Some(stream));
            }
            Ok(Err(error)) => tracing::warn!(
                %error,
                "cache: no change streams here; entries live at most the staleness bound"
            ),
            Err(_) => tracing::warn!(
                "cache: opening a change stream timed out; entries live at most the staleness bound"
            ),
        }
    }
    (
        SessionCache::new(config, CacheMode::StalenessBound, keyed),
        None,
    )
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

async fn parse_uri(uri: &str, bound: Duration) -> Result<ClientOptions> {
    // Parsing resolves mongodb+srv:// through DNS, so it gets the bound too.
    tokio::time::timeout(bound, ClientOptions::parse(uri))
        .await
        .map_err(|_| Error::unreachable(bound, None))?
        .map_err(|e| Error::config(format!("invalid MongoDB URI: {e}")))
}

fn client_from_options(mut options: ClientOptions, bound: Duration) -> Result<Client> {
    options.server_selection_timeout.get_or_insert(bound);
    options.connect_timeout.get_or_insert(bound);
    // A state-change error (NotWritablePrimary, ShutdownInProgress, …)
    // marks the server Unknown until its monitor checks it again. A
    // streaming monitor waits for the server to push news, up to the
    // heartbeat period (10 s), longer than most operation timeouts when
    // the server has none to push; a polling one checks at once.
    options
        .server_monitoring_mode
        .get_or_insert(ServerMonitoringMode::Poll);
    options
        .app_name
        .get_or_insert_with(|| "mongodb-session-store".into());
    Client::with_options(options).map_err(|e| Error::config(format!("invalid client options: {e}")))
}

async fn ping(db: &mongodb::Database, bound: Duration) -> Result<()> {
    match tokio::time::timeout(bound, db.run_command(doc! { "ping": 1 })).await {
        Err(_) => Err(Error::unreachable(bound, None)),
        Ok(Err(e)) => Err(Error::from_driver("ping", bound, e)),
        Ok(Ok(_)) => Ok(()),
    }
}
