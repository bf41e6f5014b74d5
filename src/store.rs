//! The store and its operations, independent of any web framework.

use std::{
    fmt,
    future::IntoFuture,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use futures_util::{stream::BoxStream, StreamExt, TryStreamExt};
use mongodb::{
    bson::{doc, Bson, DateTime, Document},
    error::{ErrorKind, WriteFailure},
    Client, Collection,
};
use serde_json::{Map, Value};
use tokio::{
    sync::{broadcast, watch},
    task::JoinHandle,
};

use crate::{
    builder::{is_unreachable, StoreBuilder},
    cache::{spawn_watcher, CacheMode, SessionCache},
    error::{Error, Result},
    events::{EventKind, EventReceiver, Events},
    id::{generate_id, is_plausible, RedactedId},
    schema::{expiry_or, optional_date, Decoded, Layout, USER_FIELD},
    snapshot::{fingerprint, split, Snapshot, UserEntries, RESERVED_KEY},
    touch_hints::TouchHints,
    user::{UserInfo, UserSession, USER_KEY},
    write::{per_key_update, plan_touch, whole_update, Changes, Clock},
};

const DUPLICATE_KEY: i32 = 11000;
const MAX_CREATE_ATTEMPTS: u32 = 8;

/// What a save does when another request changed the session since it was
/// loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ConflictPolicy {
    /// Changes to different keys all persist; for a key both changed, the
    /// later write wins (default).
    #[default]
    LastWriterWins,
    /// As above for different keys, but a save that would overwrite a key
    /// another request changed since this one loaded fails with an error
    /// for which [`Error::is_conflict`] is true, and writes nothing.
    Fail,
}

/// Tunables that do not change the document layout.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) ttl: Duration,
    pub(crate) touch_after: Duration,
    pub(crate) operation_timeout: Duration,
    pub(crate) max_session_bytes: usize,
    pub(crate) conflicts: ConflictPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(14 * 24 * 60 * 60),
            touch_after: Duration::ZERO,
            operation_timeout: Duration::from_secs(10),
            max_session_bytes: 1024 * 1024,
            conflicts: ConflictPolicy::default(),
        }
    }
}

/// A MongoDB session store.
///
/// Cheap to clone (an `Arc` inside); clones share the connection pool and
/// background tasks. Framework integration lives in [`crate::tower`]; the
/// methods here are the framework-independent core the adapters translate to.
#[derive(Clone)]
pub struct MongoSessionStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    owns_client: bool,
    collection: Collection<Document>,
    layout: Layout,
    config: Config,
    events: Events,
    hints: TouchHints,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    cache: Option<Arc<SessionCache>>,
}

/// A session as [`MongoSessionStore::load`] found it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoadedSession {
    /// The session's values.
    pub data: Map<String, Value>,
    /// When the stored session expires.
    pub expires: SystemTime,
    /// When the session was created, if the document records it.
    pub created_at: Option<SystemTime>,
    /// When the session was last written or touched, if recorded.
    pub last_modified: Option<SystemTime>,
    /// The session's owner, if the application set one.
    pub user: Option<UserInfo>,
    /// The session's revocation handle (see [`MongoSessionStore::revoke`]).
    pub handle: String,
    snapshot: Snapshot,
}

impl LoadedSession {
    fn new(decoded: Decoded, layout: &Layout) -> Self {
        let mut snapshot = Snapshot::of(&decoded.data);
        // A value sealed under an old key counts as changed, so the next
        // save re-encrypts it under the primary key.
        for key in &decoded.stale {
            snapshot.fingerprints.remove(key);
        }
        let handle = layout.handle(&decoded.stored_id);
        snapshot.user = decoded.user.as_ref().map(|u| fingerprint(&u.to_value()));
        snapshot.handle = Some(handle.clone());
        snapshot.expires = decoded.expires.timestamp_millis();
        snapshot.created_at = decoded.created_at.map(|d| d.timestamp_millis());
        snapshot.last_modified = decoded.last_modified.map(|d| d.timestamp_millis());
        snapshot.version = decoded.version;
        Self {
            data: decoded.data,
            expires: decoded.expires.to_system_time(),
            created_at: decoded.created_at.map(DateTime::to_system_time),
            last_modified: decoded.last_modified.map(DateTime::to_system_time),
            user: decoded.user,
            handle,
            snapshot,
        }
    }

