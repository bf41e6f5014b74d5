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
//! memory), and the map is bounded: when full it is simply emptied, which
//! only costs a few round trips.

use std::{
    collections::{hash_map::RandomState, HashMap},
    hash::BuildHasher,
    sync::Mutex,
};

const CAPACITY: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct TouchHints {
    keys: RandomState,
    last_modified: Mutex<HashMap<u64, i64>>,
}

impl TouchHints {
    pub(crate) fn record(&self, id: &str, last_modified_ms: i64) {
        let key = self.keys.hash_one(id);
        let mut map = self.last_modified.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CAPACITY {
            map.clear();
        }
        let entry = map.entry(key).or_insert(last_modified_ms);
        *entry = (*entry).max(last_modified_ms);
    }

    pub(crate) fn forget(&self, id: &str) {
        let key = self.keys.hash_one(id);
        self.last_modified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }

    /// The last write known for `id`, if any.
    pub(crate) fn get(&self, id: &str) -> Option<i64> {
        let key = self.keys.hash_one(id);
        self.last_modified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .copied()
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
}
