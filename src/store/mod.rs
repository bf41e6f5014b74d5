//! The store: its state, shared plumbing (timeouts, cache, events) and
//! lifecycle. Each family of operations has a file of its own.

mod admin;
mod batches;
mod bulk_endings;
mod create;
mod delete;
mod expire;
mod expiry;
mod indexes;
mod limit;
mod load;
mod missed;
mod regenerate;
mod save;
mod stats;
mod swap;
mod touch;
mod users;

#[cfg_attr(
    not(any(feature = "tower-sessions", feature = "actix-session")),
    allow(unused_imports)
)]
pub(crate) use load::Touches;
pub use stats::{SessionStats, SizeDistribution};

use std::{
    fmt,
    future::IntoFuture,
    sync::{Arc, Mutex},
    time::Duration,
};

use mongodb::{
    bson::{DateTime, Document, RawDocumentBuf},
    Client, Collection,
};
use serde_json::{Map, Value};
use tokio::{
    sync::{broadcast, watch},
    task::JoinHandle,
};

use crate::{
    batch::{BatchOptions, Incomplete},
    cache::{spawn_watcher, CacheMode, SessionCache},
    endings::Pending,
    error::{Error, Result},
    events::{EventReceiver, Events},
    index::IndexSpec,
    options::Config,
    schema::Layout,
    snapshot::{split, UserEntries},
    touch_hints::TouchHints,
};

/// A MongoDB session store.
///
/// Cheap to clone (an `Arc` inside); clones share the connection pool and
/// background tasks. Framework integration lives in the `tower` and `actix` modules; the
/// methods here are the framework-independent core the adapters translate to.
#[derive(Clone)]
pub struct MongoSessionStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    owns_client: bool,
    collection: Collection<Document>,
    /// The same collection, read as the bytes the server sent (see
    /// `Layout::decode_raw`).
    raw: Collection<RawDocumentBuf>,
    layout: Layout,
    config: Config,
    events: Events,
    hints: TouchHints,
    /// The endings collection (see `crate::endings`), with the sessions
    /// collection's read and write concerns.
    endings: Collection<Document>,
    /// Tokens of this process's endings, for the creates of regenerations.
    pending: Pending,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    cache: Option<Arc<SessionCache>>,
    /// What the configuration asks of the indexes (see `indexes.rs`).
    indexes: IndexSpec,
}

