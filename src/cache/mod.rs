//! The optional read-through cache: loads of hot sessions answered from
//! memory, kept coherent with every other instance on the collection.
//!
//! Coherence comes from a change stream on the sessions collection: every
//! update or delete, by any instance, evicts that session here. A delete made
//! through this store (logout, revocation) also waits, bounded, until its own
//! change comes back on the stream, so by the time a logout's response leaves
//! this instance, the other instances, which read the same stream, have been
//! sent it too. The stream vouches for the cache only while it is up to
//! date: the cluster time it has delivered changes up to is compared with
//! the cluster time the server reports (see `coherence.rs`), not merely
//! whether it answers. Where the deployment has no change streams (a standalone
//! `mongod`, some Cosmos DB tiers), entries live at most the staleness bound
//! instead.

mod coherence;
mod config;
mod recent;
mod watcher;
mod weights;

use std::{sync::Arc, time::Duration};

use mongodb::bson::Timestamp;
use tokio::sync::broadcast;

use crate::outcome::LoadedSession;

use coherence::{Coherence, Epochs};
use recent::{Recent, RecentEvictions};
use weights::Weights;

pub use config::ReadCache;
pub(crate) use watcher::{open_stream, spawn_watcher};

/// How long the cache remembers a key's last eviction, for writes that
/// cache what they wrote: longer than any write takes (a write that takes
/// longer does not cache).
const RECENT: Duration = Duration::from_secs(60);

/// How long a delete waits, after its own change event came back, for
/// other instances to apply theirs (they were sent it at the same moment).
const PROPAGATION_GRACE: Duration = Duration::from_millis(20);

/// How the cache stays coherent with other instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheMode {
    /// Evicted by the collection's change stream.
    ChangeStreams,
    /// Entries expire after the staleness bound.
    StalenessBound,
}

/// The cache itself, shared by the store and its change-stream watcher.
pub(crate) struct SessionCache {
    entries: moka::sync::Cache<String, Arc<LoadedSession>>,
    weights: Weights,
    coherence: Coherence,
    mode: CacheMode,
    bound: Duration,
    /// Whether change events name sessions by their key (`_id` is the id
    /// field); otherwise any change evicts everything.
    keyed_events: bool,
    changed: broadcast::Sender<Arc<str>>,
    /// Each key's last eviction (see [`Epochs`]).
    recent: RecentEvictions,
    /// The layout's version field, which change events are asked to carry.
    version_field: Option<String>,
}

/// What a write hands back to [`SessionCache::written`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteTicket {
    epochs: Epochs,
    taken: std::time::Instant,
}

impl SessionCache {
    pub(crate) fn new(
        config: &ReadCache,
        mode: CacheMode,
        keyed_events: bool,
        version_field: Option<String>,
    ) -> Self {
        let weights = Weights::of(config);
        let mut entries = moka::sync::Cache::builder()
            .max_capacity(weights.capacity)
            .weigher(move |key: &String, session: &Arc<LoadedSession>| weights.weigh(key, session));
        if mode == CacheMode::StalenessBound {
            entries = entries.time_to_live(config.staleness_bound);
        }
        entries = crate::observe::count_evictions(entries);
        let bound_ms = i64::try_from(config.staleness_bound.as_millis()).unwrap_or(i64::MAX);
        if mode == CacheMode::ChangeStreams {
            // Built on a stream opened just before (see `open_cache`).
            crate::observe::change_stream_up(true);
        }
        Self {
            entries: entries.build(),
            weights,
            coherence: Coherence::new(mode, bound_ms, now_ms()),
            mode,
            bound: config.staleness_bound,
            keyed_events,
            changed: broadcast::channel(1024).0,
            recent: RecentEvictions::new(RECENT, 100_000),
            version_field,
        }
    }

    pub(crate) fn mode(&self) -> CacheMode {
        self.mode
    }

    /// The cached session under `key`, if the cache may answer now.
    pub(crate) fn get(&self, key: &str) -> Option<LoadedSession> {
        if !self.coherence.trustworthy(now_ms()) {
            return None;
        }
        self.entries.get(key).map(|hit| (*hit).clone())
    }

    /// What to hand back to [`insert`](Self::insert) after reading.
    pub(crate) fn ticket(&self) -> u64 {
        self.coherence.ticket()
    }

    pub(crate) fn insert(&self, key: String, session: &LoadedSession, ticket: u64) {
        self.coherence
            .admit(ticket, now_ms(), || self.put(key, session.clone()));
    }

    /// Caches `session` under `key` unless a newer version is cached.
    /// Runs under the coherence lock.
    fn put(&self, key: String, session: LoadedSession) {
        // `contains_key` first: a `get` counts as a use in moka's admission
        // policy, which a miss must not.
        let newer_cached = self.entries.contains_key(&key)
            && self.entries.get(&key).is_some_and(|cached| {
                matches!((cached.version(), session.version()), (Some(c), Some(s)) if c >= s)
            });
        if newer_cached {
            return;
        }
        let large = self.weights.is_large(self.weights.weigh(&key, &session));
        self.entries.insert(key, Arc::new(session));
        // moka applies its bound in batches (every 64 writes or so); a
        // large entry applies it now, so the bound is overshot only by
        // small ones, momentarily.
        if large {
            self.entries.run_pending_tasks();
        }
    }

