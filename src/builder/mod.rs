//! Building a store: the options (here), validation, and connecting
//! (`build.rs`).

mod build;
mod client;
mod deploy;
mod lifetimes;
mod source;
pub(crate) mod text;
mod validate;

use client::Service;
use source::Source;

use std::{sync::Arc, time::Duration};

use mongodb::{
    options::{ClientOptions, CollectionOptions, ReadConcern, SelectionCriteria, WriteConcern},
    Client,
};

use crate::{
    cache::ReadCache,
    codec::Codec,
    crypto::KeyRing,
    index::IndexRepair,
    options::{AutoRemove, Config, ConflictPolicy},
    schema::Layout,
};

/// Configures and builds a [`MongoSessionStore`](crate::MongoSessionStore).
///
/// Created by [`MongoSessionStore::from_uri`](crate::MongoSessionStore::from_uri),
/// [`MongoSessionStore::from_client_options`](crate::MongoSessionStore::from_client_options) or
/// [`MongoSessionStore::from_client`](crate::MongoSessionStore::from_client); every method consumes and returns the
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
    /// `None`: the default, [`IndexRepair::InPlace`].
    index_repair: Option<IndexRepair>,
    /// The managed service the options are tuned for, if any.
    service: Option<Service>,
    collection_options: CollectionOptions,
    cache: Option<ReadCache>,
    manage_collection: bool,
    lifetime_limit: Option<Duration>,
    document_format: Option<crate::DocumentFormat>,
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
            index_repair: None,
            service: None,
            collection_options: CollectionOptions::builder()
                .selection_criteria(SelectionCriteria::ReadPreference(
                    mongodb::options::ReadPreference::Primary,
                ))
                .build(),
            cache: None,
            manage_collection: true,
            lifetime_limit: None,
            document_format: None,
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

    /// **Idle timeout**: a session not used for this long expires (default
    /// 14 days, at most 100 years) — each use moves its expiry this far
    /// ahead, subject to [`touch_after`](Self::touch_after). Applies when
    /// the framework asks for no expiry of its own and the session has no
    /// own lifetime ([`SessionLifetime`](crate::SessionLifetime)).
    /// connect-mongo's `ttl` (seconds), connect-mongodb-session's `expires`
    /// (milliseconds) — here a [`Duration`], so there is no unit to get
    /// wrong. The four expiry settings and how they combine: README,
    /// *Expiry*.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Within this long of a session's last write, saving or touching it
    /// unchanged writes nothing (default zero: every save of an unchanged
    /// session moves its expiry). connect-mongo's `touchAfter`.
    ///
    /// The stored expiry can then lag the cookie's by up to this much, so
    /// keep it well below the session lifetime; `build` rejects a value not
    /// below `idle_timeout`.
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

    /// [`timestamp_fields`](Self::timestamp_fields)' first name alone.
    pub(crate) fn created_at_field(mut self, name: impl Into<String>) -> Self {
        self.layout.fields.created_at = Some(name.into());
        self
    }

    /// [`timestamp_fields`](Self::timestamp_fields)' second name alone.
    pub(crate) fn last_modified_field(mut self, name: impl Into<String>) -> Self {
        self.layout.fields.last_modified = Some(name.into());
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
    pub fn absolute_timeout(mut self, lifetime: Duration) -> Self {
        self.layout.absolute_timeout = Some(lifetime);
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
        // The Node store recreates its TTL index with its own options on
        // every start and fails every request when they differ: changing
        // the shared index is for an explicit `index_repair` only.
        self.index_repair.get_or_insert(IndexRepair::Refuse);
        self
    }

    /// The TTL index's `expireAfterSeconds` (default zero: a document goes
    /// when its expiry date passes; at most 2³¹−1 seconds, MongoDB's limit).
    /// connect-mongodb-session's `expiresAfterSeconds`. Changing it on a
    /// deployed collection changes the index in place (see
    /// [`index_repair`](Self::index_repair)).
    pub fn expire_after(mut self, delay: Duration) -> Self {
        self.expire_after = Some(delay);
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
    /// [`Error::is_timeout`](crate::Error::is_timeout) is true.
    pub fn operation_timeout(mut self, bound: Duration) -> Self {
        self.config.operation_timeout = bound;
        self
    }

    /// Largest session accepted, measured as its values take in the stored
    /// document (BSON, or the ciphertexts with encryption; default 1 MiB, at
    /// most 16 MiB, MongoDB's own document limit). A bigger session fails to
    /// save with an error for which [`Error::is_encode`](crate::Error::is_encode) is true, before
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

    /// At most `max` live sessions per user (a session counts once it has
    /// an owner: the adapters' `set_user`, or [`UserInfo`](crate::UserInfo)
    /// in the map). Checked whenever a write gives a session an owner,
    /// with one query on the owner index; `policy` says what gives way.
    /// Concurrent logins of one user on any number of instances leave
    /// exactly `max` of them (or all, if fewer) once they have returned.
    /// `build` rejects `max` zero.
    pub fn max_sessions_per_user(mut self, max: u32, policy: crate::OverLimit) -> Self {
        self.config.session_limit = Some(crate::options::SessionLimit { max, policy });
        self
    }

    /// How expired sessions are removed (default [`AutoRemove::Native`]).
    /// connect-mongo's `autoRemove`.
    pub fn auto_remove(mut self, mode: AutoRemove) -> Self {
        self.auto_remove = mode;
        self
    }

    /// Whether `build` sets the collection up (default true): ensures its
    /// indexes and, with [`AutoRemove::Interval`], starts the removal task.
    /// With false, `build` writes nothing to the database, checks no index
    /// and starts no task — for tools that inspect or repair a deployment
    /// (the `mongodb-sessions` CLI), which look at the indexes with
    /// [`MongoSessionStore::index_plan`](crate::MongoSessionStore::index_plan) and ensure them with
    /// [`MongoSessionStore::ensure_indexes`](crate::MongoSessionStore::ensure_indexes) when they mean to.
    pub fn manage_collection(mut self, on: bool) -> Self {
        self.manage_collection = on;
        self
    }

    /// Turns on the read-through cache (off by default): hot sessions load
    /// from memory, kept coherent with other instances by change streams or
    /// a staleness bound. See [`ReadCache`] for when it pays.
    pub fn cache(mut self, cache: ReadCache) -> Self {
        self.cache = Some(cache);
        self
    }
}
