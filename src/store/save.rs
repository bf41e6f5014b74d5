//! Writing a session: create, save, touch.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use mongodb::{
    bson::{doc, DateTime, Document},
    options::{ReturnDocument, UpdateModifications},
};
use serde_json::{Map, Value};

use super::MongoSessionStore;
use crate::plan::{plan_save, SaveInput, SavePlan};
use crate::{
    cache::WriteTicket,
    error::{is_duplicate_key, Error, Result},
    events::EventKind,
    id::{generate_id, is_plausible, RedactedId},
    observe::{observed, Op},
    options::ConflictPolicy,
    outcome::{LoadedSession, SaveOutcome, Written},
    schema::expiry_or,
    snapshot::{split, split_hashed, Snapshot, UserEntries, RESERVED_KEY},
    user::UserInfo,
    write::{per_key_update, touch_update, whole_update, Changes, Clock},
};

const MAX_CREATE_ATTEMPTS: u32 = 8;

impl MongoSessionStore {
    /// Stores a new session under a fresh id from the store's CSPRNG and
    /// returns that id. `expires: None` means now + [`ttl`](Self::ttl).
    ///
    /// # Errors
    ///
    /// [`Error::is_encode`](crate::Error::is_encode) if `data` cannot be stored; server errors.
    pub async fn create(
        &self,
        data: &Map<String, Value>,
        expires: Option<SystemTime>,
    ) -> Result<String> {
        self.create_with(generate_id, data, expires).await
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
    pub async fn create_with(
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
        let mut values = entries.to_map();
        let expires = self.ruled_expiry(&mut values).or(expires);
        let user = entries.user_entry().and_then(UserInfo::from_value);
        let now = DateTime::now();
        // An id regenerated mid-session (login) keeps its creation time, so
        // an absolute lifetime cannot be extended by cycling the id.
        let created_at = snapshot
            .and_then(|s| s.created_at)
            .map_or(now, DateTime::from_millis);
        let expires = layout.cap_expiry(
            expiry_or(expires, self.inner.config.ttl),
            Some(created_at.timestamp_millis()),
        );
        for _ in 0..MAX_CREATE_ATTEMPTS {
            let id = next_id();
            let stored_id = layout.stored_id(&id);
            let stored = layout.encode_values(&stored_id, &values)?;
            let document =
                layout.new_document(&stored_id, stored, expires, created_at, now, user.as_ref());
            let ticket = self.inner.cache.as_ref().map(|cache| cache.write_ticket());
            match self
                .run("insert", self.inner.collection.insert_one(document))
                .await
            {
                Ok(_) => {
                    if let (Some(ticket), Some(_)) = (ticket, &layout.fields.version) {
                        let stamps = Written {
                            stored_id: stored_id.clone(),
                            expires,
                            created_at: Some(created_at),
                            now,
                            user: user.clone(),
                            version: 0,
                        };
                        let session = LoadedSession::written(values.clone(), stamps, layout);
                        self.cache_written(stored_id, session, ticket);
                    }
                    self.inner
                        .events
                        .emit(&id, &[EventKind::Create, EventKind::Set]);
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

    /// Whether `data`, a session map carried from a load, is being moved to
    /// a new id after a logout elsewhere ended the session: the frameworks
    /// regenerate an id (tower-sessions' `cycle_id`, actix-session's renew)
    /// as "delete the old id, create anew with its data", and this is true
    /// when that delete found nothing. Such data must not be stored again;
    /// both adapters check it, and so should an adapter for another
    /// framework that regenerates ids the same way.
    pub fn regenerates_ended_session(&self, data: &Map<String, Value>) -> bool {
        let Some(handle) = data
            .get(RESERVED_KEY)
            .and_then(Snapshot::from_value)
            .and_then(|snapshot| snapshot.handle)
        else {
            return false;
        };
        self.inner.vanished.contains_key(&handle)
    }

    /// Saves an existing session: only the values that differ from what
    /// [`load`](Self::load) returned are written (if `data` came from
    /// [`LoadedSession::into_tracked_data`](crate::LoadedSession::into_tracked_data) and the codec is
    /// [`Codec::Bson`](crate::Codec::Bson); otherwise all of them), and an
    /// unchanged session is only touched, subject to `touch_after`.
    /// `expires: None` means now + [`ttl`](Self::ttl).
    ///
    /// It never creates a session: if the session was deleted or expired
    /// meanwhile, nothing is written and [`SaveOutcome::Missing`](crate::SaveOutcome::Missing) is returned.
    ///
    /// # Errors
    ///
    /// [`Error::is_encode`](crate::Error::is_encode) for an oversized session or a codec failure;
    /// server errors and timeouts.
    pub async fn save(
        &self,
        id: &str,
        data: &Map<String, Value>,
        expires: Option<SystemTime>,
    ) -> Result<SaveOutcome> {
        observed(
            Op::Save,
            Some(id),
            self.save_split(id, split(data), expires),
        )
        .await
    }

    /// [`save`](Self::save) of a map the framework holds in a `HashMap`,
    /// read where it is (no copy of the session per request).
    #[cfg_attr(
        not(any(feature = "tower-sessions", feature = "actix-session")),
        allow(dead_code)
    )]
    pub(crate) async fn save_hashed(
        &self,
        id: &str,
        data: &HashMap<String, Value>,
        expires: Option<SystemTime>,
    ) -> Result<SaveOutcome> {
        let map = split_hashed(data);
        observed(Op::Save, Some(id), self.save_split(id, map, expires)).await
    }

    async fn save_split(
        &self,
        id: &str,
        (entries, snapshot): (UserEntries<'_>, Option<Snapshot>),
        expires: Option<SystemTime>,
    ) -> Result<SaveOutcome> {
        if !is_plausible(id) {
            return Ok(SaveOutcome::Missing);
        }
        let layout = &self.inner.layout;
        let stored_id = layout.stored_id(id);
        let mut ruled = None;
        let mut expires = expires;
        if layout.value_rules.is_some() {
            let mut values = entries.to_map();
            expires = self.ruled_expiry(&mut values);
            ruled = Some(values);
        }
        let input = SaveInput {
            layout,
            stored_id: &stored_id,
            entries,
            snapshot: snapshot.as_ref(),
            ruled: ruled.as_ref(),
            clock: self.clock(expires, snapshot.as_ref().and_then(|s| s.created_at)),
            strict: self.inner.config.conflicts == ConflictPolicy::Fail,
            max_session_bytes: self.inner.config.max_session_bytes,
        };
        match plan_save(&input)? {
            SavePlan::Nothing => Ok(SaveOutcome::Unchanged),
            SavePlan::Write {
                guarded,
                then,
                outcome,
            } => {
                let snapshot_version = snapshot.as_ref().and_then(|s| s.version);
                // A guarded write rewrites values stored the old way, which
                // the cache would not know about.
                let through = (guarded.is_none() && outcome == SaveOutcome::Updated)
                    .then(|| self.write_through(&input))
                    .flatten();
                if let Some(update) = guarded {
                    if self
                        .update_guarded(&stored_id, snapshot_version, update, input.clock)
                        .await?
                    {
                        self.saved(id, input.clock.now, outcome);
                        return Ok(outcome);
                    }
                }
                match then {
                    None => Ok(SaveOutcome::Unchanged),
                    Some(update) => {
                        let now = input.clock.now;
                        self.update_live(id, &stored_id, now, update, outcome, through)
                            .await
                    }
                }
            }
            SavePlan::Swap { changes, loaded } => {
                self.compare_and_swap(id, loaded, &changes, entries, input.clock)
                    .await
            }
        }
    }

    /// The expiry rules of a write at this moment: `expires` (or now +
    /// ttl), capped at the absolute lifetime from `created_at` (ms) — or by
    /// the server, when the creation time is not known here.
    fn clock(&self, expires: Option<SystemTime>, created_at: Option<i64>) -> Clock {
        let layout = &self.inner.layout;
        Clock {
            now: DateTime::now(),
            expires: layout.cap_expiry(expiry_or(expires, self.inner.config.ttl), created_at),
            touch_after: self.inner.config.touch_after,
            cap_on_server: layout.max_lifetime.filter(|_| created_at.is_none()),
        }
    }

    /// Applies `update` only if the live document still has the version
    /// `snapshot` loaded; whether it did.
    async fn update_guarded(
        &self,
        stored_id: &str,
        version: Option<i64>,
        update: Document,
        clock: Clock,
    ) -> Result<bool> {
        let layout = &self.inner.layout;
        let mut filter = layout.live_filter_stored(stored_id, clock.now);
        layout.version_filter(&mut filter, version);
        let result = self
            .run("update", self.inner.collection.update_one(filter, update))
            .await;
        self.evict(stored_id);
        Ok(result?.matched_count > 0)
    }

    /// The expiry the layout's value rules give `values` (updating them),
    /// when the layout has any.
    fn ruled_expiry(&self, values: &mut Map<String, Value>) -> Option<SystemTime> {
        let rules = self.inner.layout.value_rules.as_ref()?;
        let ttl_ms = i64::try_from(self.inner.config.ttl.as_millis()).unwrap_or(i64::MAX);
        let now = DateTime::now().timestamp_millis();
        let expires = rules.before_write(values, now, ttl_ms);
        Some(DateTime::from_millis(expires).to_system_time())
    }

    /// The session as `input` will leave it if its write is the only one
    /// since the load, for the cache to keep (see
    /// [`cache_written`](Self::cache_written)); `None` without a cache, or
    /// where the write's result is not known here (values the layout's
    /// rules rewrite, keys stored the old way, an expiry capped by the
    /// server).
    fn write_through(&self, input: &SaveInput<'_>) -> Option<WriteThrough> {
        let cache = self.inner.cache.as_ref()?;
        let snapshot = input.snapshot?;
        let version = snapshot.version?.checked_add(1)?;
        if input.ruled.is_some()
            || !snapshot.stale.is_empty()
            || input.clock.cap_on_server.is_some()
        {
            return None;
        }
        let ticket = cache.write_ticket();
        let stamps = Written {
            stored_id: input.stored_id.to_string(),
            expires: input.clock.expires,
            created_at: snapshot.created_at.map(DateTime::from_millis),
            now: input.clock.now,
            user: input.entries.user_entry().and_then(UserInfo::from_value),
            version,
        };
        let session = LoadedSession::written(input.entries.to_map(), stamps, input.layout);
        Some(WriteThrough { session, ticket })
    }

    /// Caches what a write stored (see `SessionCache::written`).
    fn cache_written(&self, stored_id: String, session: LoadedSession, ticket: WriteTicket) {
        if let Some(cache) = &self.inner.cache {
            cache.written(stored_id, session, ticket);
        }
    }

    /// Writes `update` to the live session `id` (stored as `stored_id`);
    /// [`SaveOutcome::Missing`](crate::SaveOutcome::Missing) if there is none.
    /// With `through`, the write reads back the version it wrote, in the
    /// same round trip, and the cache keeps the session if that is the
    /// version `through` expects (no other write came between).
    async fn update_live(
        &self,
        id: &str,
        stored_id: &str,
        now: DateTime,
        update: impl Into<UpdateModifications>,
        outcome: SaveOutcome,
        through: Option<WriteThrough>,
    ) -> Result<SaveOutcome> {
        let filter = self.inner.layout.live_filter_stored(stored_id, now);
        let (Some(through), Some(version_field)) = (through, &self.inner.layout.fields.version)
        else {
            let result = self
                .run("update", self.inner.collection.update_one(filter, update))
                .await;
            self.evict(stored_id);
            if result?.matched_count == 0 {
                return Ok(SaveOutcome::Missing);
            }
            self.saved(id, now, outcome);
            return Ok(outcome);
        };
        let written = self
            .inner
            .collection
            .find_one_and_update(filter, update)
            .projection(doc! { version_field: 1 })
            .return_document(ReturnDocument::After);
        let result = self.run("update", written).await;
        let Ok(Some(written)) = result else {
            self.evict(stored_id);
            return result.map(|_| SaveOutcome::Missing);
        };
        match written.get_i64(version_field) {
            Ok(version) if Some(version) == through.session.version() => {
                self.cache_written(stored_id.to_string(), through.session, through.ticket);
            }
            _ => self.evict(stored_id),
        }
        self.saved(id, now, outcome);
        Ok(outcome)
    }

    /// Saves `changes` only if nobody wrote since `snapshot` was loaded; if
    /// somebody did, re-reads the session, applies the changes to what is
    /// there now (or, with [`ConflictPolicy::Fail`](crate::ConflictPolicy::Fail), fails if they touch a
    /// key somebody else changed), and tries again. Keys stored the old way
    /// are rewritten on the first attempt only, which the version guards.
    async fn compare_and_swap(
        &self,
        id: &str,
        snapshot: &Snapshot,
        changes: &Changes<'_>,
        entries: UserEntries<'_>,
        clock: Clock,
    ) -> Result<SaveOutcome> {
        let layout = &self.inner.layout;
        let stored_id = layout.stored_id(id);
        let per_key = layout.per_key();
        let strict = self.inner.config.conflicts == ConflictPolicy::Fail;
        let mut version = snapshot.version;
        let mut stale = snapshot.stale.clone();
        let mut update: UpdateModifications = if per_key {
            per_key_update(layout, &stored_id, changes, &stale, true, clock).into()
        } else {
            whole_update(layout, &stored_id, &entries.to_map(), &changes.user, clock)?
        };
        // Bounded by time, not attempts: under heavy contention a writer keeps
        // its chance until the operation timeout, never longer — round trips
        // included, however slow each one is.
        let deadline = tokio::time::Instant::now() + self.inner.config.operation_timeout;
        let mut attempt = 0;
        while tokio::time::Instant::now() < deadline {
            if attempt > 0 {
                backoff(attempt).await;
            }
            attempt += 1;
            let mut filter = layout.live_filter_stored(&stored_id, clock.now);
            layout.version_filter(&mut filter, version);
            let result = self
                .run_until(
                    "update",
                    self.inner.collection.update_one(filter, update.clone()),
                    deadline,
                )
                .await?;
            if result.matched_count > 0 {
                self.evict(&stored_id);
                self.saved(id, clock.now, SaveOutcome::Updated);
                return Ok(SaveOutcome::Updated);
            }
            let live = layout.live_filter_stored(&stored_id, clock.now);
            let Some(current) = self
                .run_until("find", self.inner.raw.find_one(live), deadline)
                .await?
            else {
                return Ok(SaveOutcome::Missing);
            };
            let current = layout.decode_raw(&current)?;
            if strict {
                let clashing: Vec<&str> = changes
                    .keys()
                    .filter(|key| snapshot.differs_from(key, current.data.get(key.as_str())))
                    .map(String::as_str)
                    .collect();
                if !clashing.is_empty() {
                    return Err(Error::conflict(&clashing));
                }
            }
            version = current.version;
            stale = current.stale.into_iter().collect();
            update = if per_key {
                per_key_update(layout, &stored_id, changes, &stale, false, clock).into()
            } else {
                let merged = changes.apply_to(current.data);
                whole_update(layout, &stored_id, &merged, &changes.user, clock)?
            };
        }
        Err(Error::contended(attempt))
    }

    fn saved(&self, id: &str, now: DateTime, outcome: SaveOutcome) {
        self.hint(id, now);
        let events: &[EventKind] = match outcome {
            SaveOutcome::Touched => &[EventKind::Touch],
            _ => &[EventKind::Update, EventKind::Set],
        };
        self.inner.events.emit(id, events);
    }

    /// Moves a live session's expiry forward without touching its data
    /// (connect-mongo's `touch`). Within `touch_after` of the session's last
    /// write it writes nothing. Returns whether the expiry moved; a session
    /// that no longer exists is not an error (connect-mongo #469/#471).
    /// `expires: None` means now + [`ttl`](Self::ttl).
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn touch(&self, id: &str, expires: Option<SystemTime>) -> Result<bool> {
        observed(Op::Touch, Some(id), self.touch_unobserved(id, expires)).await
    }

    async fn touch_unobserved(&self, id: &str, expires: Option<SystemTime>) -> Result<bool> {
        if !is_plausible(id) {
            return Ok(false);
        }
        let layout = &self.inner.layout;
        let now = DateTime::now();
        let window = self.inner.config.touch_after;
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        if let Some(last) = self.inner.hints.get(id) {
            if now.timestamp_millis().saturating_sub(last) < window_ms {
                return Ok(false);
            }
        }
        let mut filter = layout.live_filter(id, now);
        if let (Some(field), false) = (&layout.fields.last_modified, window.is_zero()) {
            let threshold = DateTime::from_system_time(now.to_system_time() - window);
            // `$not` also matches documents without the field.
            filter.insert(field, doc! { "$not": { "$gte": threshold } });
        }
        let clock = Clock {
            now,
            ..self.clock(expires, None)
        };
        let update = touch_update(layout, clock);
        let result = self
            .run("update", self.inner.collection.update_one(filter, update))
            .await;
        if self.inner.cache.is_some() {
            self.evict(&layout.stored_id(id));
        }
        let result = result?;
        let touched = result.matched_count > 0;
        if touched {
            self.hint(id, now);
            self.inner.events.emit(id, &[EventKind::Touch]);
        }
        Ok(touched)
    }
}

/// A session as a save expects to leave it, for the cache.
#[derive(Debug)]
struct WriteThrough {
    session: LoadedSession,
    ticket: WriteTicket,
}

/// A random pause of up to 2^`attempt` ms (at most 64 ms), so writers that
/// lost a compare-and-swap race spread out instead of retrying in lockstep.
async fn backoff(attempt: u32) {
    let mut bytes = [0u8; 2];
    let _ = getrandom::fill(&mut bytes);
    let ceiling_micros = 1000u64 << attempt.min(6);
    let micros = u64::from(u16::from_le_bytes(bytes)) * ceiling_micros / u64::from(u16::MAX);
    tokio::time::sleep(Duration::from_micros(micros)).await;
}