impl MongoSessionStore {
    pub(crate) fn new(
        client: Client,
        owns_client: bool,
        collection: Collection<Document>,
        layout: Layout,
        config: Config,
        cache: Option<SessionCache>,
        indexes: IndexSpec,
    ) -> Self {
        let endings = endings_collection(&collection);
        let inner = Inner {
            endings,
            pending: Pending::default(),
            indexes,
            cache: cache.map(Arc::new),
            client,
            owns_client,
            raw: collection.clone_with_type(),
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
    /// (see [`StoreBuilder::cache`](crate::StoreBuilder::cache)).
    pub fn cache_mode(&self) -> Option<CacheMode> {
        self.inner.cache.as_ref().map(|cache| cache.mode())
    }

    /// The sessions collection's namespace, `database.collection`.
    pub fn namespace(&self) -> String {
        self.inner.collection.namespace().to_string()
    }

    /// The MongoDB collection itself, for what the store does not do
    /// (an operator's query, a test). **Everything through it bypasses the
    /// store**: ids are not hashed, values not encrypted or decrypted,
    /// endings not recorded, the cache not told. Never write sessions
    /// through it while the store serves them.
    pub fn raw_collection(&self) -> &Collection<Document> {
        &self.inner.collection
    }

    /// The collection, for the migration (`express`).
    #[cfg_attr(not(feature = "express"), allow(dead_code))]
    pub(crate) fn collection(&self) -> &Collection<Document> {
        &self.inner.collection
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// The fallback expiry used when a framework gives none.
    pub fn idle_timeout(&self) -> Duration {
        self.inner.config.idle_timeout
    }

    /// Subscribes to store events ([`EventKind`]). Events are never waited
    /// for: a listener that falls behind misses the oldest ones.
    ///
    /// [`EventKind`]: crate::events::EventKind
    pub fn subscribe(&self) -> EventReceiver {
        self.inner.events.subscribe()
    }

    /// The value stored in the id field for session `id` (its HMAC when ids
    /// are hashed): what to look for in the collection when investigating a
    /// session by its cookie.
    pub fn stored_id(&self, id: &str) -> String {
        self.inner.layout.stored_id(id)
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
    /// dropped, in bounded batches. Failures are logged with what was
    /// deleted before them, and retried on the next tick.
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
                // In batches, each bounded by the operation timeout; closing
                // the store stops it between two round trips.
                let purge = store.delete_expired_with(BatchOptions::default(), |_| {});
                let outcome = tokio::select! {
                    outcome = purge => outcome,
                    _ = stop.changed() => return,
                };
                match outcome {
                    Ok(n) => tracing::debug!(removed = n, "expired sessions removed"),
                    Err(Incomplete { done, error, .. }) => tracing::warn!(
                        removed = done,
                        %error,
                        "removing expired sessions stopped part way; retrying next period"
                    ),
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

    /// After a write that changed `changed` of `keys`: evicts them from the
    /// cache and, when `pending`, waits for that many change events (see
    /// [`crate::ReadCache`]).
    async fn settle(
        &self,
        pending: Option<broadcast::Receiver<Arc<str>>>,
        keys: &[String],
        changed: usize,
    ) {
        if let Some(cache) = &self.inner.cache {
            cache.settle(pending, keys, changed).await;
        }
    }

    /// When an operation that starts now must be done.
    pub(crate) fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.inner.config.operation_timeout
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

    /// Whether `data` could be saved as it is: no key of the store's
    /// reserved namespace that its API did not put there, and within
    /// [`max_session_bytes`](crate::StoreBuilder::max_session_bytes). For an
    /// application that wants to answer a client before the framework
    /// saves (a 400 or a 413 rather than a failed save).
    ///
    /// # Errors
    ///
    /// [`Error::is_reserved_key`](crate::Error::is_reserved_key) or [`Error::is_encode`](crate::Error::is_encode), as a save would.
    pub fn check(&self, data: &Map<String, Value>) -> Result<()> {
        let (entries, _) = split(data);
        entries.check_reserved()?;
        self.check_size(entries)
    }

    fn check_size(&self, entries: UserEntries<'_>) -> Result<()> {
        let encrypted = self.inner.layout.encryption.is_some();
        entries.check_size(self.inner.config.max_session_bytes, encrypted)
    }

    /// Runs one driver operation within the operation timeout, mapping its
    /// failure to this crate's error.
    pub(crate) async fn run<T>(
        &self,
        operation: &'static str,
        action: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<T> {
        let deadline = tokio::time::Instant::now() + self.inner.config.operation_timeout;
        self.run_until(operation, action, deadline).await
    }

    /// Runs one driver operation of a larger one that must finish by
    /// `deadline` (the larger one's operation timeout).
    pub(crate) async fn run_until<T>(
        &self,
        operation: &'static str,
        action: impl IntoFuture<Output = mongodb::error::Result<T>>,
        deadline: tokio::time::Instant,
    ) -> Result<T> {
        let bound = self.inner.config.operation_timeout;
        crate::observe::round_trip();
        match tokio::time::timeout_at(deadline, action.into_future()).await {
            Err(_) => Err(Error::timeout(operation, bound)),
            Ok(Err(e)) => Err(Error::from_driver(operation, bound, e)),
            Ok(Ok(value)) => Ok(value),
        }
    }
}

/// The endings collection beside `sessions`, with its read and write
/// concerns, always read on the primary: its reads are the "check" of a
/// write-then-check (a revocation's read of the records it just appended
/// to, a regeneration's re-read of its lineage), and a secondary may not
/// have the other side's write yet.
pub(crate) fn endings_collection(sessions: &Collection<Document>) -> Collection<Document> {
    use mongodb::options::{ReadPreference, SelectionCriteria};
    let options = mongodb::options::CollectionOptions::builder()
        .read_concern(sessions.read_concern().cloned())
        .write_concern(sessions.write_concern().cloned())
        .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
        .build();
    let name = crate::endings::collection_name(sessions.name());
    sessions
        .client()
        .database(&sessions.namespace().db)
        .collection_with_options(&name, options)
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
