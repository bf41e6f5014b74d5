//! [actix-session](https://docs.rs/actix-session) integration:
//! [`MongoSessionStore`] implements actix-session's
//! [`SessionStore`].
//!
//! Everything here translates between actix-session's state (a map of JSON
//! strings) and the store's core operations; no store logic lives here.
//!
//! - `save` creates a session under a key the store draws from the operating
//!   system's CSPRNG (256 bits), inserted collision-safely.
//! - `update` writes only the keys the request changed and never brings back
//!   a session deleted meanwhile (logout racing a request): the key is
//!   returned unchanged and points at nothing, so the next request starts a
//!   fresh session. It never creates a new session carrying the old data.
//! - `update_ttl` is the store's touch: only the expiry moves, never the
//!   data, and inside `touch_after` nothing is sent at all. A session with
//!   an idle window of its own ([`set_lifetime`]) moves by that window, not
//!   by the global TTL actix-session passes.
//! - `load` returns `None` for a missing, expired or undecodable session; a
//!   decode error is logged without the id, and the visitor gets a new key.
//!
//! Values are stored as BSON (parsed from actix-session's JSON strings), so
//! `data` stays queryable. An `update` parses only the values whose text
//! changed since the load: the tracking entry carries a keyed fingerprint
//! of each loaded text and the bytes its value takes as stored (for the
//! size limit); with a cache, `ConflictPolicy::Fail`, an Express layout or
//! values stored under an older key, every value is parsed, as those
//! saves need them. The state map carries one reserved entry,
//! [`TRACKING_KEY`], which
//! [`Session::entries`](actix_session::Session::entries) shows; skip it.
//!
//! ```no_run
//! use actix_session::{config::PersistentSession, SessionMiddleware};
//! use actix_web::{cookie::Key, web, App, HttpServer};
//! use mongodb_session_store::MongoSessionStore;
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let store = MongoSessionStore::from_uri("mongodb://localhost:27017/app")
//!         .build()
//!         .await?;
//!     let key = Key::generate(); // load it from your secrets in production
//!     HttpServer::new(move || {
//!         App::new()
//!             .wrap(
//!                 SessionMiddleware::builder(store.clone(), key.clone())
//!                     .session_lifecycle(PersistentSession::default())
//!                     .build(),
//!             )
//!             .route("/", web::get().to(|| async { "hello" }))
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await?;
//!     Ok(())
//! }
//! ```

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use serde_json::{Map, Value};

use crate::{
    id::RedactedId,
    outcome::handle_in,
    session::SaveOutcome,
    session::LIFETIME_KEY,
    session::TRACKING_KEY,
    session::USER_KEY,
    snapshot::{entry_size, Snapshot, Texts, UserEntries},
    store::Touches,
    Error, MongoSessionStore, SessionLifetime, UserInfo,
};

type SessionState = HashMap<String, String>;

impl SessionStore for MongoSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        let id = session_key.as_ref();
        match self.load_or_fresh(id, Touches::ById).await {
            Ok(found) => Ok(found.map(|loaded| self.to_state(loaded))),
            Err(e) => Err(LoadError::Other(e.into())),
        }
    }

    async fn save(
        &self,
        session_state: SessionState,
        ttl: &time::Duration,
    ) -> Result<SessionKey, SaveError> {
        let data: Map<String, Value> =
            parse(session_state).map_err(|e| SaveError::Serialization(e.into()))?;
        let id = match self.create(&data, Some(expiry(ttl))).await {
            Ok(id) => id,
            // A renew of a session ended meanwhile: hand out a key that
            // points at nothing, so the next request starts a fresh session.
            Err(e) if e.is_ended() => {
                tracing::debug!("id regeneration of a session ended meanwhile: not stored");
                crate::id::generate_id()
            }
            Err(e) => return Err(save_error(e, SaveError::Serialization, SaveError::Other)),
        };
        key(id).map_err(SaveError::Other)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: SessionState,
        ttl: &time::Duration,
    ) -> Result<SessionKey, UpdateError> {
        let id = session_key.as_ref();
        let expires = Some(expiry(ttl));
        let serialization = |e: serde_json::Error| UpdateError::Serialization(e.into());
        let saved = match self.changed_only(&session_state).map_err(serialization)? {
            // Only the values whose text changed were parsed.
            Some((changed, kept_size, snapshot)) => {
                let entries = UserEntries::partial(&changed, &session_state, kept_size);
                self.save_entries(id, entries, snapshot, expires).await
            }
            None => {
                let data: HashMap<String, Value> = parse(session_state).map_err(serialization)?;
                self.save_map(id, &data, expires).await
            }
        };
        let outcome =
            saved.map_err(|e| save_error(e, UpdateError::Serialization, UpdateError::Other))?;
        if outcome == SaveOutcome::Missing {
            tracing::debug!(session = %RedactedId::new(session_key.as_ref()), "update of a deleted or expired session ignored");
        }
        Ok(session_key)
    }

    async fn update_ttl(
        &self,
        session_key: &SessionKey,
        ttl: &time::Duration,
    ) -> anyhow::Result<()> {
        self.touch(session_key.as_ref(), Some(expiry(ttl))).await?;
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> anyhow::Result<()> {
        self.delete(session_key.as_ref()).await?;
        Ok(())
    }
}