    /// Whether the session may be served at `now`: the database's live
    /// filter, applied in memory.
    fn is_live(&self, now: DateTime, layout: &Layout) -> bool {
        let now = now.to_system_time();
        // As `restrict_to_live`: with an absolute lifetime, a session without
        // a creation time is not live.
        let within_lifetime = match (layout.max_lifetime, &layout.fields.created_at) {
            (Some(max), Some(_)) => self.created_at.is_some_and(|created| created + max > now),
            _ => true,
        };
        self.expires > now && within_lifetime
    }

    /// The values plus the reserved entry that lets a later
    /// [`save`](MongoSessionStore::save) write only what changed. Adapters
    /// hand this map to the framework.
    pub fn into_tracked_data(self) -> Map<String, Value> {
        let mut data = self.data;
        data.insert(RESERVED_KEY.to_string(), self.snapshot.to_value());
        if let Some(user) = &self.user {
            data.insert(USER_KEY.to_string(), user.to_value());
        }
        data
    }
}

/// What [`MongoSessionStore::rewrap`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RewrapReport {
    /// Sessions looked at.
    pub examined: u64,
    /// Sessions re-encrypted under the primary key.
    pub rewrapped: u64,
    /// Sessions changed by a request while being rewrapped; their next
    /// write re-encrypts them.
    pub skipped: u64,
}

/// A live session as listed by [`MongoSessionStore::all`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoredSession {
    /// The value of the id field (the session id, or its transform).
    pub key: String,
    /// The session's values.
    pub data: Map<String, Value>,
    /// When it expires.
    pub expires: SystemTime,
    /// When it was created, if recorded.
    pub created_at: Option<SystemTime>,
    /// When it was last written or touched, if recorded.
    pub last_modified: Option<SystemTime>,
}

