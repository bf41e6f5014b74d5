//! [tower-sessions](https://docs.rs/tower-sessions) integration:
//! [`MongoSessionStore`] implements [`SessionStore`] and [`ExpiredDeletion`].
//!
//! Everything here translates between tower-sessions' [`Record`] and the
//! store's core operations; no store logic lives in this module.
//!
//! - `create` inserts, drawing a new [`Id`] on a collision — never
//!   overwriting another session.
//! - `save` writes only the keys the request changed, never recreates a
//!   deleted session, and for an unchanged session only moves the expiry
//!   (honouring `touch_after`). tower-sessions calls `save` for unchanged
//!   sessions only with
//!   [`with_always_save(true)`](https://docs.rs/tower-sessions/latest/tower_sessions/service/struct.SessionManagerLayer.html#method.with_always_save):
//!   turn it on for a sliding expiry that costs no data rewrite.
//! - `load` returns `None` for a missing, expired or undecodable session, so
//!   the visitor gets a fresh one; the decode error is logged (without the
//!   id).
//!
//! A loaded record carries one reserved entry, [`TRACKING_KEY`], which the
//! store uses to tell what changed. Do not read or write it; use
//! [`stored_keys`] to list the session's keys.

use std::time::SystemTime;

use async_trait::async_trait;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tower_sessions_core::{
    session::{Id, Record},
    session_store::{self, ExpiredDeletion, SessionStore},
    Expiry, Session,
};

use crate::{
    id::RedactedId, outcome::handle_in, session::SaveOutcome, session::LIFETIME_KEY,
    session::TRACKING_KEY, session::USER_KEY, snapshot::Snapshot, store::Touches, Error,
    MongoSessionStore, SessionLifetime, UserInfo,
};

#[async_trait]
impl SessionStore for MongoSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let data = to_map(record);
        let mut id = record.id;
        let mut first = true;
        let next_id = || {
            if !first {
                id = Id::default();
            }
            first = false;
            id.to_string()
        };
        match self
            .create_with_ids(next_id, &data, Some(record.expiry_date.into()))
            .await
        {
            // `cycle_id` of a session ended meanwhile: the new id stays
            // unstored, so the next request starts a fresh session.
            Err(e) if e.is_ended() => {
                tracing::debug!("id regeneration of a session ended meanwhile: not stored");
            }
            other => {
                other?;
            }
        }
        record.id = id;
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let id = record.id.to_string();
        let outcome = self
            .save_map(&id, &record.data, Some(record.expiry_date.into()))
            .await?;
        if outcome == SaveOutcome::Missing {
            tracing::debug!(session = %RedactedId::new(&id), "save of a deleted or expired session ignored");
        }
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let id = session_id.to_string();
        let found = self.load_or_fresh(&id, Touches::BySave).await?;
        Ok(found.map(|loaded| Record {
            id: *session_id,
            expiry_date: offset_date_time(loaded.expires),
            data: loaded.into_map().into_iter().collect(),
        }))
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        self.delete(&session_id.to_string()).await?;
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for MongoSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        self.delete_expired().await?;
        Ok(())
    }
}

impl From<Error> for session_store::Error {
    fn from(error: Error) -> Self {
        if error.is_decode() {
            Self::Decode(error.to_string())
        } else if error.is_encode() {
            Self::Encode(error.to_string())
        } else {
            Self::Backend(error.to_string())
        }
    }
}

/// `time`'s range ends in the year 9999 (999999 with its `large-dates`
/// feature), BSON's far later (a date a Node
/// app wrote can be anywhere in it): later dates become the latest `time`
/// can hold, earlier ones the earliest, instead of a panic.
fn offset_date_time(at: SystemTime) -> OffsetDateTime {
    let latest = time::Date::MAX.with_time(time::Time::MIDNIGHT).assume_utc();
    let earliest = time::Date::MIN.with_time(time::Time::MIDNIGHT).assume_utc();
    let epoch = OffsetDateTime::UNIX_EPOCH;
    match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => time::Duration::try_from(after)
            .ok()
            .and_then(|d| epoch.checked_add(d))
            .unwrap_or(latest),
        Err(before) => time::Duration::try_from(before.duration())
            .ok()
            .and_then(|d| epoch.checked_sub(d))
            .unwrap_or(earliest),
    }
}

