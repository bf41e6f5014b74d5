//! Saving a session: the plan carried out, and the cache kept from what
//! was written.

use std::{collections::HashMap, time::SystemTime};

use mongodb::{
    bson::{DateTime, Document},
    options::UpdateModifications,
};
use serde_json::{Map, Value};

use super::{missed::Miss, MongoSessionStore};
use crate::plan::{plan_save, SaveInput, SavePlan};
use crate::{
    cache::WriteTicket,
    error::{Error, Result},
    events::EventKind,
    id::is_plausible,
    lifetime::{AsLoaded, SessionLifetime},
    observe::{observed, Op},
    options::ConflictPolicy,
    outcome::{LoadedSession, SaveOutcome, Written},
    snapshot::{split, split_map, Snapshot, UserEntries},
    user::UserInfo,
    write::Clock,
};

impl MongoSessionStore {
    /// Saves an existing session: only the values that differ from what
    /// [`load`](Self::load) returned are written (if `data` came from
    /// [`LoadedSession::into_map`](crate::session::LoadedSession::into_map) and the codec is
    /// [`Codec::Bson`](crate::Codec::Bson); otherwise all of them), and an
    /// unchanged session is only touched, subject to `touch_after`.
    /// `expires: None` means now + [`idle_timeout`](Self::idle_timeout).
    ///
    /// It never creates a session: if the session was deleted or expired
    /// meanwhile, nothing is written and [`SaveOutcome::Missing`](crate::session::SaveOutcome::Missing) is returned.
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
    pub(crate) async fn save_map(
        &self,
        id: &str,
        data: &HashMap<String, Value>,
        expires: Option<SystemTime>,
    ) -> Result<SaveOutcome> {
        let map = split_map(data);
        observed(Op::Save, Some(id), self.save_split(id, map, expires)).await
    }

    /// A save of `entries` with `snapshot`, the adapters' way in when
    /// they read the map themselves (actix-session's partial view).
    #[cfg_attr(not(feature = "actix-session"), allow(dead_code))]
    pub(crate) async fn save_entries(
        &self,
        id: &str,
        entries: UserEntries<'_>,
        snapshot: Snapshot,
        expires: Option<SystemTime>,
    ) -> Result<SaveOutcome> {
        let split = (entries, Some(snapshot));
        observed(Op::Save, Some(id), self.save_split(id, split, expires)).await
    }

    /// Whether every save of a session with a usable tracking entry is
    /// planned per key from what changed alone: no value the request left
    /// alone is read (no whole write, no swap, no rules rewriting values,
    /// no cache keeping what was written).
    #[cfg_attr(not(feature = "actix-session"), allow(dead_code))]
    pub(crate) fn saves_by_key(&self) -> bool {
        self.inner.layout.per_key()
            && self.inner.cache.is_none()
            && self.inner.config.conflicts != ConflictPolicy::Fail
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
        // Looked at only under a per-user limit: whether this save gives
        // the session an owner (a login).
        let new_owner = self.inner.config.session_limit.and_then(|_| {
            let entry = entries.user_entry()?;
            let changed = snapshot
                .as_ref()
                .is_none_or(|s| s.user_changed(Some(entry)));
            changed.then(|| UserInfo::from_value(entry)).flatten()
        });
        if let Some(owner) = &new_owner {
            let stored_id = self.inner.layout.stored_id(id);
            self.admit_session(&owner.user, &stored_id).await?;
        }
        let outcome = self.save_planned(id, entries, snapshot, expires).await?;
        if let (Some(owner), SaveOutcome::Updated) = (new_owner, outcome) {
            self.enforce_session_limit(&owner.user).await?;
        }
        Ok(outcome)
    }

