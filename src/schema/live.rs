//! Which documents are live sessions: not expired, not past their absolute
//! lifetime — the store's, or the session's own — as query filters (for
//! writes, listings and counts) and in memory (for loads and the cache).

use std::time::Duration;

use mongodb::bson::{doc, Bson, DateTime, Document};

use super::{format::CURRENT, Layout, FORMAT_FIELD};
use crate::lifetime::{millis, SessionLifetime, LIFETIME_FIELD};

/// Where a session's own absolute lifetime is stored.
fn own_max_path() -> String {
    format!("{LIFETIME_FIELD}.absoluteTimeout")
}

/// `now - lifetime`: a session born after it is within `lifetime`.
fn born_after(now: DateTime, lifetime: Duration) -> DateTime {
    DateTime::from_system_time(
        now.to_system_time()
            .checked_sub(lifetime)
            .unwrap_or(std::time::UNIX_EPOCH),
    )
}

/// Adds `clause` to `filter` beside whatever it holds.
pub(crate) fn and(filter: &mut Document, clause: Document) {
    match filter.get_mut("$and") {
        Some(Bson::Array(clauses)) => clauses.push(Bson::Document(clause)),
        _ => {
            filter.insert("$and", vec![Bson::Document(clause)]);
        }
    }
}

impl Layout {
    pub(crate) fn live_filter_stored(&self, stored_id: &str, now: DateTime) -> Document {
        let mut filter = doc! { &self.fields.id: stored_id };
        self.restrict_to_live(&mut filter, now);
        filter
    }

    /// What every write of the session stored as `stored_id` is conditioned
    /// on: live, and not of a newer format than this release reads.
    pub(crate) fn write_filter(&self, stored_id: &str, now: DateTime) -> Document {
        let mut filter = self.live_filter_stored(stored_id, now);
        self.newer_excluded(&mut filter);
        filter
    }

    /// [`write_filter`](Self::write_filter) for a write whose expiry was
    /// computed from the lifetime the session was loaded with (`loaded`),
    /// conditioned on the document still storing it: the common save
    /// carries no expression. The creation time never changes and the
    /// expiry of such a write is capped at the session's own absolute
    /// lifetime, so only the store's is left to check here.
    pub(crate) fn write_filter_as_loaded(
        &self,
        stored_id: &str,
        now: DateTime,
        loaded: Option<SessionLifetime>,
    ) -> Document {
        let mut filter = doc! {
            &self.fields.id: stored_id,
            &self.fields.expires: { "$gt": now },
        };
        let own_max = loaded.and_then(|own| own.absolute_timeout);
        if let (Some(max), Some(field), None) =
            (self.absolute_timeout, &self.fields.created_at, own_max)
        {
            filter.insert(field, doc! { "$gt": born_after(now, max) });
        }
        self.newer_excluded(&mut filter);
        SessionLifetime::guard(loaded, &mut filter);
        filter
    }

    /// Adds "not expired, not past its absolute lifetime" to `filter`: the
    /// store's, or the session's own (its own is counted by the server from
    /// the stored creation time, bounded by the limit).
    pub(crate) fn restrict_to_live(&self, filter: &mut Document, now: DateTime) {
        filter.insert(&self.fields.expires, doc! { "$gt": now });
        if let Some(within) = self.within_lifetime(now) {
            and(filter, within);
        }
    }

    /// Matches sessions within their absolute lifetime, if any applies:
    /// the store's for a session without one of its own, its own (clamped
    /// to the limit) otherwise. `None` without timestamps (no absolute
    /// lifetime can be set then).
    fn within_lifetime(&self, now: DateTime) -> Option<Document> {
        let field = self.fields.created_at.as_ref()?;
        let own = own_max_path();
        let mut store_wide = doc! { &own: { "$exists": false } };
        if let Some(max) = self.absolute_timeout {
            store_wide.insert(field, doc! { "$gt": born_after(now, max) });
        }
        let own_ends = doc! { "$gt": [self.own_deadline(field), now.timestamp_millis()] };
        Some(doc! { "$or": [store_wide, { &own: { "$exists": true }, "$expr": own_ends }] })
    }

    /// When a session with a lifetime of its own ends (ms), as an
    /// expression: null without a creation time.
    fn own_deadline(&self, created_at: &str) -> Document {
        let own = millis(self.lifetime_limit);
        doc! { "$add": [
            { "$toLong": format!("${created_at}") },
            { "$min": [format!("${}", own_max_path()), own] },
        ] }
    }

    /// Matches sessions that are no longer live: expired, or past their
    /// absolute lifetime (or without the creation time it is counted from).
    /// A document of a newer format goes only when expired, as the TTL
    /// index would take it: its lifetimes may mean more than this release
    /// knows.
    pub(crate) fn expired_filter(&self, now: DateTime) -> Document {
        let expired = doc! { &self.fields.expires: { "$lte": now } };
        let Some(field) = &self.fields.created_at else {
            return expired;
        };
        let own = own_max_path();
        let own_ended =
            doc! { "$not": [{ "$gt": [self.own_deadline(field), now.timestamp_millis()] }] };
        let mut past = vec![Bson::Document(
            doc! { &own: { "$exists": true }, "$expr": own_ended },
        )];
        if let Some(max) = self.absolute_timeout {
            // `$not` also matches documents without the field.
            past.push(Bson::Document(doc! {
                &own: { "$exists": false },
                field: { "$not": { "$gt": born_after(now, max) } },
            }));
        }
        let too_old = doc! { "$or": past, FORMAT_FIELD: { "$not": { "$gt": CURRENT } } };
        doc! { "$or": [expired, too_old] }
    }

