//! The cache's configuration, and what it promises.

use std::time::Duration;

use crate::{error::Result, Error};

/// Configures the optional cache
/// ([`StoreBuilder::cache`](crate::StoreBuilder::cache)).
///
/// Turn it on when sessions are hot: a hit costs no round trip at all. It
/// is read-through and write-through: a save or create through this store
/// caches what it wrote, with the version it wrote (read back in the same
/// round trip), when that write was the only one since the load; so a
/// modifying request on a hot session costs one database operation, and
/// that write's own change event is recognised and evicts nothing. It stays
/// coherent across app instances:
///
/// - **with change streams** (replica sets, sharded clusters, Atlas): another
///   instance's write or delete evicts the session as soon as its change
///   event arrives (milliseconds), and a delete through this store (logout,
///   revocation) returns only after its own event came back on the stream
///   (waiting at most the staleness bound, then a 20 ms grace), so by the
///   time a logout is answered, every instance has been sent it and has
///   almost always applied it; an instance starved of CPU may apply it a
///   moment later, always within the staleness bound.
///
///   The cache answers only while its stream is *up to date*, not merely
///   alive: four times per staleness bound the store asks the primary for
///   its cluster time (a `ping`; no writes), and the cache serves only while
///   the stream has delivered every change up to a cluster time sampled
///   within the bound. A stream that fails, stalls, or keeps answering but
///   lags (majority commit stalled, a slow or partitioned node) makes the
///   cache step aside within the bound, and every load reads the database
///   until the stream catches up. After the stream is reopened, a load that
///   began before cannot fill the cache. Should the cluster time move
///   without a write the stream can deliver (gossip between the shards of
///   a cluster), the cache steps aside until one catches the stream up
///   (`mongod`'s periodic no-op write, every 10 s by default, is one).
///   Resume tokens are opaque by
///   contract: the store reads the cluster time from those of `mongod`
///   4.0.7 and later and of the test server; a deployment whose tokens it
///   cannot read is treated as one without change streams.
/// - **without** (a standalone `mongod`, or
///   [`change_streams(false)`](Self::change_streams)): an entry is served
///   for at most the staleness bound after it was read, so another
///   instance's logout takes effect here within that bound.
///
/// It holds at most [`max_entries`](Self::max_entries) sessions and
/// [`max_bytes`](Self::max_bytes) bytes of them. Bytes are an estimate of
/// the memory an entry holds (its values as a JSON tree, its keys and
/// bookkeeping), not an exact count, and every session counts as at least
/// `max_bytes / max_entries`, so that one capacity enforces both bounds. The
/// least recently and least often used go first; evictions are applied in
/// batches, at once after a session over 1/64 of `max_bytes`, so only
/// smaller ones overshoot the bound, momentarily.
///
/// It pays only with [`touch_after`](crate::StoreBuilder::touch_after):
/// without it every request writes the session's expiry, and a bare expiry
/// move evicts.
/// A cached session can be milliseconds behind another instance's update.
/// That gives a request no more power to lose an update than a concurrent
/// request already has: saves write only the keys the request changed, and
/// the version checks ([`ConflictPolicy::Fail`](crate::ConflictPolicy::Fail),
/// opaque codecs) run against the database, never the cache.
///
/// Leave it off when a bounded window after a logout elsewhere is unacceptable and the
/// deployment has no change streams.
///
/// ```no_run
/// use std::time::Duration;
/// use mongodb_session_store::{MongoSessionStore, ReadCache};
/// # async fn f() -> Result<(), mongodb_session_store::Error> {
/// let store = MongoSessionStore::from_uri("mongodb://localhost:27017/app?replicaSet=rs0")
///     .cache(
///         ReadCache::new()
///             .max_entries(50_000)
///             .max_bytes(256 << 20)
///             .staleness_bound(Duration::from_millis(500)),
///     )
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ReadCache {
    pub(super) max_entries: u64,
    pub(super) max_bytes: u64,
    pub(super) staleness_bound: Duration,
    pub(super) change_streams: bool,
}

impl Default for ReadCache {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_bytes: 64 << 20,
            staleness_bound: Duration::from_secs(1),
            change_streams: true,
        }
    }
}

impl ReadCache {
    /// 10,000 sessions, 64 MiB, a staleness bound of 1 second, change
    /// streams where the deployment offers them.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most sessions kept in memory (least recently and least often used
    /// go first). At least 1.
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.max_entries = entries;
        self
    }

    /// The most memory the cached sessions may hold, in bytes (estimated;
    /// see [`ReadCache`]). At least 1024.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// How long another instance's change may go unseen here: the lifetime
    /// of an entry without change streams, and with them, how far behind
    /// the server's cluster time the stream may fall before the cache steps
    /// aside. At least 100 ms: the stream and the cluster time are sampled
    /// four times within it.
    pub fn staleness_bound(mut self, bound: Duration) -> Self {
        self.staleness_bound = bound;
        self
    }

    /// Whether to use change streams when the deployment offers them
    /// (default `true`). `false` relies on the staleness bound alone.
    pub fn change_streams(mut self, on: bool) -> Self {
        self.change_streams = on;
        self
    }

    pub(crate) fn bound(&self) -> Duration {
        self.staleness_bound
    }

    pub(crate) fn wants_change_streams(&self) -> bool {
        self.change_streams
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_entries == 0 {
            return Err(Error::config("cache: max_entries must be at least 1"));
        }
        if self.max_bytes < MIN_BYTES {
            return Err(Error::config(
                "cache: max_bytes must be at least 1024 (smaller holds no session)",
            ));
        }
        if self.staleness_bound < MIN_BOUND {
            return Err(Error::config(
                "cache: staleness_bound must be at least 100 ms (the change stream and the \
                 cluster time are sampled four times within it)",
            ));
        }
        Ok(())
    }
}

/// The smallest staleness bound accepted.
const MIN_BOUND: Duration = Duration::from_millis(100);

/// The smallest byte bound accepted.
const MIN_BYTES: u64 = 1024;
