//! What the store's operations return.

use std::time::SystemTime;

use mongodb::bson::{DateTime, Document};
use serde_json::{Map, Value};

use crate::{
    lifetime::{SessionLifetime, LIFETIME_KEY},
    schema::{Decoded, Layout},
    snapshot::{fingerprint, Snapshot, TRACKING_KEY},
    user::{UserInfo, USER_KEY},
};

/// A session as [`MongoSessionStore::load`](crate::MongoSessionStore::load) found it.
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
    /// The session's own lifetime, if the application set one (as stored:
    /// clamped to the `lifetime_limit` of the store that wrote it).
    pub lifetime: Option<SessionLifetime>,
    /// The session's revocation handle (see [`MongoSessionStore::revoke`](crate::MongoSessionStore::revoke)).
    pub handle: String,
    snapshot: Snapshot,
}

impl LoadedSession {
    pub(crate) fn new(decoded: Decoded, layout: &Layout) -> Self {
        let mut snapshot = Snapshot::of(&decoded.data);
        snapshot.stale = decoded.stale.iter().cloned().collect();
        let handle = layout.handle(&decoded.stored_id);
        snapshot.user = decoded.user.as_ref().map(|u| fingerprint(&u.to_value()));
        snapshot.handle = Some(handle.clone());
        snapshot.lineage = Some(layout.lineage(&decoded.stored_id, decoded.lineage.as_deref()));
        snapshot.expires = decoded.expires.timestamp_millis();
        snapshot.created_at = decoded.created_at.map(|d| d.timestamp_millis());
        snapshot.last_modified = decoded.last_modified.map(|d| d.timestamp_millis());
        snapshot.version = decoded.version;
        snapshot.lifetime = decoded.lifetime;
        snapshot.format = decoded.format;
        Self {
            data: decoded.data,
            expires: decoded.expires.to_system_time(),
            created_at: decoded.created_at.map(DateTime::to_system_time),
            last_modified: decoded.last_modified.map(DateTime::to_system_time),
            user: decoded.user,
            lifetime: decoded.lifetime,
            handle,
            snapshot,
        }
    }

    /// The session exactly as a write through this store left it, for the
    /// cache: `values` stored at `version`, with these stamps.
    pub(crate) fn written(values: Map<String, Value>, stamps: Written, layout: &Layout) -> Self {
        Self::new(
            Decoded {
                data: values,
                expires: stamps.expires,
                created_at: stamps.created_at,
                last_modified: Some(stamps.now),
                version: Some(stamps.version),
                user: stamps.user,
                lineage: stamps.lineage,
                lifetime: stamps.lifetime,
                format: stamps.format,
                stale: Vec::new(),
                stored_id: stamps.stored_id,
            },
            layout,
        )
    }

    /// The document's write counter as loaded, if the layout keeps one.
    pub(crate) fn version(&self) -> Option<i64> {
        self.snapshot.version
    }

    /// Whether the session may be served at `now`: the database's live
    /// filter, applied in memory.
    pub(crate) fn is_live(&self, now: DateTime, layout: &Layout) -> bool {
        let created_at = self.created_at.map(DateTime::from_system_time);
        let expires = DateTime::from_system_time(self.expires);
        layout.is_live_at(now, expires, created_at, self.lifetime)
    }

    /// The values plus the reserved entry that lets a later
    /// [`save`](crate::MongoSessionStore::save) write only what changed. Adapters
    /// hand this map to the framework.
    pub fn into_map(self) -> Map<String, Value> {
        let mut data = self.data;
        data.insert(TRACKING_KEY.to_string(), self.snapshot.to_value());
        if let Some(user) = &self.user {
            data.insert(USER_KEY.to_string(), user.to_value());
        }
        if let Some(lifetime) = &self.lifetime {
            data.insert(LIFETIME_KEY.to_string(), lifetime.to_value());
        }
        data
    }
}

/// The revocation handle of a session map as [`LoadedSession::into_map`]
/// returned it (`None` for a map not loaded from the store): the core
/// API's `current_handle`, to find "this session" among
/// [`MongoSessionStore::user_sessions`](crate::MongoSessionStore::user_sessions).
pub fn current_handle(data: &Map<String, Value>) -> Option<String> {
    data.get(TRACKING_KEY).and_then(handle_in)
}

/// The revocation handle recorded in a tracking entry, if it is one (the
/// adapters' `current_handle`).
pub(crate) fn handle_in(entry: &Value) -> Option<String> {
    Snapshot::from_value(entry).and_then(|snapshot| snapshot.handle)
}

/// What a write stored besides the values (see [`LoadedSession::written`]).
#[derive(Debug)]
pub(crate) struct Written {
    pub(crate) stored_id: String,
    pub(crate) expires: DateTime,
    pub(crate) created_at: Option<DateTime>,
    pub(crate) now: DateTime,
    pub(crate) user: Option<UserInfo>,
    pub(crate) version: i64,
    /// The lineage the document names, if any.
    pub(crate) lineage: Option<String>,
    pub(crate) lifetime: Option<SessionLifetime>,
    pub(crate) format: i64,
}

/// What [`MongoSessionStore::rewrap`](crate::MongoSessionStore::rewrap) did.
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
    /// Documents that could not be decoded (malformed, or sealed with a key
    /// that is not in the ring), skipped and logged with a redacted id.
    pub undecodable: u64,
}

impl RewrapReport {
    pub(crate) fn add(&mut self, batch: Self) {
        self.examined += batch.examined;
        self.rewrapped += batch.rewrapped;
        self.skipped += batch.skipped;
        self.undecodable += batch.undecodable;
    }
}

/// What [`MongoSessionStore::rewrap_with`](crate::MongoSessionStore::rewrap_with)
/// reports as it goes.
#[derive(Debug)]
#[non_exhaustive]
pub enum RewrapEvent<'a> {
    /// One more batch done: the totals so far.
    Progress(&'a RewrapReport),
    /// A document that could not be decoded was skipped.
    Undecodable {
        /// Its id, redacted.
        session: crate::id::RedactedId,
        /// Why it could not be decoded.
        error: &'a crate::Error,
    },
}

/// A live session as listed by [`MongoSessionStore::all`](crate::MongoSessionStore::all).
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

/// What a [`save`](crate::MongoSessionStore::save) did.
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

pub(crate) fn stored_session(layout: &Layout, document: &Document) -> crate::Result<StoredSession> {
    let decoded = layout.decode(document)?;
    Ok(StoredSession {
        key: decoded.stored_id,
        data: decoded.data,
        expires: decoded.expires.to_system_time(),
        created_at: decoded.created_at.map(DateTime::to_system_time),
        last_modified: decoded.last_modified.map(DateTime::to_system_time),
    })
}
