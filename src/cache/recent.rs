//! Each key's recent evictions, for the writes that cache what they wrote:
//! a write may cache its session only if every eviction of the key since
//! it began is explained by its own version (see `SessionCache::written`).
//! Every eviction is kept, not only a key's last: a later one that a write
//! explains (its own change event) must not hide an earlier one it does
//! not (another save's write of the same loaded version).
//!
//! A record that is missing would wrongly explain an eviction, so this
//! never drops a record silently: records go when they are older than any
//! write that may still consult them, and when the bound forces out a
//! younger one, every write that began before it is refused instead.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

/// One eviction of a key: at which eviction count, and, for a change event
/// of a write, the version it wrote (`None`: an unknown change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Recent {
    pub(super) epoch: u64,
    pub(super) version: Option<i64>,
}

#[derive(Debug)]
pub(super) struct RecentEvictions {
    /// How long a write may take and still cache (older tickets are refused
    /// before asking).
    max_age: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Per key, its evictions still kept, oldest first.
    last: HashMap<String, Vec<Recent>>,
    /// `(when, key, epoch)`, oldest first.
    order: VecDeque<(Instant, String, u64)>,
    /// The latest eviction count whose record was dropped while a write
    /// could still need it.
    lost: u64,
}

impl RecentEvictions {
    pub(super) fn new(max_age: Duration, capacity: usize) -> Self {
        Self {
            max_age,
            capacity: capacity.max(1),
            inner: Mutex::default(),
        }
    }

    pub(super) fn record(&self, key: &str, recent: Recent) {
        let mut inner = self.lock();
        let now = Instant::now();
        while let Some((at, _, _)) = inner.order.front() {
            let expired = now.duration_since(*at) >= self.max_age;
            if !expired && inner.order.len() < self.capacity {
                break;
            }
            let (_, old, epoch) = inner.order.pop_front().expect("just looked");
            if !expired {
                inner.lost = inner.lost.max(epoch);
            }
            if let Some(kept) = inner.last.get_mut(&old) {
                kept.retain(|r| r.epoch != epoch);
                if kept.is_empty() {
                    inner.last.remove(&old);
                }
            }
        }
        inner.order.push_back((now, key.to_string(), recent.epoch));
        inner.last.entry(key.to_string()).or_default().push(recent);
    }

    /// Whether every eviction of `key` after eviction count `since` is
    /// explained by a write of `version` or earlier.
    pub(super) fn explained(&self, key: &str, since: u64, version: i64) -> bool {
        let inner = self.lock();
        if inner.lost > since {
            return false;
        }
        inner.last.get(key).is_none_or(|kept| {
            kept.iter()
                .all(|r| r.epoch <= since || r.version.is_some_and(|v| v <= version))
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(epoch: u64, version: Option<i64>) -> Recent {
        Recent { epoch, version }
    }

    #[test]
    fn an_eviction_since_the_ticket_is_explained_only_by_an_older_version() {
        let recent = RecentEvictions::new(Duration::from_secs(60), 10);
        recent.record("k", at(5, Some(3)));
        assert!(recent.explained("k", 5, 0), "before the ticket");
        assert!(recent.explained("k", 4, 3), "our own version's event");
        assert!(!recent.explained("k", 4, 2), "a later write");
        recent.record("k", at(6, None));
        assert!(!recent.explained("k", 4, 9), "an unknown change");
        assert!(recent.explained("other", 0, 0));
    }

    /// A later eviction that a write explains does not hide an earlier one
    /// it does not: two saves of one loaded version, the second's write
    /// evicting (unknown change) before the first's own event arrives.
    #[test]
    fn an_explained_eviction_never_hides_an_earlier_unexplained_one() {
        let recent = RecentEvictions::new(Duration::from_secs(60), 10);
        recent.record("k", at(5, None));
        recent.record("k", at(6, Some(3)));
        assert!(!recent.explained("k", 4, 3), "the unknown change at 5");
        assert!(recent.explained("k", 5, 3), "a write that began after it");
    }

    /// The bound never makes an eviction disappear: when a young record
    /// must go, the writes that began before it are refused.
    #[test]
    fn a_record_forced_out_refuses_the_writes_it_could_concern() {
        let recent = RecentEvictions::new(Duration::from_secs(60), 3);
        recent.record("victim", at(1, None));
        for epoch in 2..=4 {
            recent.record(&format!("k{epoch}"), at(epoch, None));
        }
        assert!(!recent.explained("victim", 0, 9), "its record is gone");
        assert!(
            recent.explained("victim", 1, 9),
            "a write that began after it"
        );
    }

    #[test]
    fn old_records_go_without_refusing_anything() {
        let recent = RecentEvictions::new(Duration::ZERO, 3);
        recent.record("a", at(1, None));
        recent.record("b", at(2, None));
        assert!(recent.explained("a", 0, 9));
    }
}
