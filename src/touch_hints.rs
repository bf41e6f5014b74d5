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
//! memory), in a direct-mapped table of fixed size: a slot holds the last
//! session hashed to it, and a session whose slot another took has no hint,
//! which only costs a round trip. Why not a moka cache, as before: its
//! writes (an allocation each, and its housekeeping) cost an actix-session
//! request ~25 µs of CPU on its load and as much on its save, more than all
//! the rest of the store's work; a slot is a lock and two integers.

use std::{
    hash::{BuildHasher, RandomState},
    sync::{Mutex, MutexGuard},
};

/// Slots (a power of two): 1.5 MiB, hints for the sessions of the last few
/// minutes of a busy instance.
const SLOTS: usize = 1 << 16;

/// A hint: whose (the id's keyed hash), and its last write, in
/// milliseconds since the epoch.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    key: u64,
    last_modified: Option<i64>,
}

pub(crate) struct TouchHints {
    keys: RandomState,
    slots: Box<[Mutex<Slot>]>,
}

impl Default for TouchHints {
    fn default() -> Self {
        Self {
            keys: RandomState::new(),
            slots: (0..SLOTS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl std::fmt::Debug for TouchHints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TouchHints")
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl TouchHints {
    /// The slot of `id`, locked, and `id`'s key.
    fn slot(&self, id: &str) -> (MutexGuard<'_, Slot>, u64) {
        let key = self.keys.hash_one(id);
        // The low bits pick the slot; the whole hash tells sessions apart.
        let index = usize::try_from(key & (SLOTS as u64 - 1)).unwrap_or_default();
        let slot = &self.slots[index];
        // A poisoned slot holds two integers, always consistent.
        (slot.lock().unwrap_or_else(|e| e.into_inner()), key)
    }

    pub(crate) fn record(&self, id: &str, last_modified_ms: i64) {
        let (mut slot, key) = self.slot(id);
        let known = (slot.key == key).then_some(slot.last_modified).flatten();
        *slot = Slot {
            key,
            last_modified: Some(known.map_or(last_modified_ms, |k| k.max(last_modified_ms))),
        };
    }

    /// Moves a hint that exists forward; records none. A write keeps the
    /// hint of a session loaded by id fresh, and costs nothing for one that
    /// is never touched by id (tower-sessions touches by saving).
    pub(crate) fn refresh(&self, id: &str, last_modified_ms: i64) {
        let (mut slot, key) = self.slot(id);
        if slot.key == key {
            if let Some(known) = &mut slot.last_modified {
                *known = (*known).max(last_modified_ms);
            }
        }
    }

    pub(crate) fn forget(&self, id: &str) {
        let (mut slot, key) = self.slot(id);
        if slot.key == key {
            slot.last_modified = None;
        }
    }

    /// The last write known for `id`, if any.
    pub(crate) fn get(&self, id: &str) -> Option<i64> {
        let (slot, key) = self.slot(id);
        (slot.key == key).then_some(slot.last_modified).flatten()
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

    /// A session whose slot another took has no hint, never the other's.
    #[test]
    fn a_taken_slot_gives_no_hint_rather_than_another_sessions() {
        let hints = TouchHints::default();
        let ids: Vec<String> = (0..4 * SLOTS).map(|i| format!("id{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            hints.record(id, i64::try_from(i).unwrap());
        }
        let mut kept = 0;
        for (i, id) in ids.iter().enumerate() {
            if let Some(hint) = hints.get(id) {
                assert_eq!(hint, i64::try_from(i).unwrap(), "{id}");
                kept += 1;
            }
        }
        assert!(kept <= SLOTS && kept > SLOTS / 2, "{kept}");
    }
}