/// What a [`save`](MongoSessionStore::save) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaveOutcome {
    /// Changed values were written.
    Updated,
    /// Nothing changed; only the expiry moved.
    Touched,
    /// Nothing changed and no touch was due (`touch_after`): no write.
    Unchanged,
    /// The session no longer exists (deleted or expired meanwhile). Nothing
    /// was written: a late save never brings a session back.
    Missing,
}

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

    pub(crate) fn new(
        client: Client,
        owns_client: bool,
        collection: Collection<Document>,
        layout: Layout,
        config: Config,
        cache: Option<SessionCache>,
    ) -> Self {
        let inner = Inner {
            cache: cache.map(Arc::new),
            client,
            owns_client,
            collection,
            layout,
            config,
            events: Events::default(),
            hints: TouchHints::default(),
            stop: watch::channel(false).0,
            tasks: Mutex::default(),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Keeps the cache coherent by tailing `stream` until the store closes.
    pub(crate) fn watch_changes(&self, stream: mongodb::change_stream::ChangeStream<Document>) {
        let Some(cache) = &self.inner.cache else {
            return;
        };
        let task = spawn_watcher(
            cache,
            self.inner.collection.clone(),
            stream,
            self.inner.stop.subscribe(),
        );
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }

    /// How the read-through cache stays coherent, or `None` without one
    /// (see [`StoreBuilder::cache`]).
    pub fn cache_mode(&self) -> Option<CacheMode> {
        self.inner.cache.as_ref().map(|cache| cache.mode())
    }

    /// The collection sessions are stored in.
    pub fn collection(&self) -> &Collection<Document> {
        &self.inner.collection
    }

    #[cfg_attr(not(feature = "express"), allow(dead_code))]
    pub(crate) fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// The fallback expiry used when a framework gives none.
    pub fn ttl(&self) -> Duration {
        self.inner.config.ttl
    }

    /// Subscribes to store events ([`EventKind`]). Events are never waited
    /// for: a listener that falls behind misses the oldest ones.
    ///
    /// [`EventKind`]: crate::EventKind
    pub fn subscribe(&self) -> EventReceiver {
        self.inner.events.subscribe()
    }

    /// Loads a live session: `None` if there is none, or it has expired
    /// (even if the server has not removed it yet).
    ///
    /// # Errors
    ///
    /// [`Error::is_decode`] if the stored document is malformed (the error
    /// names the field); timeouts and server errors as for every operation.
    pub async fn load(&self, id: &str) -> Result<Option<LoadedSession>> {
        if !is_plausible(id) {
            return Ok(None);
        }
        let layout = &self.inner.layout;
        let key = layout.key(id);
        let now = DateTime::now();
        let cache = self.inner.cache.as_deref();
        if let Some(hit) = cache.and_then(|c| c.get(&key)) {
            if hit.is_live(now, layout) {
                return Ok(Some(hit));
            }
        }
        let ticket = cache.map(SessionCache::ticket);
        // By id alone, liveness checked here: an equality on the id is the
        // server's fastest path (mongod's IDHACK), measurably faster than
        // the same lookup with an expiry range beside it.
        let filter = doc! { &layout.fields.id: &key };
        let found = self
            .run("find", self.inner.collection.find_one(filter))
            .await?;
        let Some(document) = found else {
            return Ok(None);
        };
        let decoded = layout.decode(&document)?;
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

    /// Stores a new session under a fresh id from the store's CSPRNG and
    /// returns that id. `expires: None` means now + [`ttl`](Self::ttl).
    ///
    /// # Errors
    ///
    /// [`Error::is_encode`] if `data` cannot be stored; server errors.
    pub async fn create(
        &self,
        data: &Map<String, Value>,
        expires: Option<SystemTime>,
    ) -> Result<String> {
        self.create_with(generate_id, data, expires).await
    }

    /// Stores a new session under the first id `next_id` yields that is not
    /// taken, and returns it. An id collision never overwrites the existing
    /// session: the insert fails on the unique id and the next id is tried
    /// (at most eight in all).
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create), plus [`Error::is_id_exhausted`] if every
    /// id drawn was taken.
    pub async fn create_with(
        &self,
        mut next_id: impl FnMut() -> String,
        data: &Map<String, Value>,
        expires: Option<SystemTime>,
    ) -> Result<String> {
        let layout = &self.inner.layout;
        let (entries, snapshot) = split(data);
        self.check_size(entries)?;
        #[allow(unused_mut)]
        let mut values = entries.to_map();
        #[cfg(feature = "express")]
        let expires = self.express_expiry(&mut values).or(expires);
        let user = entries.user_entry().and_then(UserInfo::from_value);
        let now = DateTime::now();
        // An id regenerated mid-session (login) keeps its creation time, so
        // an absolute lifetime cannot be extended by cycling the id.
        let created_at = snapshot
            .and_then(|s| s.created_at)
            .map_or(now, DateTime::from_millis);
        let expires = layout.cap_expiry(
            expiry_or(expires, self.inner.config.ttl),
            Some(created_at.timestamp_millis()),
        );
        for _ in 0..MAX_CREATE_ATTEMPTS {
            let id = next_id();
            let stored_id = layout.key(&id);
            let stored = layout.encode_values(&stored_id, &values)?;
            let document =
                layout.new_document(&stored_id, stored, expires, created_at, now, user.as_ref());
            match self
                .run("insert", self.inner.collection.insert_one(document))
                .await
            {
                Ok(_) => {
                    self.inner
                        .events
                        .emit(&id, &[EventKind::Create, EventKind::Set]);
                    return Ok(id);
                }
                Err(e) if is_duplicate_key(&e) => {
                    tracing::warn!(session = %RedactedId::new(&id), "session id collision; drawing another");
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::id_exhausted(MAX_CREATE_ATTEMPTS))
    }

    /// Saves an existing session: only the values that differ from what
    /// [`load`](Self::load) returned are written (if `data` came from
    /// [`LoadedSession::into_tracked_data`] and the codec is
    /// [`Codec::Bson`](crate::Codec::Bson); otherwise all of them), and an
    /// unchanged session is only touched, subject to `touch_after`.
    /// `expires: None` means now + [`ttl`](Self::ttl).
    ///
    /// It never creates a session: if the session was deleted or expired
    /// meanwhile, nothing is written and [`SaveOutcome::Missing`] is returned.
    ///
    /// # Errors
    ///
    /// [`Error::is_encode`] for an oversized session or a codec failure;
    /// server errors and timeouts.
    pub async fn save(
        &self,
        id: &str,
        data: &Map<String, Value>,
        expires: Option<SystemTime>,
    ) -> Result<SaveOutcome> {
        if !is_plausible(id) {
            return Ok(SaveOutcome::Missing);
        }
        let layout = &self.inner.layout;
        let stored_id = layout.key(id);
        #[cfg(feature = "express")]
        if layout.express_cookie {
            return self.save_express(id, data).await;
        }
        let (entries, snapshot) = split(data);
        let created_at = snapshot.as_ref().and_then(|s| s.created_at);
        let clock = Clock {
            now: DateTime::now(),
            expires: layout.cap_expiry(expiry_or(expires, self.inner.config.ttl), created_at),
            touch_after: self.inner.config.touch_after,
        };
        let Some(snapshot) = snapshot else {
            // No record of what was loaded: the caller's map is the whole truth.
            self.check_size(entries)?;
            let user = entries.user_entry().and_then(UserInfo::from_value);
            let update = whole_update(layout, &stored_id, &entries.to_map(), user.as_ref(), clock)?;
            return self
                .update_live(id, &stored_id, clock.now, update, SaveOutcome::Updated)
                .await;
        };
        let changes = Changes::between(&snapshot, entries);
        if changes.is_empty() {
            return match plan_touch(layout, &snapshot, clock) {
                None => Ok(SaveOutcome::Unchanged),
                Some(update) => {
                    self.update_live(id, &stored_id, clock.now, update, SaveOutcome::Touched)
                        .await
                }
            };
        }
        self.check_size(entries)?;
        let strict = self.inner.config.conflicts == ConflictPolicy::Fail;
        if layout.per_key() && !strict {
            let update = per_key_update(layout, &stored_id, &changes, clock);
            return self
                .update_live(id, &stored_id, clock.now, update, SaveOutcome::Updated)
                .await;
        }
        self.compare_and_swap(id, &snapshot, &changes, entries, clock)
            .await
    }

    /// The expiry express-session's cookie rules give `values` (updating
    /// its `cookie`), when the layout is an Express one.
    #[cfg(feature = "express")]
    fn express_expiry(&self, values: &mut Map<String, Value>) -> Option<SystemTime> {
        if !self.inner.layout.express_cookie {
            return None;
        }
        let ttl_ms = i64::try_from(self.inner.config.ttl.as_millis()).unwrap_or(i64::MAX);
        let now = DateTime::now().timestamp_millis();
        let expires = crate::express::apply_cookie_rules(values, now, ttl_ms);
        Some(DateTime::from_millis(expires).to_system_time())
    }

    /// A save in an Express layout: as the Node stores do, the session is
    /// written whole (last writer wins, as on the Express side) or, when
    /// unchanged, only its expiry moves; never upserted.
    #[cfg(feature = "express")]
    async fn save_express(&self, id: &str, data: &Map<String, Value>) -> Result<SaveOutcome> {
        let layout = &self.inner.layout;
        let stored_id = layout.key(id);
        let (entries, snapshot) = split(data);
        self.check_size(entries)?;
        let mut values = entries.to_map();
        let expires = self.express_expiry(&mut values);
        let clock = Clock {
            now: DateTime::now(),
            expires: expiry_or(expires, self.inner.config.ttl),
            touch_after: self.inner.config.touch_after,
        };
        if let Some(snapshot) = &snapshot {
            if Changes::between(snapshot, entries).is_empty() {
                return match plan_touch(layout, snapshot, clock) {
                    None => Ok(SaveOutcome::Unchanged),
                    Some(update) => {
                        self.update_live(id, &stored_id, clock.now, update, SaveOutcome::Touched)
                            .await
                    }
                };
            }
        }
        let user = entries.user_entry().and_then(UserInfo::from_value);
        let update = whole_update(layout, &stored_id, &values, user.as_ref(), clock)?;
        self.update_live(id, &stored_id, clock.now, update, SaveOutcome::Updated)
            .await
    }

    /// Writes `update` to the live session `id` (stored as `stored_id`);
    /// [`SaveOutcome::Missing`] if there is none.
    async fn update_live(
        &self,
        id: &str,
        stored_id: &str,
        now: DateTime,
        update: Document,
        outcome: SaveOutcome,
    ) -> Result<SaveOutcome> {
        let filter = self.inner.layout.live_filter_stored(stored_id, now);
        let result = self
            .run("update", self.inner.collection.update_one(filter, update))
            .await;
        self.evict(stored_id);
        if result?.matched_count == 0 {
            return Ok(SaveOutcome::Missing);
        }
        self.saved(id, now, outcome);
        Ok(outcome)
    }

    /// Saves `changes` only if nobody wrote since `snapshot` was loaded; if
    /// somebody did, re-reads the session, applies the changes to what is
    /// there now (or, with [`ConflictPolicy::Fail`], fails if they touch a
    /// key somebody else changed), and tries again.
    async fn compare_and_swap(
        &self,
        id: &str,
        snapshot: &Snapshot,
        changes: &Changes<'_>,
        entries: UserEntries<'_>,
        clock: Clock,
    ) -> Result<SaveOutcome> {
        let layout = &self.inner.layout;
        let stored_id = layout.key(id);
        let per_key = layout.per_key();
        let strict = self.inner.config.conflicts == ConflictPolicy::Fail;
        let user = changes.user.clone().flatten();
        let mut version = snapshot.version;
        let mut update = if per_key {
            per_key_update(layout, &stored_id, changes, clock)
        } else {
            whole_update(layout, &stored_id, &entries.to_map(), user.as_ref(), clock)?
        };
        // Bounded by time, not attempts: under heavy contention a writer keeps
        // its chance until the operation timeout, never longer.
        let deadline = tokio::time::Instant::now() + self.inner.config.operation_timeout;
        let mut attempt = 0;
        while tokio::time::Instant::now() < deadline {
            if attempt > 0 {
                backoff(attempt).await;
            }
            attempt += 1;
            let mut filter = layout.live_filter_stored(&stored_id, clock.now);
            layout.version_filter(&mut filter, version);
            let result = self
                .run(
                    "update",
                    self.inner.collection.update_one(filter, update.clone()),
                )
                .await?;
            if result.matched_count > 0 {
                self.evict(&stored_id);
                self.saved(id, clock.now, SaveOutcome::Updated);
                return Ok(SaveOutcome::Updated);
            }
            let live = layout.live_filter_stored(&stored_id, clock.now);
            let Some(current) = self
                .run("find", self.inner.collection.find_one(live))
                .await?
            else {
                return Ok(SaveOutcome::Missing);
            };
            let current = layout.decode(&current)?;
            if strict {
                let clashing: Vec<&str> = changes
                    .keys()
                    .filter(|key| snapshot.differs_from(key, current.data.get(key.as_str())))
                    .map(String::as_str)
                    .collect();
                if !clashing.is_empty() {
                    return Err(Error::conflict(&clashing));
                }
            }
            version = current.version;
            if !per_key {
                let merged = changes.apply_to(current.data);
                update = whole_update(layout, &stored_id, &merged, user.as_ref(), clock)?;
            }
        }
        Err(Error::contended(attempt))
    }

    fn saved(&self, id: &str, now: DateTime, outcome: SaveOutcome) {
        self.hint(id, now);
        let events: &[EventKind] = match outcome {
            SaveOutcome::Touched => &[EventKind::Touch],
            _ => &[EventKind::Update, EventKind::Set],
        };
        self.inner.events.emit(id, events);
    }

    /// Moves a live session's expiry forward without touching its data
    /// (connect-mongo's `touch`). Within `touch_after` of the session's last
    /// write it writes nothing. Returns whether the expiry moved; a session
    /// that no longer exists is not an error (connect-mongo #469/#471).
    /// `expires: None` means now + [`ttl`](Self::ttl).
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn touch(&self, id: &str, expires: Option<SystemTime>) -> Result<bool> {
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
        let mut filter = layout.live_filter(id, now);
        if let (Some(field), false) = (&layout.fields.last_modified, window.is_zero()) {
            let threshold = DateTime::from_system_time(now.to_system_time() - window);
            // `$not` also matches documents without the field.
            filter.insert(field, doc! { "$not": { "$gte": threshold } });
        }
        let update = doc! { "$set": layout.stamps(expiry_or(expires, self.inner.config.ttl), now) };
        let result = self
            .run("update", self.inner.collection.update_one(filter, update))
            .await;
        if self.inner.cache.is_some() {
            self.evict(&layout.key(id));
        }
        let result = result?;
        let touched = result.matched_count > 0;
        if touched {
            self.hint(id, now);
            self.inner.events.emit(id, &[EventKind::Touch]);
        }
        Ok(touched)
    }

    /// Deletes a session; `true` if there was one.
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn delete(&self, id: &str) -> Result<bool> {
        if !is_plausible(id) {
            return Ok(false);
        }
        let layout = &self.inner.layout;
        let key = layout.key(id);
        let filter = doc! { &layout.fields.id: &key };
        let pending = self.expect_changes();
        let result = self
            .run("delete", self.inner.collection.delete_one(filter))
            .await;
        let result = match result {
            Ok(result) if result.deleted_count > 0 => {
                self.settle(pending, &[key]).await;
                result
            }
            other => {
                self.evict(&key);
                other?
            }
        };
        self.inner.hints.forget(id);
        let deleted = result.deleted_count > 0;
        if deleted {
            self.inner.events.emit(id, &[EventKind::Destroy]);
        }
        Ok(deleted)
    }

    /// Deletes every expired session and returns how many. Only needed with
    /// [`AutoRemove::Disabled`](crate::AutoRemove::Disabled); the TTL index
    /// or the interval task does this otherwise.
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn delete_expired(&self) -> Result<u64> {
        let filter = doc! { &self.inner.layout.fields.expires: { "$lte": DateTime::now() } };
        let result = self
            .run("deleteMany", self.inner.collection.delete_many(filter))
            .await?;
        Ok(result.deleted_count)
    }

    /// The value stored in the id field for session `id` (its HMAC when ids
    /// are hashed): what to look for in the collection when investigating a
    /// session by its cookie.
    pub fn stored_id(&self, id: &str) -> String {
        self.inner.layout.key(id)
    }

    /// The live sessions of `user`, newest activity first. `current` is the
    /// handle of the session asking (from [`LoadedSession::handle`] or the
    /// adapters' `current_handle`), flagged in the answer.
    ///
    /// # Errors
    ///
    /// Server errors and timeouts; decode errors for malformed documents.
    pub async fn user_sessions(
        &self,
        user: &str,
        current: Option<&str>,
    ) -> Result<Vec<UserSession>> {
        let layout = &self.inner.layout;
        let documents = self.user_documents(user).await?;
        let mut sessions: Vec<UserSession> = documents
            .iter()
            .map(|document| {
                let stored_id = document.get_str(&layout.fields.id).unwrap_or_default();
                let handle = layout.handle(stored_id);
                let date = |field: &Option<String>| -> Result<Option<SystemTime>> {
                    let Some(name) = field else { return Ok(None) };
                    Ok(optional_date(document, name)?.map(DateTime::to_system_time))
                };
                Ok(UserSession {
                    current: current == Some(handle.as_str()),
                    handle,
                    created_at: date(&layout.fields.created_at)?,
                    last_active: date(&layout.fields.last_modified)?,
                    user_agent: document.get_str("userAgent").ok().map(str::to_string),
                    ip: document.get_str("ip").ok().map(str::to_string),
                })
            })
            .collect::<Result<_>>()?;
        sessions.sort_by_key(|s| std::cmp::Reverse(s.last_active));
        Ok(sessions)
    }

    /// Ends `user`'s session with this `handle`; `false` if there is none
    /// (a handle of another user's session ends nothing).
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn revoke(&self, user: &str, handle: &str) -> Result<bool> {
        Ok(self.revoke_where(user, |h| h == handle).await? > 0)
    }

    /// Ends every session of `user` except the one with handle `keep`
    /// ("log out my other devices"); returns how many were ended.
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn revoke_others(&self, user: &str, keep: &str) -> Result<u64> {
        self.revoke_where(user, |h| h != keep).await
    }

    /// Deletes the sessions of `user` whose handle matches `pick`. Handles
    /// are not stored, so they are computed for the user's (few, indexed)
    /// sessions; the delete repeats the owner in its filter.
    async fn revoke_where(&self, user: &str, pick: impl Fn(&str) -> bool) -> Result<u64> {
        let layout = &self.inner.layout;
        let keys: Vec<String> = self
            .user_documents(user)
            .await?
            .iter()
            .filter_map(|d| d.get_str(&layout.fields.id).ok())
            .filter(|stored_id| pick(&layout.handle(stored_id)))
            .map(str::to_string)
            .collect();
        if keys.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Bson> = keys.iter().cloned().map(Bson::String).collect();
        let filter = doc! { &layout.fields.id: { "$in": ids }, USER_FIELD: user };
        let pending = self.expect_changes();
        let result = self
            .run("deleteMany", self.inner.collection.delete_many(filter))
            .await;
        // Only sessions that were still there produce change events.
        let pending = pending.filter(|_| {
            result
                .as_ref()
                .is_ok_and(|r| r.deleted_count == keys.len() as u64)
        });
        self.settle(pending, &keys).await;
        Ok(result?.deleted_count)
    }

    async fn user_documents(&self, user: &str) -> Result<Vec<Document>> {
        let mut filter = doc! { USER_FIELD: user };
        self.inner
            .layout
            .restrict_to_live(&mut filter, DateTime::now());
        let cursor = self.run("find", self.inner.collection.find(filter)).await?;
        self.run("find", cursor.try_collect::<Vec<Document>>())
            .await
    }

    /// Re-encrypts every session not yet under the key ring's primary key
    /// (after a rotation), one compare-and-swap per session so that
    /// concurrent requests are never overwritten. Sessions are also
    /// re-encrypted by their own next write; this finishes the job so the
    /// old key can be retired.
    ///
    /// # Errors
    ///
    /// [`Error::is_config`] without encryption; server errors and timeouts.
    pub async fn rewrap(&self) -> Result<RewrapReport> {
        let layout = &self.inner.layout;
        if layout.encryption.is_none() {
            return Err(Error::config("rewrap needs encryption to be configured"));
        }
        let mut report = RewrapReport::default();
        let mut cursor = self
            .run("find", self.inner.collection.find(doc! {}))
            .await?;
        while let Some(document) = self.run("find", cursor.try_next()).await? {
            report.examined += 1;
            let decoded = layout.decode(&document)?;
            if decoded.stale.is_empty() {
                continue;
            }
            let mut filter = doc! { &layout.fields.id: &decoded.stored_id };
            layout.version_filter(&mut filter, decoded.version);
            let mut set = Document::new();
            set.insert(
                &layout.fields.data,
                layout.encode_values(&decoded.stored_id, &decoded.data)?,
            );
            let mut update = doc! { "$set": set };
            if let Some(version) = &layout.fields.version {
                update.insert("$inc", doc! { version: 1_i64 });
            }
            let result = self
                .run("update", self.inner.collection.update_one(filter, update))
                .await?;
            if result.matched_count > 0 {
                report.rewrapped += 1;
            } else {
                report.skipped += 1;
            }
            self.evict(&decoded.stored_id);
        }
        Ok(report)
    }

    /// Every live session, streamed from a cursor (never collected in
    /// memory). connect-mongo's `all`, which returns an array.
    ///
    /// # Errors
    ///
    /// Starting the query can fail like any operation; each item is
    /// a decode error if that document is malformed.
    pub async fn all(&self) -> Result<BoxStream<'static, Result<StoredSession>>> {
        let mut filter = Document::new();
        self.inner
            .layout
            .restrict_to_live(&mut filter, DateTime::now());
        let cursor = self.run("find", self.inner.collection.find(filter)).await?;
        let inner = Arc::clone(&self.inner);
        Ok(cursor
            .map_err(|e| Error::database("find", e))
            .and_then(move |document| {
                let item = stored_session(&inner.layout, &document);
                async move { item }
            })
            .boxed())
    }

    /// How many live (unexpired) sessions there are. connect-mongo's
    /// `length`, which also counted expired ones.
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn length(&self) -> Result<u64> {
        let mut filter = Document::new();
        self.inner
            .layout
            .restrict_to_live(&mut filter, DateTime::now());
        self.run("count", self.inner.collection.count_documents(filter))
            .await
    }

    /// Deletes every session and keeps the collection and its indexes
    /// (connect-mongo 4/5 dropped the collection, TTL index included).
    /// Returns how many were deleted.
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn clear(&self) -> Result<u64> {
        let result = self
            .run("deleteMany", self.inner.collection.delete_many(doc! {}))
            .await;
        self.evict_all();
        Ok(result?.deleted_count)
    }

    /// Stops the store's background tasks and waits for them, then closes
    /// the client if the store opened it; a client passed to
    /// [`from_client`](Self::from_client) is left open for its owner.
    pub async fn close(&self) {
        self.inner.stop.send_replace(true);
        let tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
        if self.inner.owns_client {
            self.inner.client.clone().shutdown().await;
        }
    }

    /// Deletes expired sessions every `period` until the store is closed or
    /// dropped. Failures are logged and retried on the next tick.
    pub(crate) fn spawn_interval_removal(&self, period: Duration) {
        let store = Arc::downgrade(&self.inner);
        let mut stop = self.inner.stop.subscribe();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.tick().await; // the first tick is immediate
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stop.changed() => return,
                }
                let Some(inner) = store.upgrade() else { return };
                let store = MongoSessionStore { inner };
                match store.delete_expired().await {
                    Ok(n) => tracing::debug!(removed = n, "expired sessions removed"),
                    Err(error) => {
                        tracing::warn!(%error, "removing expired sessions failed; retrying next period")
                    }
                }
            }
        });
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }

    /// Subscribes to the cache's change events before a delete that
    /// [`settle`](Self::settle) should wait for, when a change stream keeps
    /// the cache. Only deletes wait: a logout or revocation should have
    /// reached every instance by the time it is answered, while an update's
    /// event merely races the next request (a stale read gives that request
    /// no more power to lose an update than a concurrent one has: saves
    /// write only the changed keys, and version checks run against the
    /// database).
    fn expect_changes(&self) -> Option<broadcast::Receiver<Arc<str>>> {
        self.inner
            .cache
            .as_ref()
            .and_then(|cache| cache.expect_changes())
    }

    /// After a write: evicts `keys` from the cache and, when `pending`,
    /// waits for their change events (see [`crate::ReadCache`]).
    async fn settle(&self, pending: Option<broadcast::Receiver<Arc<str>>>, keys: &[String]) {
        if let Some(cache) = &self.inner.cache {
            cache.settle(pending, keys).await;
        }
    }

    /// Drops `key` from the cache after a write that need not wait for its
    /// change event.
    fn evict(&self, key: &str) {
        if let Some(cache) = &self.inner.cache {
            cache.evict(key);
        }
    }

    fn evict_all(&self) {
        if let Some(cache) = &self.inner.cache {
            cache.evict_all();
        }
    }

    /// Remembers a session's last write for [`touch`](Self::touch), when a
    /// `touch_after` window makes that worth anything.
    fn hint(&self, id: &str, last_modified: DateTime) {
        if !self.inner.config.touch_after.is_zero() {
            self.inner
                .hints
                .record(id, last_modified.timestamp_millis());
        }
    }

    fn check_size(&self, entries: UserEntries<'_>) -> Result<()> {
        let limit = self.inner.config.max_session_bytes;
        let size = entries.json_size();
        if size > limit {
            return Err(Error::encode(format!(
                "the session's values take {size} bytes as JSON, over the limit of {limit} \
                 (max_session_bytes)"
            )));
        }
        Ok(())
    }

    /// Runs one driver operation within the operation timeout, mapping its
    /// failure to this crate's error.
    pub(crate) async fn run<T>(
        &self,
        operation: &'static str,
        action: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<T> {
        let bound = self.inner.config.operation_timeout;
        match tokio::time::timeout(bound, action.into_future()).await {
            Err(_) => Err(Error::timeout(operation, bound)),
            Ok(Err(e)) if is_unreachable(&e) => Err(Error::unreachable(bound, Some(e))),
            Ok(Err(e)) => Err(Error::database(operation, e)),
            Ok(Ok(value)) => Ok(value),
        }
    }
}