    async fn save_planned(
        &self,
        id: &str,
        entries: UserEntries<'_>,
        snapshot: Option<Snapshot>,
        expires: Option<SystemTime>,
    ) -> Result<SaveOutcome> {
        let layout = &self.inner.layout;
        let stored_id = layout.stored_id(id);
        let mut ruled = None;
        let mut expires = expires;
        if layout.value_rules.is_some() {
            let mut values = entries.to_map();
            expires = self.ruled_expiry(&mut values);
            ruled = Some(values);
        }
        // The lifetime the expiry is computed from, and the creation time:
        // as loaded, until a write finds the session given another lifetime
        // meanwhile (then as stored, and the write is planned again).
        let mut own = entries.lifetime();
        let mut created_at = snapshot.as_ref().and_then(|s| s.created_at);
        let mut relifed = None;
        // Set when a write conditioned on the loaded version (to be cached)
        // found another write had come between.
        let mut uncached = false;
        let deadline = self.deadline();
        loop {
            let input = SaveInput {
                layout,
                stored_id: &stored_id,
                entries,
                snapshot: snapshot.as_ref(),
                ruled: ruled.as_ref(),
                clock: self.clock(expires, created_at, own),
                strict: self.inner.config.conflicts == ConflictPolicy::Fail,
                max_session_bytes: self.inner.config.max_session_bytes,
            };
            let (update, outcome, through, as_loaded) = match plan_save(&input)? {
                SavePlan::Nothing => return Ok(SaveOutcome::Unchanged),
                SavePlan::Swap { changes, loaded } => {
                    let clock = (input.clock, expires);
                    return self
                        .compare_and_swap(id, loaded, &changes, entries, clock)
                        .await;
                }
                SavePlan::Write {
                    guarded,
                    then,
                    outcome,
                    as_loaded,
                } => {
                    let snapshot_version = snapshot.as_ref().and_then(|s| s.version);
                    // A guarded write rewrites values stored the old way,
                    // which the cache would not know about.
                    let through =
                        (guarded.is_none() && outcome == SaveOutcome::Updated && !uncached)
                            .then(|| self.write_through(&input))
                            .flatten();
                    if let Some(update) = guarded {
                        if self
                            .update_guarded(&stored_id, snapshot_version, update, input.clock)
                            .await?
                        {
                            self.saved(id, input.clock.now, outcome, entries.lifetime());
                            return Ok(outcome);
                        }
                    }
                    let Some(update) = then else {
                        return Ok(SaveOutcome::Unchanged);
                    };
                    (update, outcome, through, relifed.or(as_loaded))
                }
            };
            let write = LiveWrite {
                update,
                outcome,
                through,
                as_loaded,
                lifetime: entries.lifetime(),
            };
            match self
                .update_live(id, &stored_id, input.clock.now, write)
                .await?
            {
                Miss::Written(outcome) => return Ok(outcome),
                Miss::Gone => return Ok(SaveOutcome::Missing),
                Miss::Raced => uncached = true,
                Miss::Relifed { .. } if tokio::time::Instant::now() >= deadline => {
                    return Err(Error::contended(2));
                }
                Miss::Relifed {
                    lifetime,
                    created_at: stored_created_at,
                } => {
                    own = lifetime;
                    created_at = stored_created_at;
                    relifed = Some(AsLoaded(lifetime));
                }
            }
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
        let mut filter = layout.write_filter(stored_id, clock.now);
        layout.version_filter(&mut filter, version);
        let result = self
            .run("update", self.inner.collection.update_one(filter, update))
            .await;
        self.evict(stored_id);
        Ok(result?.matched_count > 0)
    }

    /// The expiry the layout's value rules give `values` (updating them),
    /// when the layout has any.
    pub(super) fn ruled_expiry(&self, values: &mut Map<String, Value>) -> Option<SystemTime> {
        let rules = self.inner.layout.value_rules.as_ref()?;
        let ttl_ms = i64::try_from(self.inner.config.idle_timeout.as_millis()).unwrap_or(i64::MAX);
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
            lineage: snapshot.lineage.clone(),
            lifetime: input.entries.lifetime().map(|own| self.rules().clamp(own)),
            format: snapshot.format.max(i64::from(input.layout.format.number())),
        };
        let session = LoadedSession::written(input.entries.to_map(), stamps, input.layout);
        Some(WriteThrough { session, ticket })
    }

