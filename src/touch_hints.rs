//! When each recently loaded session was last written, so a touch inside
//! `touch_after` can be skipped without asking the server.
//!
//! Frameworks that touch through a separate call (actix-session's
//! `update_ttl`) hand the store no loaded state, only the id. Without a hint
//! the touch is a filtered update — no document changes, but still a round
//! trip. The hint is only ever a lower bound on the real `lastModified`
//! (writes only move it forward), so skipping on a hint never skips a touch
//! the filter would have let through.
//!
//! Entries are keyed by a per-process keyed hash of the id (no id is kept in
//! memory), in a bounded cache: the least used go first, which only costs a
//! few round trips.

use std::hash::{BuildHasher, RandomState};

const CAPACITY: u64 = 100_000;

pub(crate) struct TouchHints {
    keys: RandomState,
    last_modified: moka::sync::Cache<u64, i64>,
}

impl Default for TouchHints {
    fn default() -> Self {
        Self {
            keys: RandomState::new(),
            last_modified: moka::sync::Cache::new(CAPACITY),
        }
    }
}

impl std::fmt::Debug for TouchHints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TouchHints")
            .field("entries", &self.last_modified.entry_count())
            .finish()
    }
}

impl TouchHints {
    pub(crate) fn record(&self, id: &str, last_modified_ms: i64) {
        let key = self.keys.hash_one(id);
        self.last_modified.entry(key).and_upsert_with(|known| {
            known.map_or(last_modified_ms, |e| (*e.value()).max(last_modified_ms))
        });
    }

    /// Moves a hint that exists forward; records none. A write keeps the
    /// hint of a session loaded by id fresh, and costs nothing for one that
    /// is never touched by id (tower-sessions touches by saving).
    pub(crate) fn refresh(&self, id: &str, last_modified_ms: i64) {
        let key = self.keys.hash_one(id);
        // A racing `record` may be overwritten with an earlier time: still
        // a lower bound, which is all a hint promises.
        if self
            .last_modified
            .get(&key)
            .is_some_and(|known| known < last_modified_ms)
        {
            self.last_modified.insert(key, last_modified_ms);
        }
    }

    pub(crate) fn forget(&self, id: &str) {
        self.last_modified.invalidate(&self.keys.hash_one(id));
    }

    /// The last write known for `id`, if any.
    pub(crate) fn get(&self, id: &str) -> Option<i64> {
        self.last_modified.get(&self.keys.hash_one(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_only_move_forward_and_can_be_forgotten() {
        let hints = TouchHints::default();
        hints.record("a", 10);
        hints.record("a", 5);
        assert_eq!(hints.get("a"), Some(10));
        hints.forget("a");
        assert_eq!(hints.get("a"), None);
    }

    #[test]
    fn a_refresh_moves_a_hint_forward_and_records_none() {
        let hints = TouchHints::default();
        hints.refresh("a", 10);
        assert_eq!(hints.get("a"), None);
        hints.record("a", 10);
        hints.refresh("a", 5);
        assert_eq!(hints.get("a"), Some(10));
        hints.refresh("a", 20);
        assert_eq!(hints.get("a"), Some(20));
    }
}
