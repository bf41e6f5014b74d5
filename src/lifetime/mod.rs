//! A session's own lifetime (remember-me): its idle window and its
//! absolute lifetime, set by the application for one session and stored in
//! its document.
//!
//! Like the owner ([`UserInfo`](crate::UserInfo)), it travels in a reserved
//! session-map entry ([`LIFETIME_KEY`]) — a new session's id, and so its
//! document, only exists once the framework saves it — and is stored in a
//! top-level field:
//!
//! ```text
//! lifetime: { idleTimeout: NumberLong(ms), absoluteTimeout: NumberLong(ms) }   // either may be absent
//! ```
//!
//! How it combines with the store's settings is decided in `rules.rs`.

mod rules;

pub(crate) use rules::{expires_expression, Rules, Stored};

use std::time::Duration;

use mongodb::bson::{doc, Bson, Document, RawBsonRef, RawDocument};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

/// The reserved session-map entry holding the session's own
/// [`SessionLifetime`].
pub const LIFETIME_KEY: &str = "__mongodb_session_store_lifetime";

/// The top-level document field holding a session's own lifetime.
pub(crate) const LIFETIME_FIELD: &str = "lifetime";
const IDLE_TIMEOUT: &str = "idleTimeout";
const ABSOLUTE_TIMEOUT: &str = "absoluteTimeout";

/// A session's own idle window and absolute lifetime, replacing the store's
/// [`idle_timeout`](crate::StoreBuilder::idle_timeout) and
/// [`absolute_timeout`](crate::StoreBuilder::absolute_timeout) for that session
/// ("remember me": one session lives 30 days, another 12 hours).
///
/// Set it from a handler with `tower::set_lifetime` or `actix::set_lifetime`
/// (or, through the core API, by putting [`to_value`](Self::to_value) under
/// [`LIFETIME_KEY`] in the session map). It is stored with the session,
/// honoured by every instance, kept when the id is regenerated, and bounded
/// by [`lifetime_limit`](crate::StoreBuilder::lifetime_limit): a longer value
/// is clamped to it.
///
/// ```
/// use std::time::Duration;
/// use mongodb_session_store::SessionLifetime;
///
/// const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// // Remember me: signed out after 30 idle days, and after 90 days whatever.
/// let remembered = SessionLifetime::new().idle_timeout(30 * DAY).absolute_timeout(90 * DAY);
/// assert_eq!(remembered.idle_timeout, Some(30 * DAY));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SessionLifetime {
    /// The session's idle window: every write or touch sets its expiry to
    /// now plus this, instead of the expiry the framework asks for (or the
    /// store's `idle_timeout`). `None`: the framework's, as for any session.
    pub idle_timeout: Option<Duration>,
    /// The session's absolute lifetime, counted from its creation, instead
    /// of the store's `absolute_timeout`. `None`: the store's.
    pub absolute_timeout: Option<Duration>,
}

impl SessionLifetime {
    /// No lifetime of its own: the store's settings apply.
    pub fn new() -> Self {
        Self::default()
    }

    /// With this idle window.
    #[must_use]
    pub fn idle_timeout(mut self, window: Duration) -> Self {
        self.idle_timeout = Some(window);
        self
    }

    /// With this absolute lifetime.
    #[must_use]
    pub fn absolute_timeout(mut self, lifetime: Duration) -> Self {
        self.absolute_timeout = Some(lifetime);
        self
    }

    /// Whether it sets nothing (the store's settings apply).
    pub fn is_empty(&self) -> bool {
        self.idle_timeout.is_none() && self.absolute_timeout.is_none()
    }

    /// The reserved entry's value: milliseconds.
    pub fn to_value(&self) -> Value {
        let mut entry = Map::new();
        if let Some(ttl) = self.idle_timeout {
            entry.insert(IDLE_TIMEOUT.into(), json!(millis(ttl)));
        }
        if let Some(max) = self.absolute_timeout {
            entry.insert(ABSOLUTE_TIMEOUT.into(), json!(millis(max)));
        }
        Value::Object(entry)
    }