    /// Caches what a write stored (see `SessionCache::written`).
    pub(super) fn cache_written(
        &self,
        stored_id: String,
        session: LoadedSession,
        ticket: WriteTicket,
    ) {
        if let Some(cache) = &self.inner.cache {
            cache.written(stored_id, session, ticket);
        }
    }

    /// Writes `write` to the live session `id` (stored as `stored_id`);
    /// [`SaveOutcome::Missing`](crate::session::SaveOutcome::Missing) if there is none.
    /// With `through`, the write is conditioned on the version loaded: if it
    /// matches, no other write came between and the cache keeps the session
    /// as `through` holds it; if not, nothing was written and the caller
    /// plans again without caching ([`Miss::Raced`]). A write
    /// that matches nothing is told apart (see [`missed`](Self::missed)):
    /// gone, of a newer format, or given another lifetime meanwhile.
    async fn update_live(
        &self,
        id: &str,
        stored_id: &str,
        now: DateTime,
        write: LiveWrite,
    ) -> Result<Miss> {
        let LiveWrite {
            update,
            outcome,
            through,
            as_loaded,
            ..
        } = write;
        let layout = &self.inner.layout;
        let filter = match as_loaded {
            Some(AsLoaded(loaded)) => layout.write_filter_as_loaded(stored_id, now, loaded),
            None => layout.write_filter(stored_id, now),
        };
        if let (Some(through), Some(_)) = (through, &layout.fields.version) {
            // Conditioned on the version loaded: if it matches, no other
            // write came between the load and this one, so the session is
            // now exactly what `through` holds (at the next version), and
            // the cache keeps it — one `update`, no document sent back.
            let mut filter = filter;
            let loaded = through.session.version().map(|v| v - 1);
            layout.version_filter(&mut filter, loaded);
            let result = self
                .run("update", self.inner.collection.update_one(filter, update))
                .await;
            if result?.matched_count == 0 {
                // Another write came between (or the session is gone, or
                // was given another lifetime): planned again and written
                // as without a cache, which tells those apart.
                self.evict(stored_id);
                return Ok(Miss::Raced);
            }
            self.cache_written(stored_id.to_string(), through.session, through.ticket);
            self.saved(id, now, outcome, write.lifetime);
            return Ok(Miss::Written(outcome));
        }
        let result = self
            .run("update", self.inner.collection.update_one(filter, update))
            .await;
        self.evict(stored_id);
        if result?.matched_count == 0 {
            return self.missed(stored_id, now, as_loaded).await;
        }
        self.saved(id, now, outcome, write.lifetime);
        Ok(Miss::Written(outcome))
    }

    /// After a write of session `id` with `own` lifetime at `now`.
    pub(super) fn saved(
        &self,
        id: &str,
        now: DateTime,
        outcome: SaveOutcome,
        own: Option<SessionLifetime>,
    ) {
        // A touch by id skips only what the server's filter would skip: a
        // session whose own window is short is always touched there.
        if self.rules().full_window(own) {
            if !self.inner.config.touch_after.is_zero() {
                self.inner.hints.refresh(id, now.timestamp_millis());
            }
        } else {
            self.inner.hints.forget(id);
        }
        let events: &[EventKind] = match outcome {
            SaveOutcome::Touched => &[EventKind::Touch],
            _ => &[EventKind::Update, EventKind::Set],
        };
        self.inner.events.emit(id, events);
    }
}

/// A write of a live session, as [`update_live`](MongoSessionStore::update_live)
/// carries it out.
struct LiveWrite {
    update: UpdateModifications,
    outcome: SaveOutcome,
    through: Option<WriteThrough>,
    /// The lifetime `update`'s expiry was computed from, when the write is
    /// to be conditioned on it.
    as_loaded: Option<AsLoaded>,
    /// The session's own lifetime after the write.
    lifetime: Option<SessionLifetime>,
}

/// A session as a save expects to leave it, for the cache.
#[derive(Debug)]
struct WriteThrough {
    session: LoadedSession,
    ticket: WriteTicket,
}