/// The session's entries as actix-session holds them (JSON text), without
/// the store's own ([`session::is_reserved`](crate::session::is_reserved)):
/// what [`Session::entries`](actix_session::Session::entries) shows an
/// application that does not know about them.
pub fn entries(session: &actix_session::Session) -> HashMap<String, String> {
    session
        .entries()
        .iter()
        .filter(|(key, _)| !crate::session::is_reserved(key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// Records who owns the session, and optionally the client (stored in
/// indexed fields when the session is saved), so the user's sessions can be
/// listed and revoked.
///
/// # Errors
///
/// As [`Session::insert`](actix_session::Session::insert).
pub fn set_user(
    session: &actix_session::Session,
    user: &UserInfo,
) -> Result<(), actix_session::SessionInsertError> {
    session.insert(USER_KEY, user.to_value())
}

/// Who owns the session, if [`set_user`] was called for it.
pub fn user(session: &actix_session::Session) -> Option<UserInfo> {
    let value: Value = session.get(USER_KEY).ok().flatten()?;
    UserInfo::from_value(&value)
}

/// Gives the session a lifetime of its own ("remember me"), stored with it
/// when it is saved and kept across renewal; an empty [`SessionLifetime`]
/// removes it (the store's settings apply again).
///
/// actix-session gives every session the same TTL (`update`, `update_ttl`
/// pass the global one): the store applies the session's own idle window
/// instead. The cookie's `Max-Age` is global too: with
/// `PersistentSession`, set `session_ttl` to the longest window you grant,
/// and the store ends shorter sessions at their own.
///
/// # Errors
///
/// As [`Session::insert`](actix_session::Session::insert).
pub fn set_lifetime(
    session: &actix_session::Session,
    lifetime: SessionLifetime,
) -> Result<(), actix_session::SessionInsertError> {
    if lifetime.is_empty() {
        session.remove(LIFETIME_KEY);
        Ok(())
    } else {
        session.insert(LIFETIME_KEY, lifetime.to_value())
    }
}

/// The session's own lifetime, if [`set_lifetime`] gave it one.
pub fn lifetime(session: &actix_session::Session) -> Option<SessionLifetime> {
    let value: Value = session.get(LIFETIME_KEY).ok().flatten()?;
    SessionLifetime::from_value(&value).filter(|lifetime| !lifetime.is_empty())
}

/// The revocation handle of the session as loaded this request (`None` for
/// a session not yet stored). actix-session does not reveal the session key
/// (actix-extras #306), so this is how an application finds "this session"
/// among [`MongoSessionStore::user_sessions`].
pub fn current_handle(session: &actix_session::Session) -> Option<String> {
    let value: Value = session.get(TRACKING_KEY).ok().flatten()?;
    handle_in(&value)
}

/// When a session with this TTL expires: negative TTLs are now, and TTLs
/// past what a clock can hold are the far future (BSON then saturates).
fn expiry(ttl: &time::Duration) -> SystemTime {
    let ttl = Duration::try_from(*ttl).unwrap_or(Duration::ZERO);
    let now = SystemTime::now();
    now.checked_add(ttl)
        .unwrap_or_else(|| now + Duration::from_secs(i64::MAX as u64 / 1000))
}

fn key(id: String) -> anyhow::Result<SessionKey> {
    SessionKey::try_from(id).map_err(anyhow::Error::from)
}

fn save_error<E>(
    error: Error,
    serialization: impl FnOnce(anyhow::Error) -> E,
    other: impl FnOnce(anyhow::Error) -> E,
) -> E {
    if error.is_encode() {
        serialization(error.into())
    } else {
        other(error.into())
    }
}

/// actix-session keeps every value as a JSON string; the store keeps values.
/// actix-session's state (values as JSON text) as values, in any map.
fn parse<M: FromIterator<(String, Value)>>(state: SessionState) -> Result<M, serde_json::Error> {
    state
        .into_iter()
        .map(|(k, v)| Ok((k, serde_json::from_str(&v)?)))
        .collect()
}

impl MongoSessionStore {
    /// A loaded session as actix-session's state: every value as JSON text,
    /// and the tracking entry extended with each text's fingerprint and
    /// each value's stored size, so that an update parses only what
    /// changed ([`changed_only`](Self::changed_only)).
    fn to_state(&self, loaded: crate::session::LoadedSession) -> SessionState {
        let encrypted = self.layout().encryption.is_some();
        let mut data = loaded.into_map();
        let mut entry = match data.remove(TRACKING_KEY) {
            Some(Value::String(entry)) => entry,
            _ => return to_state(data),
        };
        entry.push('~');
        let mut state = SessionState::with_capacity(data.len() + 1);
        for (key, value) in data {
            let text = value.to_string();
            if !crate::session::is_reserved(&key) {
                Texts::push(&mut entry, &key, &text, entry_size(&key, &value, encrypted));
            }
            state.insert(key, text);
        }
        state.insert(TRACKING_KEY.to_string(), Value::String(entry).to_string());
        state
    }

    /// The values of `state` whose text is not the one loaded (and the
    /// store's reserved entries), the stored size of the others, and the
    /// snapshot; `None` where the save needs every value (no usable
    /// tracking entry, values stored the old way, or a store that does not
    /// save per key alone: see `saves_by_key`).
    pub(crate) fn changed_only(
        &self,
        state: &SessionState,
    ) -> Result<Option<ChangedOnly>, serde_json::Error> {
        let Some(entry) = state.get(TRACKING_KEY) else {
            return Ok(None);
        };
        let snapshot = Snapshot::from_value(&serde_json::from_str(entry)?);
        let Some(snapshot) = snapshot.filter(|s| s.stale.is_empty() && self.saves_by_key()) else {
            return Ok(None);
        };
        let Some(texts) = &snapshot.texts else {
            return Ok(None);
        };
        let mut changed = HashMap::new();
        let mut kept_size = 0;
        for (key, text) in state {
            if key == TRACKING_KEY {
                continue;
            }
            match texts.unchanged(key, text) {
                Some(size) => kept_size += size,
                None => {
                    changed.insert(key.clone(), serde_json::from_str(text)?);
                }
            }
        }
        Ok(Some((changed, kept_size, snapshot)))
    }
}

/// The values an update parsed, the stored size of those it did not, and
/// the load's snapshot.
type ChangedOnly = (HashMap<String, Value>, usize, Snapshot);

fn to_state(data: Map<String, Value>) -> SessionState {
    data.into_iter().map(|(k, v)| (k, v.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_round_trip_through_values() {
        let state: SessionState = [
            ("a".into(), r#"{"x":[1,2]}"#.into()),
            ("b".into(), "\"s\"".into()),
        ]
        .into_iter()
        .collect();
        let values: Map<String, Value> = parse(state.clone()).unwrap();
        assert_eq!(to_state(values), state);
        let bad: SessionState = [("a".into(), "not json".into())].into_iter().collect();
        assert!(parse::<Map<String, Value>>(bad).is_err());
    }

    #[test]
    fn negative_ttls_expire_now() {
        let now = SystemTime::now();
        assert!(expiry(&time::Duration::seconds(-5)) <= now + Duration::from_secs(1));
    }
}
