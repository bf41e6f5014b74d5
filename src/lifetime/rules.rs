//! How a session's own lifetime combines with the store's settings: the
//! expiry a write stores, the write-skipping window, and — for a write that
//! does not know the session's lifetime (a touch by id) — the same rules as
//! a server-side expression over the stored fields. Pure: unit-tested here.
//!
//! | the session has | its expiry on every write is | it ends at the latest |
//! |---|---|---|
//! | nothing of its own | what the framework asks (else now + `idle_timeout`) | `createdAt` + `absolute_timeout` |
//! | its own `idle_timeout` | now + its `idle_timeout` | `createdAt` + `absolute_timeout` |
//! | its own `absolute_timeout` | what the framework asks | `createdAt` + its `absolute_timeout` |
//!
//! A session's own values are clamped to `lifetime_limit`, when stored and
//! again when applied (so lowering the limit reaches stored sessions).

use std::time::{Duration, SystemTime};

use mongodb::bson::{doc, Bson, DateTime, Document};

use super::{millis, SessionLifetime, ABSOLUTE_TIMEOUT, IDLE_TIMEOUT, LIFETIME_FIELD};

/// The store-wide settings a session's own lifetime is combined with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    /// The store's idle window and fallback expiry.
    pub(crate) idle_timeout: Duration,
    /// The store's absolute lifetime.
    pub(crate) absolute_timeout: Option<Duration>,
    /// The longest a session's own values may be.
    pub(crate) limit: Duration,
    pub(crate) touch_after: Duration,
}

/// What a write at some moment stores as the expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expiry {
    /// Capped at the absolute lifetime when the creation time is known.
    pub(crate) expires: DateTime,
    /// Within this long of its last write, an unchanged session is not
    /// touched.
    pub(crate) window: Duration,
    /// The absolute lifetime the server caps the expiry with, from the
    /// stored creation time, when it is not known here.
    pub(crate) cap_on_server: Option<Duration>,
}

/// For a write that does not know the session's own lifetime: the server
/// applies the one stored, by these settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    limit: Duration,
    absolute_timeout: Option<Duration>,
}

impl Rules {
    /// `own`, clamped to the limit.
    pub(crate) fn clamp(&self, own: SessionLifetime) -> SessionLifetime {
        own.clamped(self.limit)
    }

    /// The absolute lifetime of a session with `own`: its own, else the
    /// store's.
    pub(crate) fn absolute(&self, own: Option<SessionLifetime>) -> Option<Duration> {
        own.and_then(|own| self.clamp(own).absolute_timeout)
            .or(self.absolute_timeout)
    }

    /// The write-skipping window of a session with `own`: `touch_after`,
    /// but at most half of its own idle window, so a short window is not
    /// outlived by the touches it skips.
    pub(crate) fn window(&self, own: Option<SessionLifetime>) -> Duration {
        match own.and_then(|own| self.clamp(own).idle_timeout) {
            Some(ttl) => self.touch_after.min(ttl / 2),
            None => self.touch_after,
        }
    }

    /// Whether a touch of a session with `own` may be skipped on this
    /// process's memory of its last write: only where the server's filter
    /// applies the whole `touch_after` (see [`touch_due`](Self::touch_due)).
    pub(crate) fn full_window(&self, own: Option<SessionLifetime>) -> bool {
        own.and_then(|own| self.clamp(own).idle_timeout)
            .is_none_or(|ttl| ttl >= self.touch_after.saturating_mul(2))
    }

    /// The expiry a write at `now` stores for a session with `own`, created
    /// at `created_at` (ms; `None` when not known here), when the framework
    /// asks for `asked`.
    pub(crate) fn expiry(
        &self,
        now: DateTime,
        asked: Option<SystemTime>,
        created_at: Option<i64>,
        own: Option<SessionLifetime>,
    ) -> Expiry {
        let idle = match own.and_then(|own| self.clamp(own).idle_timeout) {
            Some(ttl) => now.saturating_add_duration(ttl),
            None => asked.map_or_else(
                || now.saturating_add_duration(self.idle_timeout),
                DateTime::from_system_time,
            ),
        };
        let absolute = self.absolute(own);
        let expires = match (absolute, created_at) {
            (Some(max), Some(created)) => DateTime::from_millis(
                idle.timestamp_millis()
                    .min(created.saturating_add(millis(max))),
            ),
            _ => idle,
        };
        Expiry {
            expires,
            window: self.window(own),
            cap_on_server: absolute.filter(|_| created_at.is_none()),
        }
    }

