//! Who a session belongs to: the user, and optionally the client's user
//! agent and address, stored in indexed top-level fields so a user's
//! sessions can be listed and revoked.
//!
//! An application sets them through the session map (the adapters'
//! `set_user` helpers put them in a reserved entry), because a new session's
//! id — and so its document — only exists once the framework saves it.

use std::time::SystemTime;

use serde_json::{json, Map, Value};

/// The reserved session-map entry holding the session's [`UserInfo`].
pub const USER_KEY: &str = "__mongodb_session_store_user";

/// The owner of a session and the client it was used from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserInfo {
    /// The user's id or name.
    pub user: String,
    /// The client's `User-Agent`, if recorded.
    pub user_agent: Option<String>,
    /// The client's address, if recorded.
    pub ip: Option<String>,
}

impl UserInfo {
    /// A session owned by `user`.
    pub fn new(user: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            user_agent: None,
            ip: None,
        }
    }

    /// With the client's `User-Agent` (truncated to 512 bytes).
    #[must_use]
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(truncate(user_agent.into(), 512));
        self
    }

    /// With the client's address.
    #[must_use]
    pub fn ip(mut self, ip: impl Into<String>) -> Self {
        self.ip = Some(truncate(ip.into(), 64));
        self
    }

    /// The reserved entry's value.
    pub fn to_value(&self) -> Value {
        json!({ "user": self.user, "userAgent": self.user_agent, "ip": self.ip })
    }

    /// Reads the reserved entry's value.
    pub fn from_value(value: &Value) -> Option<Self> {
        let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
        Some(Self {
            user: text("user")?,
            user_agent: text("userAgent"),
            ip: text("ip"),
        })
    }

    /// The owner recorded in a session map.
    pub fn of(map: &Map<String, Value>) -> Option<Self> {
        map.get(USER_KEY).and_then(Self::from_value)
    }
}

/// Why a device was signed out by someone other than itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// [`revoke`](crate::MongoSessionStore::revoke) or
    /// [`revoke_others`](crate::MongoSessionStore::revoke_others).
    Revoked,
    /// A login past
    /// [`max_sessions_per_user`](crate::StoreBuilder::max_sessions_per_user)
    /// ended it ([`OverLimit::EndLeastRecentlyActive`](crate::OverLimit::EndLeastRecentlyActive)).
    SessionLimit,
}

impl EndReason {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::SessionLimit => "session-limit",
        }
    }

    pub(crate) fn from_label(label: &str) -> Option<Self> {
        match label {
            "revoked" => Some(Self::Revoked),
            "session-limit" => Some(Self::SessionLimit),
            _ => None,
        }
    }
}

/// A device of a user's that was signed out by someone else within the
/// last hour, as [`MongoSessionStore::signed_out`](crate::MongoSessionStore::signed_out)
/// lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignedOut {
    /// The ended session's revocation handle (as
    /// [`UserSession::handle`] showed it).
    pub handle: String,
    /// Its client's `User-Agent`, if recorded.
    pub user_agent: Option<String>,
    /// Its client's address, if recorded.
    pub ip: Option<String>,
    /// When it was signed out.
    pub at: SystemTime,
    /// Why.
    pub reason: EndReason,
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// One of a user's live sessions, as listed by
/// [`MongoSessionStore::user_sessions`](crate::MongoSessionStore::user_sessions).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserSession {
    /// Identifies the session for [`revoke`](crate::MongoSessionStore::revoke);
    /// not the session id, and useless as a cookie.
    pub handle: String,
    /// When the session was created.
    pub created_at: Option<SystemTime>,
    /// When it was last written or touched.
    pub last_active: Option<SystemTime>,
    /// The client's `User-Agent`, if recorded.
    pub user_agent: Option<String>,
    /// The client's address, if recorded.
    pub ip: Option<String>,
    /// Whether this is the session the listing was asked from.
    pub current: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_round_trips_and_truncates() {
        let info = UserInfo::new("ada")
            .user_agent("é".repeat(400))
            .ip("10.0.0.1");
        assert_eq!(info.user_agent.as_ref().unwrap().len(), 512);
        assert_eq!(UserInfo::from_value(&info.to_value()), Some(info));
        assert_eq!(UserInfo::from_value(&json!({"ip": "x"})), None);
    }
}