    /// Reads the reserved entry's value; `None` if it is not one.
    pub fn from_value(value: &Value) -> Option<Self> {
        let entry = value.as_object()?;
        let read = |name: &str| match entry.get(name) {
            None => Some(None),
            Some(ms) => ms.as_u64().map(|ms| Some(Duration::from_millis(ms))),
        };
        Some(Self {
            idle_timeout: read(IDLE_TIMEOUT)?,
            absolute_timeout: read(ABSOLUTE_TIMEOUT)?,
        })
    }

    /// The lifetime recorded in a session map, if any.
    pub fn of(map: &Map<String, Value>) -> Option<Self> {
        map.get(LIFETIME_KEY)
            .and_then(Self::from_value)
            .filter(|lifetime| !lifetime.is_empty())
    }

    /// With each value at most `limit`.
    pub(crate) fn clamped(self, limit: Duration) -> Self {
        Self {
            idle_timeout: self.idle_timeout.map(|d| d.min(limit)),
            absolute_timeout: self.absolute_timeout.map(|d| d.min(limit)),
        }
    }

    /// The stored field's value.
    pub(crate) fn to_document(self) -> Document {
        let mut stored = Document::new();
        if let Some(ttl) = self.idle_timeout {
            stored.insert(IDLE_TIMEOUT, millis(ttl));
        }
        if let Some(max) = self.absolute_timeout {
            stored.insert(ABSOLUTE_TIMEOUT, millis(max));
        }
        stored
    }

    /// Matches a document storing exactly this lifetime (`None`: none):
    /// what a write computed from a loaded lifetime is conditioned on, so a
    /// lifetime changed meanwhile by another request is never overruled by
    /// an expiry computed from the old one.
    pub(crate) fn guard(lifetime: Option<Self>, filter: &mut Document) {
        let lifetime = lifetime.unwrap_or_default();
        for (name, value) in [
            (IDLE_TIMEOUT, lifetime.idle_timeout),
            (ABSOLUTE_TIMEOUT, lifetime.absolute_timeout),
        ] {
            let path = format!("{LIFETIME_FIELD}.{name}");
            match value {
                Some(d) => filter.insert(path, millis(d)),
                None => filter.insert(path, doc! { "$exists": false }),
            };
        }
    }
}

/// The lifetime a document stores, if it stores one.
///
/// # Errors
///
/// [`Error::is_decode`] naming the field, for anything but a document of
/// non-negative integers.
pub(crate) fn decode_stored(document: &RawDocument) -> Result<Option<SessionLifetime>> {
    let stored = match document.get(LIFETIME_FIELD) {
        Ok(None) => return Ok(None),
        Ok(Some(RawBsonRef::Document(stored))) => stored,
        Ok(Some(other)) => {
            let found = format!("expected a document, found {:?}", other.element_type());
            return Err(Error::decode(LIFETIME_FIELD, found));
        }
        Err(e) => {
            return Err(Error::decode(
                LIFETIME_FIELD,
                format!("malformed BSON: {e}"),
            ))
        }
    };
    let read = |name: &str| -> Result<Option<Duration>> {
        let path = || format!("{LIFETIME_FIELD}.{name}");
        let ms = match stored.get(name) {
            Ok(None) => return Ok(None),
            Ok(Some(RawBsonRef::Int64(ms))) => ms,
            Ok(Some(RawBsonRef::Int32(ms))) => i64::from(ms),
            Ok(Some(other)) => {
                let found = format!("expected an integer, found {:?}", other.element_type());
                return Err(Error::decode(path(), found));
            }
            Err(e) => return Err(Error::decode(path(), format!("malformed BSON: {e}"))),
        };
        u64::try_from(ms)
            .map(|ms| Some(Duration::from_millis(ms)))
            .map_err(|_| Error::decode(path(), "negative"))
    };
    let lifetime = SessionLifetime {
        idle_timeout: read(IDLE_TIMEOUT)?,
        absolute_timeout: read(ABSOLUTE_TIMEOUT)?,
    };
    Ok((!lifetime.is_empty()).then_some(lifetime))
}

/// Milliseconds as BSON stores them, saturating.
pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The lifetime a session had when it was loaded, which a write computed
/// its expiry from: the write is conditioned on the document still storing
/// it (see [`SessionLifetime::guard`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AsLoaded(pub(crate) Option<SessionLifetime>);