    /// Whether a session expiring at `expires`, created at `created_at`,
    /// with `own` lifetime, is live at `now`: [`restrict_to_live`]'s filter
    /// applied in memory, with the session's own absolute lifetime exactly.
    /// With an absolute lifetime, a session without a creation time is not
    /// live.
    ///
    /// [`restrict_to_live`]: Self::restrict_to_live
    pub(crate) fn is_live_at(
        &self,
        now: DateTime,
        expires: DateTime,
        created_at: Option<DateTime>,
        own: Option<SessionLifetime>,
    ) -> bool {
        let absolute = own
            .and_then(|own| own.absolute_timeout)
            .map(|max| max.min(self.lifetime_limit))
            .or(self.absolute_timeout);
        let within_lifetime = match (absolute, &self.fields.created_at) {
            (Some(max), Some(_)) => created_at.is_some_and(|created| {
                created.timestamp_millis().saturating_add(millis(max)) > now.timestamp_millis()
            }),
            _ => true,
        };
        expires > now && within_lifetime
    }

    /// `expires`, brought forward to the end of the store's absolute
    /// lifetime (for a migration's copies).
    #[cfg_attr(not(feature = "express"), allow(dead_code))]
    pub(crate) fn cap_expiry(&self, expires: DateTime, created_at: Option<i64>) -> DateTime {
        match (self.absolute_timeout, created_at) {
            (Some(max), Some(created)) => DateTime::from_millis(
                expires
                    .timestamp_millis()
                    .min(created.saturating_add(millis(max))),
            ),
            _ => expires,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn layout() -> Layout {
        Layout {
            absolute_timeout: Some(HOUR),
            lifetime_limit: 10 * HOUR,
            ..Layout::default()
        }
    }

    #[test]
    fn a_session_with_an_absolute_lifetime_of_its_own_outlives_the_stores() {
        let now = DateTime::from_millis(millis(5 * HOUR));
        let later = DateTime::from_millis(millis(6 * HOUR));
        let born = Some(DateTime::from_millis(0));
        let own = SessionLifetime::new().absolute_timeout(8 * HOUR);
        assert!(
            !layout().is_live_at(now, later, born, None),
            "past the store's"
        );
        assert!(layout().is_live_at(now, later, born, Some(own)));
        let past_own = DateTime::from_millis(millis(9 * HOUR));
        assert!(!layout().is_live_at(
            past_own,
            past_own.saturating_add_duration(HOUR),
            born,
            Some(own)
        ));
        assert!(
            !layout().is_live_at(now, later, None, Some(own)),
            "no creation time"
        );
        // Clamped to the limit.
        let huge = SessionLifetime::new().absolute_timeout(100 * HOUR);
        let after_limit = DateTime::from_millis(millis(11 * HOUR));
        assert!(!layout().is_live_at(
            after_limit,
            after_limit.saturating_add_duration(HOUR),
            born,
            Some(huge)
        ));
    }

    #[test]
    fn a_write_computed_from_the_loaded_lifetime_is_conditioned_on_it_alone() {
        let now = DateTime::from_millis(millis(20 * HOUR));
        let born_after = DateTime::from_millis(millis(19 * HOUR));
        let plain = layout().write_filter_as_loaded("id", now, None);
        assert_eq!(
            plain,
            doc! {
                "_id": "id", "expires": { "$gt": now }, "createdAt": { "$gt": born_after },
                "format": { "$not": { "$gt": 2_i64 } },
                "lifetime.idleTimeout": { "$exists": false }, "lifetime.absoluteTimeout": { "$exists": false },
            }
        );
        let own = SessionLifetime::new().absolute_timeout(5 * HOUR);
        let remembered = layout().write_filter_as_loaded("id", now, Some(own));
        assert!(
            !remembered.contains_key("createdAt"),
            "its own, capped in the expiry"
        );
        assert_eq!(
            remembered.get_i64("lifetime.absoluteTimeout"),
            Ok(millis(5 * HOUR))
        );
    }

    #[test]
    fn filters_end_own_lifetimes_on_the_server_and_leave_newer_formats_to_the_ttl_index() {
        let now = DateTime::from_millis(millis(20 * HOUR));
        let mut live = Document::new();
        layout().restrict_to_live(&mut live, now);
        let deadline = doc! { "$add": [
            { "$toLong": "$createdAt" },
            { "$min": ["$lifetime.absoluteTimeout", millis(10 * HOUR)] },
        ] };
        assert_eq!(
            live.get_array("$and").unwrap()[0],
            Bson::Document(doc! { "$or": [
                { "lifetime.absoluteTimeout": { "$exists": false }, "createdAt": { "$gt": DateTime::from_millis(millis(19 * HOUR)) } },
                { "lifetime.absoluteTimeout": { "$exists": true }, "$expr": { "$gt": [deadline, millis(20 * HOUR)] } },
            ] })
        );
        let expired = layout().expired_filter(now);
        let too_old = expired.get_array("$or").unwrap()[1]
            .as_document()
            .unwrap()
            .clone();
        assert_eq!(
            too_old.get_document("format").unwrap(),
            &doc! { "$not": { "$gt": 2_i64 } }
        );
        let untimed = Layout {
            fields: super::super::Fields {
                created_at: None,
                ..Default::default()
            },
            ..Layout::default()
        };
        let mut plain = Document::new();
        untimed.restrict_to_live(&mut plain, now);
        assert_eq!(
            plain,
            doc! { "expires": { "$gt": now } },
            "no lifetime without timestamps"
        );
    }
}
