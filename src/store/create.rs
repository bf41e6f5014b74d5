//! Creating a session: collision-safe, never overwriting another.

use std::time::SystemTime;

use mongodb::bson::DateTime;
use serde_json::{Map, Value};

use super::MongoSessionStore;
use crate::{
    error::{is_duplicate_key, Error, Result},
    events::EventKind,
    id::{generate_id, RedactedId},
    lifetime::LIFETIME_FIELD,
    observe::{observed, Op},
    outcome::{LoadedSession, Written},
    schema::{FORMAT_FIELD, LINEAGE_FIELD},
    snapshot::{split, Snapshot},
    user::UserInfo,
};

const MAX_CREATE_ATTEMPTS: u32 = 8;

impl MongoSessionStore {
    /// Stores a new session under a fresh id from the store's CSPRNG and
    /// returns that id. `expires: None` means now + [`idle_timeout`](Self::idle_timeout).
    ///
    /// # Errors
    ///
    /// [`Error::is_encode`](crate::Error::is_encode) if `data` cannot be stored; server errors.
    pub async fn create(
        &self,
        data: &Map<String, Value>,
        expires: Option<SystemTime>,
    ) -> Result<String> {
        self.create_with_ids(generate_id, data, expires).await
    }

    /// Stores a new session under the first id `next_id` yields that is not
    /// taken, and returns it. An id collision never overwrites the existing
    /// session: the insert fails on the unique id and the next id is tried
    /// (at most eight in all).
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create), plus [`Error::is_id_exhausted`](crate::Error::is_id_exhausted) if every
    /// id drawn was taken.
    pub async fn create_with_ids(
        &self,
        next_id: impl FnMut() -> String,
        data: &Map<String, Value>,
        expires: Option<SystemTime>,
    ) -> Result<String> {
        let create = self.create_unobserved(next_id, data, expires);
        observed(Op::Create, None, create).await
    }

    async fn create_unobserved(
        &self,
        mut next_id: impl FnMut() -> String,
        data: &Map<String, Value>,
        expires: Option<SystemTime>,
    ) -> Result<String> {
        let layout = self.layout();
        let (entries, snapshot) = split(data);
        entries.check_reserved()?;
        self.check_size(entries)?;
        // A map loaded from the store is being moved to a new id: a
        // regeneration, whose own delete of the old id left a token here.
        let regeneration = match snapshot.as_ref().map(regeneration_of) {
            Some(Some(regeneration)) => Some(regeneration),
            // Loaded, but its ending is not on record here: ended by someone
            // else, or long ago. Its data must not come back.
            Some(None) => return Err(Error::ended()),
            None => None,
        };
        let regeneration = match regeneration {
            Some((handle, lineage)) => match self.inner.pending.take(&handle) {
                Some(token) => Some((lineage, token)),
                None => return Err(Error::ended()),
            },
            None => None,
        };
        let mut values = entries.to_map();
        let expires = self.ruled_expiry(&mut values).or(expires);
        let user = entries.user_entry().and_then(UserInfo::from_value);
        let own = entries.lifetime();
        // A regeneration keeps the lifetime it loaded, in its format.
        let kept = snapshot
            .as_ref()
            .filter(|s| own.is_some() && s.lifetime == own);
        let format = kept.map_or(1, |s| s.format);
        if let (Some(own), None) = (own, kept) {
            layout.may_store_lifetime(own, None)?;
        }
        let now = DateTime::now();
        // An id regenerated mid-session (login) keeps its creation time, so
        // an absolute lifetime cannot be extended by cycling the id.
        let created_at = snapshot
            .as_ref()
            .and_then(|s| s.created_at)
            .map_or(now, DateTime::from_millis);
        let rules = self.rules();
        let born = Some(created_at.timestamp_millis());
        let expires = rules.expiry(now, expires, born, own).expires;
        let own = own.map(|own| rules.clamp(own));
        let lineage = regeneration.as_ref().map(|(lineage, _)| lineage.as_str());
        for _ in 0..MAX_CREATE_ATTEMPTS {
            let id = next_id();
            let stored_id = layout.stored_id(&id);
            let stored = layout.encode_values(&stored_id, &values)?;
            let mut document =
                layout.new_document(&stored_id, stored, expires, created_at, now, user.as_ref());
            if let Some(lineage) = lineage {
                document.insert(LINEAGE_FIELD, lineage);
            }
            if let Some(own) = own {
                document.insert(LIFETIME_FIELD, own.to_document());
                if format >= 2 {
                    // Never written as format 1, whatever this store writes.
                    document.insert(FORMAT_FIELD, i32::try_from(format).unwrap_or(i32::MAX));
                }
            }
            if let Some(user) = &user {
                self.admit_session(&user.user, &stored_id).await?;
            }
            let ticket = self.inner.cache.as_ref().map(|cache| cache.write_ticket());
            match self
                .run("insert", self.inner.collection.insert_one(document))
                .await
            {
                Ok(_) => {
                    if let Some((lineage, token)) = &regeneration {
                        self.settle_regeneration(lineage, token, &stored_id).await?;
                    }
                    if let (Some(ticket), Some(_)) = (ticket, &layout.fields.version) {
                        let stamps = Written {
                            stored_id: stored_id.clone(),
                            expires,
                            created_at: Some(created_at),
                            now,
                            user: user.clone(),
                            version: 0,
                            lineage: lineage.map(str::to_string),
                            lifetime: own,
                            format: format.max(i64::from(layout.format.number())),
                        };
                        let session = LoadedSession::written(values.clone(), stamps, layout);
                        self.cache_written(stored_id.clone(), session, ticket);
                    }
                    self.inner
                        .events
                        .emit(&id, &[EventKind::Create, EventKind::Set]);
                    if let Some(user) = &user {
                        self.enforce_session_limit(&user.user).await?;
                    }
                    return Ok(id);
                }
                Err(e) if is_duplicate_key(&e) => {
                    tracing::warn!(session = %RedactedId::new(&id), "session id collision; drawing another");
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::id_exhausted(MAX_CREATE_ATTEMPTS))
    }
}

/// What a regeneration carries from the load of the old id: its handle
/// (under which its delete left a token) and its lineage.
fn regeneration_of(snapshot: &Snapshot) -> Option<(String, String)> {
    Some((snapshot.handle.clone()?, snapshot.lineage.clone()?))
}