/// What a write does to the stored lifetime: `None` keeps it, `Some(None)`
/// removes it, `Some(Some(lifetime))` sets it.
pub(crate) type LifetimeChange = Option<Option<SessionLifetime>>;

/// Adds `change` to an update's `$set` and `$unset`, a lifetime clamped to
/// `limit`.
pub(crate) fn write_change(
    change: &LifetimeChange,
    limit: Duration,
    set: &mut Document,
    unset: &mut Document,
) {
    match change {
        Some(Some(lifetime)) if !lifetime.is_empty() => {
            set.insert(LIFETIME_FIELD, lifetime.clamped(limit).to_document());
        }
        Some(_) => {
            unset.insert(LIFETIME_FIELD, "");
        }
        None => {}
    }
}

/// [`write_change`] for an update whose `$unset`, if any, is already in it.
pub(crate) fn write_change_into(
    change: &LifetimeChange,
    limit: Duration,
    set: &mut Document,
    update: &mut Document,
) {
    let mut unset = Document::new();
    write_change(change, limit, set, &mut unset);
    if unset.is_empty() {
        return;
    }
    match update.get_mut("$unset") {
        Some(Bson::Document(existing)) => existing.extend(unset),
        _ => {
            update.insert("$unset", unset);
        }
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::rawdoc;

    use super::*;

    #[test]
    fn the_entry_and_the_stored_field_round_trip() {
        let lifetime = SessionLifetime::new()
            .idle_timeout(Duration::from_secs(60))
            .absolute_timeout(Duration::from_millis(1_500));
        assert_eq!(
            SessionLifetime::from_value(&lifetime.to_value()),
            Some(lifetime)
        );
        let stored = mongodb::bson::RawDocumentBuf::from_document(
            &doc! { LIFETIME_FIELD: lifetime.to_document() },
        )
        .unwrap();
        assert_eq!(decode_stored(&stored).unwrap(), Some(lifetime));
        let idle_only = SessionLifetime::new().idle_timeout(Duration::from_secs(1));
        assert_eq!(idle_only.to_value(), json!({"idleTimeout": 1000}));
        assert_eq!(
            SessionLifetime::from_value(&json!({})),
            Some(SessionLifetime::new())
        );
        for bad in [
            json!("x"),
            json!({"idleTimeout": -1}),
            json!({"idleTimeout": "1"}),
            json!({"absoluteTimeout": 1.5}),
        ] {
            assert_eq!(SessionLifetime::from_value(&bad), None, "{bad}");
        }
    }

    #[test]
    fn a_malformed_stored_lifetime_is_a_decode_error_naming_the_field() {
        for (bad, field) in [
            (rawdoc! { "lifetime": 5 }, "lifetime"),
            (
                rawdoc! { "lifetime": { "idleTimeout": "x" } },
                "lifetime.idleTimeout",
            ),
            (
                rawdoc! { "lifetime": { "absoluteTimeout": -5_i64 } },
                "lifetime.absoluteTimeout",
            ),
        ] {
            let error = decode_stored(&bad).unwrap_err();
            assert_eq!(error.decode_field(), Some(field), "{error}");
        }
        assert_eq!(decode_stored(&rawdoc! { "lifetime": {} }).unwrap(), None);
        assert_eq!(decode_stored(&rawdoc! {}).unwrap(), None);
    }

    #[test]
    fn changes_become_set_or_unset() {
        let (mut set, mut update) = (Document::new(), doc! { "$unset": { "user": "" } });
        write_change_into(&Some(None), Duration::MAX, &mut set, &mut update);
        assert_eq!(update, doc! { "$unset": { "user": "", "lifetime": "" } });
        let lifetime = SessionLifetime::new().idle_timeout(Duration::from_secs(2));
        write_change_into(&Some(Some(lifetime)), Duration::MAX, &mut set, &mut update);
        assert_eq!(set, doc! { "lifetime": { "idleTimeout": 2000_i64 } });
        let clamped = Duration::from_secs(1);
        write_change_into(&Some(Some(lifetime)), clamped, &mut set, &mut update);
        assert_eq!(
            set,
            doc! { "lifetime": { "idleTimeout": 1000_i64 } },
            "clamped to the limit"
        );
    }
}
