//! A write of a live session that matched nothing, told apart with one
//! read, off the common path: the session is gone, or of a newer format
//! (never written: a typed error), or was given another lifetime meanwhile
//! (the write is planned again from the stored one).

use mongodb::bson::{doc, DateTime};

use super::MongoSessionStore;
use crate::{
    error::Result,
    lifetime::{decode_stored, AsLoaded, SessionLifetime, LIFETIME_FIELD},
    outcome::SaveOutcome,
    schema::{format_of, optional_date, FORMAT_FIELD},
};

/// How a write of a live session ended.
#[derive(Debug)]
pub(super) enum Miss {
    /// It was written.
    Written(SaveOutcome),
    /// There is no live session: deleted, expired, past its lifetime.
    Gone,
    /// The session is live, with another lifetime than the write's expiry
    /// was computed from (changed by another request since the load).
    Relifed {
        lifetime: Option<SessionLifetime>,
        /// Milliseconds since the epoch.
        created_at: Option<i64>,
    },
    /// A write that was to be cached, conditioned on the version loaded,
    /// matched nothing: another write may have come between. Nothing was
    /// written; plan again without caching.
    Raced,
}

impl MongoSessionStore {
    /// Why a write of the session stored as `stored_id` at `now` matched
    /// nothing; `as_loaded`: the lifetime it was conditioned on, if any.
    ///
    /// # Errors
    ///
    /// [`Error::is_newer_format`](crate::Error::is_newer_format) for a
    /// document of a newer format; decode errors; server errors.
    pub(super) async fn missed(
        &self,
        stored_id: &str,
        now: DateTime,
        as_loaded: Option<AsLoaded>,
    ) -> Result<Miss> {
        let fields = &self.inner.layout.fields;
        let mut projection = doc! { FORMAT_FIELD: 1, LIFETIME_FIELD: 1, &fields.expires: 1 };
        if let Some(created_at) = &fields.created_at {
            projection.insert(created_at, 1);
        }
        let find = self
            .inner
            .raw
            .find_one(doc! { &fields.id: stored_id })
            .projection(projection);
        let Some(document) = self.run("find", find).await? else {
            return Ok(Miss::Gone);
        };
        format_of(&document)?;
        let lifetime = decode_stored(&document)?;
        let created_at = match &fields.created_at {
            Some(name) => optional_date(&document, name)?,
            None => None,
        };
        let Some(expires) = optional_date(&document, &fields.expires)? else {
            return Ok(Miss::Gone);
        };
        let live = self
            .inner
            .layout
            .is_live_at(now, expires, created_at, lifetime);
        if as_loaded.is_none() || !live {
            return Ok(Miss::Gone);
        }
        Ok(Miss::Relifed {
            lifetime,
            created_at: created_at.map(DateTime::timestamp_millis),
        })
    }
}
