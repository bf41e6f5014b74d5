//! The compare-and-swap save: for opaque codecs and
//! `ConflictPolicy::Fail`, a write that only lands on the version loaded,
//! re-read and merged when another request wrote first.

use std::time::{Duration, SystemTime};

use mongodb::{bson::DateTime, options::UpdateModifications};

use super::MongoSessionStore;
use crate::{
    error::{Error, Result},
    options::ConflictPolicy,
    outcome::SaveOutcome,
    snapshot::{Snapshot, UserEntries},
    write::{per_key_update, whole_update, Changes, Clock},
};

impl MongoSessionStore {
    /// Saves `changes` only if nobody wrote since `snapshot` was loaded; if
    /// somebody did, re-reads the session, applies the changes to what is
    /// there now (or, with [`ConflictPolicy::Fail`](crate::ConflictPolicy::Fail), fails if they touch a
    /// key somebody else changed), and tries again. Keys stored the old way
    /// are rewritten on the first attempt only, which the version guards.
    /// `asked` is the expiry the framework asked for: the expiry is computed
    /// again from a re-read session's lifetime, unless this request set it.
    pub(super) async fn compare_and_swap(
        &self,
        id: &str,
        snapshot: &Snapshot,
        changes: &Changes<'_>,
        entries: UserEntries<'_>,
        (mut clock, asked): (Clock, Option<SystemTime>),
    ) -> Result<SaveOutcome> {
        let layout = &self.inner.layout;
        let stored_id = layout.stored_id(id);
        let per_key = layout.per_key();
        let strict = self.inner.config.conflicts == ConflictPolicy::Fail;
        let mut version = snapshot.version;
        let mut stale = snapshot.stale.clone();
        let top = (&changes.user, &changes.lifetime);
        let mut update: UpdateModifications = if per_key {
            per_key_update(layout, &stored_id, changes, &stale, true, clock).into()
        } else {
            whole_update(layout, &stored_id, &entries.to_map(), top, clock)?
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
            let mut filter = layout.write_filter(&stored_id, clock.now);
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
                self.saved(id, clock.now, SaveOutcome::Updated, entries.lifetime());
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
                    .filter(|key| snapshot.differs_from(key, current.data.get(*key)))
                    .collect();
                if !clashing.is_empty() {
                    return Err(Error::conflict(&clashing));
                }
            }
            version = current.version;
            stale = current.stale.into_iter().collect();
            if changes.lifetime.is_none() {
                // Another request may have given the session another lifetime.
                let created_at = current.created_at.map(DateTime::timestamp_millis);
                clock = Clock {
                    now: clock.now,
                    ..self.clock(asked, created_at, current.lifetime)
                };
            }
            update = if per_key {
                per_key_update(layout, &stored_id, changes, &stale, false, clock).into()
            } else {
                let merged = changes.apply_to(current.data);
                whole_update(layout, &stored_id, &merged, top, clock)?
            };
        }
        Err(Error::contended(attempt))
    }
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