    /// What a write that does not know the session's lifetime leaves to the
    /// server.
    pub(crate) fn stored(&self) -> Stored {
        Stored {
            limit: self.limit,
            absolute_timeout: self.absolute_timeout,
        }
    }

    /// The condition under which a touch by id is due at `now`: its last
    /// write (`last_modified`) outside `touch_after`, or a session whose own
    /// window is too short for the whole of it (always touched: the filter
    /// cannot halve a stored window cheaply, and touching more is only a
    /// cost). `None` without a window.
    pub(crate) fn touch_due(&self, last_modified: &str, now: DateTime) -> Option<Document> {
        if self.touch_after.is_zero() {
            return None;
        }
        let threshold = DateTime::from_system_time(
            now.to_system_time()
                .checked_sub(self.touch_after)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        );
        let short = millis(self.touch_after).saturating_mul(2);
        Some(doc! { "$or": [
            // `$not` also matches documents without the field.
            { last_modified: { "$not": { "$gte": threshold } } },
            { format!("{LIFETIME_FIELD}.{IDLE_TIMEOUT}"): { "$lt": short } },
        ] })
    }
}

/// The expiry a pipeline update stores, as an expression: `asked`, or now
/// plus the stored own idle window (`stored`); capped at the creation time
/// (the field `created_at`) plus `cap`, or plus the stored own absolute
/// lifetime or the store's (`stored`). Date arithmetic goes through
/// milliseconds: `$add` on a date is not understood by every MongoDB-wire
/// server.
pub(crate) fn expires_expression(
    asked: Bson,
    now: DateTime,
    created_at: Option<&str>,
    cap: Option<Duration>,
    stored: Option<Stored>,
) -> Bson {
    let own = |name: &str| format!("${LIFETIME_FIELD}.{name}");
    // `$ifNull` treats a missing field as null; `$eq` on a missing field
    // would not.
    let has = |name: &str| doc! { "$ne": [{ "$ifNull": [own(name), Bson::Null] }, Bson::Null] };
    let idle = match stored {
        Some(stored) => {
            let window = doc! { "$min": [own(IDLE_TIMEOUT), millis(stored.limit)] };
            let sliding = doc! { "$toDate": { "$add": [now.timestamp_millis(), window] } };
            Bson::Document(doc! { "$cond": [has(IDLE_TIMEOUT), sliding, asked] })
        }
        None => asked,
    };
    let absolute = match (stored, cap) {
        (Some(stored), _) => {
            let fallback = stored
                .absolute_timeout
                .map_or(Bson::Null, |d| Bson::Int64(millis(d)));
            let own_max = doc! { "$min": [own(ABSOLUTE_TIMEOUT), millis(stored.limit)] };
            Some(Bson::Document(
                doc! { "$cond": [has(ABSOLUTE_TIMEOUT), own_max, fallback] },
            ))
        }
        (None, Some(cap)) => Some(Bson::Int64(millis(cap))),
        (None, None) => None,
    };
    match (absolute, created_at) {
        (Some(absolute), Some(created_at)) => {
            let born = doc! { "$toLong": format!("${created_at}") };
            // A missing creation time or lifetime makes the cap null, which
            // `$min` ignores.
            let cap = doc! { "$toDate": { "$add": [born, absolute] } };
            Bson::Document(doc! { "$min": [idle, cap] })
        }
        _ => idle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn rules() -> Rules {
        Rules {
            idle_timeout: 12 * HOUR,
            absolute_timeout: Some(24 * HOUR),
            limit: 30 * 24 * HOUR,
            touch_after: HOUR,
        }
    }

    fn at(ms: i64) -> DateTime {
        DateTime::from_millis(ms)
    }

    fn ms(d: Duration) -> i64 {
        millis(d)
    }

    #[test]
    fn without_a_lifetime_of_its_own_the_store_settings_apply() {
        let asked = SystemTime::UNIX_EPOCH + 5 * HOUR;
        let expiry = rules().expiry(at(0), Some(asked), Some(0), None);
        assert_eq!(expiry.expires, DateTime::from_system_time(asked));
        assert_eq!(expiry.window, HOUR);
        // Nothing asked: now + idle_timeout; past the store's absolute lifetime: capped.
        let late = rules().expiry(at(ms(20 * HOUR)), None, Some(0), None);
        assert_eq!(late.expires, at(ms(24 * HOUR)));
        let unknown = rules().expiry(at(0), None, None, None);
        assert_eq!(unknown.cap_on_server, Some(24 * HOUR));
    }

    #[test]
    fn an_own_idle_window_replaces_the_asked_expiry_and_an_own_lifetime_the_store_one() {
        let own = SessionLifetime::new()
            .idle_timeout(7 * 24 * HOUR)
            .absolute_timeout(20 * 24 * HOUR);
        let asked = SystemTime::UNIX_EPOCH + HOUR;
        let now = ms(10 * 24 * HOUR);
        let expiry = rules().expiry(at(now), Some(asked), Some(0), Some(own));
        assert_eq!(expiry.expires, at(now + ms(7 * 24 * HOUR)));
        // Later, the session's own absolute lifetime caps it (not the store's 24 h).
        let later = rules().expiry(at(ms(18 * 24 * HOUR)), Some(asked), Some(0), Some(own));
        assert_eq!(later.expires, at(ms(20 * 24 * HOUR)));
        // A shorter window than the store's: the session ends sooner.
        let short = SessionLifetime::new().idle_timeout(HOUR);
        let expiry = rules().expiry(at(0), Some(asked + 10 * HOUR), Some(0), Some(short));
        assert_eq!(expiry.expires, at(ms(HOUR)));
        assert_eq!(expiry.window, HOUR / 2, "at most half its own window");
        assert!(!rules().full_window(Some(short)));
        assert!(rules().full_window(Some(own)) && rules().full_window(None));
    }

    #[test]
    fn own_values_past_the_limit_are_clamped() {
        let huge = SessionLifetime::new()
            .idle_timeout(365 * 24 * HOUR)
            .absolute_timeout(Duration::MAX);
        let clamped = rules().clamp(huge);
        assert_eq!(
            (clamped.idle_timeout, clamped.absolute_timeout),
            (Some(30 * 24 * HOUR), Some(30 * 24 * HOUR))
        );
        let expiry = rules().expiry(at(0), None, Some(0), Some(huge));
        assert_eq!(expiry.expires, at(ms(30 * 24 * HOUR)));
        let unknown = rules().expiry(at(0), None, None, Some(huge));
        assert_eq!(unknown.cap_on_server, Some(30 * 24 * HOUR));
    }

    #[test]
    fn the_server_applies_the_stored_lifetime_when_it_is_not_known_here() {
        let asked = Bson::DateTime(at(500));
        let stored = rules().stored();
        let expression = expires_expression(
            asked.clone(),
            at(100),
            Some("createdAt"),
            None,
            Some(stored),
        );
        let has = |f: &str| doc! { "$ne": [{ "$ifNull": [format!("$lifetime.{f}"), Bson::Null] }, Bson::Null] };
        let limit = ms(30 * 24 * HOUR);
        let idle = doc! { "$cond": [has("idleTimeout"), { "$toDate": { "$add": [100_i64, { "$min": ["$lifetime.idleTimeout", limit] }] } }, asked.clone()] };
        let absolute = doc! { "$cond": [has("absoluteTimeout"), { "$min": ["$lifetime.absoluteTimeout", limit] }, ms(24 * HOUR)] };
        assert_eq!(
            expression,
            Bson::Document(
                doc! { "$min": [idle, { "$toDate": { "$add": [{ "$toLong": "$createdAt" }, absolute] } }] }
            )
        );
        // Without timestamps there is nothing to cap from.
        let untimed = expires_expression(asked.clone(), at(100), None, Some(HOUR), None);
        assert_eq!(untimed, asked);
    }

    #[test]
    fn a_touch_by_id_is_due_outside_touch_after_or_for_a_short_own_window() {
        let due = rules().touch_due("lastModified", at(ms(2 * HOUR))).unwrap();
        assert_eq!(
            due,
            doc! { "$or": [
                { "lastModified": { "$not": { "$gte": at(ms(HOUR)) } } },
                { "lifetime.idleTimeout": { "$lt": ms(2 * HOUR) } },
            ] }
        );
        let no_window = Rules {
            touch_after: Duration::ZERO,
            ..rules()
        };
        assert!(no_window.touch_due("lastModified", at(0)).is_none());
    }
}
