//! What a cached session weighs, for the byte and entry bounds.

use serde_json::{Map, Value};

use super::ReadCache;
use crate::{outcome::LoadedSession, UserInfo};

/// The cache's one weighted capacity, which enforces both bounds: an entry
/// weighs its estimated size in bytes, but never less than `max_bytes /
/// max_entries` (rounded up), so no more than `max_entries` fit either.
#[derive(Debug, Clone, Copy)]
pub(super) struct Weights {
    floor: u32,
    pub(super) capacity: u64,
}

impl Weights {
    pub(super) fn of(config: &ReadCache) -> Self {
        let floor = config
            .max_bytes
            .div_ceil(config.max_entries.max(1))
            .clamp(1, u64::from(u32::MAX));
        Self {
            // Equal to max_bytes unless the floor was clamped.
            capacity: config
                .max_bytes
                .min(config.max_entries.saturating_mul(floor)),
            floor: u32::try_from(floor).unwrap_or(u32::MAX),
        }
    }

    pub(super) fn weigh(&self, key: &str, session: &LoadedSession) -> u32 {
        let size = estimated_size(key, &session.data, &session.handle, session.user.as_ref());
        u32::try_from(size).unwrap_or(u32::MAX).max(self.floor)
    }

    /// Whether an entry of `weight` is worth applying the bound for at once.
    pub(super) fn is_large(&self, weight: u32) -> bool {
        u64::from(weight).saturating_mul(64) >= self.capacity
    }
}

/// Roughly the memory a cached session holds, in bytes: the session itself,
/// its key, handle and owner, its values as a JSON tree (nodes, strings, map
/// entries), and the per-key fingerprints a later save compares against.
fn estimated_size(
    key: &str,
    data: &Map<String, Value>,
    handle: &str,
    user: Option<&UserInfo>,
) -> usize {
    /// A snapshot's fingerprint entry, besides a copy of the key.
    const FINGERPRINT: usize = 48;
    let values: usize = data
        .iter()
        .map(|(name, value)| entry_size(name, value) + name.len() + FINGERPRINT)
        .sum();
    let owner = user.map_or(0, |user| {
        user.user.len()
            + user.user_agent.as_ref().map_or(0, String::len)
            + user.ip.as_ref().map_or(0, String::len)
    });
    std::mem::size_of::<LoadedSession>() + key.len() + handle.len() + owner + values
}

fn entry_size(name: &str, value: &Value) -> usize {
    /// A map entry's own bookkeeping (its key's `String`, links).
    const ENTRY: usize = std::mem::size_of::<String>() + 16;
    ENTRY + name.len() + value_size(value)
}

fn value_size(value: &Value) -> usize {
    std::mem::size_of::<Value>()
        + match value {
            Value::String(text) => text.len(),
            Value::Array(items) => items.iter().map(value_size).sum(),
            Value::Object(map) => map.iter().map(|(name, v)| entry_size(name, v)).sum(),
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Map, Value};

    use super::{estimated_size, Weights};
    use crate::ReadCache;
    use crate::UserInfo;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().expect("an object").clone()
    }

    #[test]
    fn a_session_is_estimated_at_least_at_what_it_holds() {
        let blob = "x".repeat(20_000);
        let data = map(json!({"blob": blob, "nested": {"list": [1, "two", null]}}));
        let size = estimated_size(
            "k".repeat(43).as_str(),
            &data,
            "h",
            Some(&UserInfo::new("u")),
        );
        assert!(size > 20_000 + 43, "{size}");
        assert!(size < 22_000, "{size}: an estimate, not a multiple");
        let empty = estimated_size("k", &Map::new(), "", None);
        assert!(empty < size && empty > 0);
    }

    #[test]
    fn one_capacity_enforces_both_bounds() {
        let weights = Weights::of(&ReadCache::new().max_entries(10).max_bytes(10_000));
        assert_eq!((weights.floor, weights.capacity), (1_000, 10_000));
        // Rounded up: at most 3 entries of at least 34 bytes in 100.
        let weights = Weights::of(&ReadCache::new().max_entries(3).max_bytes(100));
        assert_eq!((weights.floor, weights.capacity), (34, 100));
        // A floor past u32::MAX is clamped and the capacity shrinks with it,
        // so max_entries still holds.
        let weights = Weights::of(&ReadCache::new().max_entries(2).max_bytes(1 << 40));
        assert_eq!(weights.floor, u32::MAX);
        assert_eq!(weights.capacity, 2 * u64::from(u32::MAX));
    }
}
