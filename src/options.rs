//! The store's tunables that do not change the document layout.

use std::time::Duration;

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
    /// for which [`Error::is_conflict`](crate::Error::is_conflict) is true, and writes nothing.
    Fail,
}

/// What happens when a session gets an owner who already has
/// [`max_sessions_per_user`](crate::StoreBuilder::max_sessions_per_user)
/// live sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OverLimit {
    /// The user's least recently active sessions are ended (like a
    /// revocation) until the limit holds; the new login always succeeds.
    /// [`MongoSessionStore::signed_out`](crate::MongoSessionStore::signed_out)
    /// lists the devices this signed out.
    #[default]
    EndLeastRecentlyActive,
    /// The new login is refused: the session keeps no owner and the save
    /// (or create) fails with an error for which
    /// [`Error::is_session_limit`](crate::Error::is_session_limit) is true.
    /// Call [`MongoSessionStore::check_session_limit`](crate::MongoSessionStore::check_session_limit)
    /// in the login handler to answer the user before that.
    RefuseNewLogin,
}

/// The per-user session limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionLimit {
    pub(crate) max: u32,
    pub(crate) policy: OverLimit,
}

/// Tunables that do not change the document layout.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) idle_timeout: Duration,
    pub(crate) touch_after: Duration,
    pub(crate) operation_timeout: Duration,
    pub(crate) max_session_bytes: usize,
    pub(crate) conflicts: ConflictPolicy,
    pub(crate) session_limit: Option<SessionLimit>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(14 * 24 * 60 * 60),
            touch_after: Duration::ZERO,
            operation_timeout: Duration::from_secs(10),
            max_session_bytes: 1024 * 1024,
            conflicts: ConflictPolicy::default(),
            session_limit: None,
        }
    }
}

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
    /// A background task deletes expired documents every period (for
    /// deployments where TTL indexes are not available, such as some
    /// Cosmos DB setups). It stops on [`MongoSessionStore::close`](crate::MongoSessionStore::close) or when the
    /// store is dropped. connect-mongo's `autoRemove: 'interval'` with
    /// `autoRemoveInterval` (there in minutes; default 10 minutes, here
    /// [`AutoRemove::DEFAULT_INTERVAL`]).
    Interval(Duration),
    /// Nothing: no index is created (for users without the `createIndex`
    /// privilege, or who manage indexes themselves). Call
    /// [`MongoSessionStore::delete_expired`](crate::MongoSessionStore::delete_expired) from your own schedule.
    /// connect-mongo's `autoRemove: 'disabled'`.
    Disabled,
}

impl AutoRemove {
    /// connect-mongo's default `autoRemoveInterval`: 10 minutes.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(600);
}