fn to_map(record: &Record) -> Map<String, Value> {
    record
        .data
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The keys the session held when it was loaded from the store, sorted.
///
/// tower-sessions has no way to list a session's keys; this reads them from
/// the store's reserved entry. Keys inserted or removed during the current
/// request are not reflected, and a session not loaded from the store (new,
/// or cleared) has none.
///
/// # Errors
///
/// As [`Session::get_value`] (the session is loaded if it was not yet).
pub async fn stored_keys(
    session: &Session,
) -> Result<Vec<String>, tower_sessions_core::session::Error> {
    let entry = session.get_value(TRACKING_KEY).await?;
    let mut keys: Vec<String> = entry
        .as_ref()
        .and_then(Snapshot::from_value)
        .map(|snapshot| snapshot.fingerprints.keys().map(str::to_string).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    Ok(keys)
}

/// Records who owns the session, and optionally the client (stored in
/// indexed fields when the session is saved), so the user's sessions can be
/// listed and revoked.
///
/// # Errors
///
/// As [`Session::insert_value`].
pub async fn set_user(
    session: &Session,
    user: &UserInfo,
) -> Result<(), tower_sessions_core::session::Error> {
    session.insert_value(USER_KEY, user.to_value()).await?;
    Ok(())
}

/// Who owns the session, if [`set_user`] was called for it.
///
/// # Errors
///
/// As [`Session::get_value`].
pub async fn user(
    session: &Session,
) -> Result<Option<UserInfo>, tower_sessions_core::session::Error> {
    Ok(session
        .get_value(USER_KEY)
        .await?
        .as_ref()
        .and_then(UserInfo::from_value))
}

/// Gives the session a lifetime of its own ("remember me"), stored with it
/// when it is saved and kept across id regeneration; an empty
/// [`SessionLifetime`] removes it (the store's settings apply again).
///
/// tower-sessions takes the cookie's `Max-Age` from the session's
/// [`Expiry`], which it does not keep between
/// requests (tower-sessions #215): with an idle window, this also sets the
/// session's expiry to `Expiry::OnInactivity(ttl)` for this response; call
/// [`apply_lifetime`] on later requests (in a middleware) so the cookie keeps
/// following it. The store itself needs neither: it applies the stored
/// lifetime on every write, whatever expiry the framework asks for.
///
/// # Errors
///
/// As [`Session::insert_value`].
pub async fn set_lifetime(
    session: &Session,
    lifetime: SessionLifetime,
) -> Result<(), tower_sessions_core::session::Error> {
    if lifetime.is_empty() {
        session.remove_value(LIFETIME_KEY).await?;
    } else {
        session
            .insert_value(LIFETIME_KEY, lifetime.to_value())
            .await?;
    }
    follow(session, lifetime);
    Ok(())
}

/// The session's own lifetime, if [`set_lifetime`] gave it one (as set, or
/// as stored: clamped to the store's
/// [`lifetime_limit`](crate::StoreBuilder::lifetime_limit)).
///
/// # Errors
///
/// As [`Session::get_value`].
pub async fn lifetime(
    session: &Session,
) -> Result<Option<SessionLifetime>, tower_sessions_core::session::Error> {
    Ok(session
        .get_value(LIFETIME_KEY)
        .await?
        .as_ref()
        .and_then(SessionLifetime::from_value)
        .filter(|lifetime| !lifetime.is_empty()))
}

/// Makes this response's cookie follow the session's own idle window, if it
/// has one: sets the session's expiry to `Expiry::OnInactivity(ttl)` (see
/// [`set_lifetime`]). Call it on every request, for example from an
/// `axum::middleware::from_fn` layer inside the session layer; it changes
/// nothing for a session without an idle window of its own, or whose
/// expiry already follows it.
///
/// # Errors
///
/// As [`Session::get_value`].
pub async fn apply_lifetime(
    session: &Session,
) -> Result<Option<SessionLifetime>, tower_sessions_core::session::Error> {
    let own = lifetime(session).await?;
    if let Some(own) = own {
        follow(session, own);
    }
    Ok(own)
}

/// Sets the session's expiry to its own idle window, when it has one and
/// the expiry is not that already (a change marks the session modified).
fn follow(session: &Session, lifetime: SessionLifetime) {
    let Some(ttl) = lifetime.idle_timeout else {
        return;
    };
    let ttl = time::Duration::try_from(ttl).unwrap_or(time::Duration::MAX);
    let expiry = Expiry::OnInactivity(ttl);
    if session.expiry() != Some(expiry) {
        session.set_expiry(Some(expiry));
    }
}

/// The revocation handle of the session as loaded this request (`None` for
/// a session not yet stored), to flag it in
/// [`MongoSessionStore::user_sessions`] or keep it in
/// [`MongoSessionStore::revoke_others`].
///
/// # Errors
///
/// As [`Session::get_value`].
pub async fn current_handle(
    session: &Session,
) -> Result<Option<String>, tower_sessions_core::session::Error> {
    Ok(session
        .get_value(TRACKING_KEY)
        .await?
        .as_ref()
        .and_then(handle_in))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn dates_outside_times_range_saturate() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 / 1000);
        assert_eq!(offset_date_time(far).year(), time::Date::MAX.year());
        let ancient = SystemTime::UNIX_EPOCH - Duration::from_secs(i64::MAX as u64 / 1000);
        assert_eq!(offset_date_time(ancient).year(), time::Date::MIN.year());
        let now = SystemTime::now();
        assert_eq!(offset_date_time(now), OffsetDateTime::from(now));
    }
}