impl fmt::Debug for MongoSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoSessionStore")
            .field("namespace", &self.inner.collection.namespace().to_string())
            .field("layout", &self.inner.layout)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A random pause of up to 2^`attempt` ms (at most 64 ms), so writers that
/// lost a compare-and-swap race spread out instead of retrying in lockstep.
async fn backoff(attempt: u32) {
    let mut bytes = [0u8; 2];
    let _ = getrandom::fill(&mut bytes);
    let ceiling_micros = 1000u64 << attempt.min(6);
    let micros = u64::from(u16::from_le_bytes(bytes)) * ceiling_micros / u64::from(u16::MAX);
    tokio::time::sleep(Duration::from_micros(micros)).await;
}

fn stored_session(layout: &Layout, document: &Document) -> Result<StoredSession> {
    let decoded = layout.decode(document)?;
    Ok(StoredSession {
        key: decoded.stored_id,
        data: decoded.data,
        expires: decoded.expires.to_system_time(),
        created_at: decoded.created_at.map(DateTime::to_system_time),
        last_modified: decoded.last_modified.map(DateTime::to_system_time),
    })
}

fn is_duplicate_key(error: &Error) -> bool {
    error.driver_error().is_some_and(|e| {
        matches!(&*e.kind, ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == DUPLICATE_KEY)
    })
}