    /// What to hand back to [`written`](Self::written) after a write.
    pub(crate) fn write_ticket(&self) -> WriteTicket {
        WriteTicket {
            epochs: self.coherence.write_ticket(),
            taken: std::time::Instant::now(),
        }
    }

    /// After a write through this store that left the session exactly as
    /// `session` (its version included): caches it, so the next load here
    /// is a hit — unless a change the write cannot account for (another
    /// version, a delete, a touch, a lost stream) was seen since `ticket`,
    /// in which case the key is evicted as after any write. The write's own
    /// change event, when it comes, finds this version cached and is
    /// ignored (see [`changed`](Self::changed)).
    pub(crate) fn written(&self, key: String, session: LoadedSession, ticket: WriteTicket) {
        let Some(version) = session.version() else {
            return self.evict(&key);
        };
        let mut cached = false;
        if ticket.taken.elapsed() < RECENT {
            self.coherence
                .admit_written(ticket.epochs, now_ms(), |since| {
                    let explained = self.recent.explained(&key, since, version);
                    if explained {
                        self.put(key.clone(), session);
                        cached = true;
                    }
                });
        }
        if !cached {
            self.evict(&key);
        }
    }

    /// Evicts `key` after a write through this store.
    pub(crate) fn evict(&self, key: &str) {
        self.evict_version(key, None);
    }

    /// Evicts `key`, changed to `version` (`None`: in some unknown way),
    /// unless that version or a later one is cached already: the change
    /// event of a write that cached what it wrote.
    fn evict_version(&self, key: &str, version: Option<i64>) {
        self.coherence.invalidate_key(|epoch| {
            let current = version.is_some_and(|v| {
                self.entries
                    .get(key)
                    .and_then(|cached| cached.version())
                    .is_some_and(|cached| cached >= v)
            });
            if current {
                return false;
            }
            self.entries.invalidate(key);
            self.recent.record(key, Recent { epoch, version });
            true
        });
    }

    pub(crate) fn evict_all(&self) {
        self.coherence
            .invalidate_all(|| self.entries.invalidate_all());
    }

    /// Call before a write whose change event [`settle`](Self::settle)
    /// should wait for: whenever the stream is up, even while this cache
    /// cannot vouch for its freshness, since other instances may.
    pub(crate) fn expect_changes(&self) -> Option<broadcast::Receiver<Arc<str>>> {
        (self.mode == CacheMode::ChangeStreams && self.coherence.is_streaming())
            .then(|| self.changed.subscribe())
    }

    /// Evicts `keys` now, then waits (at most the staleness bound) until the
    /// change stream has delivered the changes of `changed` of them (the
    /// write's count) — which every other instance reads from the same
    /// stream.
    pub(crate) async fn settle(
        &self,
        pending: Option<broadcast::Receiver<Arc<str>>>,
        keys: &[String],
        changed: usize,
    ) {
        for key in keys {
            self.evict(key);
        }
        let Some(mut changes) = pending else { return };
        let mut waiting: Vec<&str> = keys.iter().map(String::as_str).collect();
        let enough = keys.len().saturating_sub(changed.min(keys.len()));
        let wait = async {
            while waiting.len() > enough {
                match changes.recv().await {
                    Ok(key) if self.keyed_events => waiting.retain(|k| **k != *key),
                    // Unkeyed events and lagging both mean the stream has
                    // moved past our write, or may have: do not wait blind.
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        };
        if tokio::time::timeout(self.bound, wait).await.is_err() {
            tracing::warn!(
                bound = ?self.bound,
                "cache: a write's change event did not arrive within the staleness bound"
            );
            return;
        }
        // The other instances were sent the same event at the same moment;
        // give a busy one a moment to apply it before this answer leaves.
        tokio::time::sleep(PROPAGATION_GRACE.min(self.bound / 10)).await;
    }

    /// A change event for `key` (or for everything, when unkeyed) that
    /// wrote `version`, if it says.
    fn changed(&self, key: Option<&str>, version: Option<i64>) {
        match key.filter(|_| self.keyed_events) {
            Some(key) => self.evict_version(key, version),
            None => self.evict_all(),
        }
        let _ = self.changed.send(Arc::from(key.unwrap_or_default()));
    }

    /// The watcher (re)opened the change stream.
    fn stream_opened(&self) {
        crate::observe::change_stream_up(true);
        self.coherence.stream_opened(now_ms());
    }

    /// The change stream failed; the cache steps aside until it is back.
    fn stream_lost(&self) {
        crate::observe::change_stream_up(false);
        self.coherence.stream_lost(|| self.entries.invalidate_all());
    }

    /// A probe sent at `sent_at` found the server's cluster time.
    fn probed(&self, sent_at: i64, cluster_time: Timestamp) {
        self.coherence.probed(sent_at, cluster_time);
    }

    /// The stream answered; its resume token is at `reached`.
    fn stream_answered(&self, reached: Option<Timestamp>, whole_batch: bool) {
        self.coherence.stream_answered(reached, whole_batch);
    }
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("mode", &self.mode)
            .field("entries", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

/// Milliseconds on this process's monotonic clock. Freshness is judged by
/// the server's cluster times (a probe's against the stream's); the local
/// clock only measures how long ago a probe was sent, which a wall clock
/// stepped by NTP would get wrong in either direction.
fn now_ms() -> i64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let elapsed = START.get_or_init(std::time::Instant::now).elapsed();
    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}
