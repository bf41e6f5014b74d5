//! The link between a regeneration's two halves, kept in process memory.
//!
//! The frameworks regenerate an id with two calls, `delete(old)` then
//! `create(data)`, made by one request and so by one process. The delete
//! appends an event to the lineage's record and leaves its token here,
//! under the old id's handle; the create takes it back to claim that event.
//!
//! This is a liveness aid, never a safety one: a token that is not found
//! (evicted, or the process restarted between the two calls) only makes
//! the create store nothing, which is what it does for an ended session.
//! Nothing is kept for a delete that found no session, so made-up ids
//! cannot fill it, and it admits every entry (it evicts the oldest, unlike
//! an admission-controlled cache that may refuse the newest).

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

/// Tokens older than this are of no use: a regeneration's two calls are
/// one request apart.
const MAX_AGE: Duration = Duration::from_secs(10 * 60);
const CAPACITY: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct Pending(Mutex<Inner>);

#[derive(Debug, Default)]
struct Inner {
    tokens: HashMap<String, Vec<String>>,
    /// Insertion order, for eviction: `(when, handle, token)`. The token
    /// is named, not found by position: a handle's tokens may have been
    /// taken and new ones put since.
    order: VecDeque<(Instant, String, String)>,
}

impl Pending {
    /// Remembers that this process ended the session with `handle` with the
    /// event `token`.
    pub(crate) fn put(&self, handle: String, token: String) {
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        while let Some((at, _, _)) = inner.order.front() {
            if inner.order.len() < CAPACITY && now.duration_since(*at) < MAX_AGE {
                break;
            }
            let (_, old, stale) = inner.order.pop_front().expect("just looked");
            if let Some(tokens) = inner.tokens.get_mut(&old) {
                tokens.retain(|t| *t != stale);
                if tokens.is_empty() {
                    inner.tokens.remove(&old);
                }
            }
        }
        inner.order.push_back((now, handle.clone(), token.clone()));
        inner.tokens.entry(handle).or_default().push(token);
    }

    /// The latest token this process left for `handle`, taken out. Of two
    /// concurrent regenerations of one session in one process, each takes
    /// one; which takes which does not matter, both being regenerations.
    pub(crate) fn take(&self, handle: &str) -> Option<String> {
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let tokens = inner.tokens.get_mut(handle)?;
        let token = tokens.pop();
        if tokens.is_empty() {
            inner.tokens.remove(handle);
        }
        // Its place in `order` goes when it reaches the front, and then
        // finds nothing to remove.
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_token_is_taken_once() {
        let pending = Pending::default();
        pending.put("h".into(), "t1".into());
        pending.put("h".into(), "t2".into());
        assert_eq!(pending.take("h").as_deref(), Some("t2"));
        assert_eq!(pending.take("h").as_deref(), Some("t1"));
        assert_eq!(pending.take("h"), None);
        assert_eq!(pending.take("other"), None);
    }

    /// A token taken, then a new one put for the same handle: evicting the
    /// first one's place must not remove the second.
    #[test]
    fn eviction_removes_the_token_it_names() {
        let pending = Pending::default();
        pending.put("h".into(), "t1".into());
        assert_eq!(pending.take("h").as_deref(), Some("t1"));
        pending.put("h".into(), "t2".into());
        for i in 0..CAPACITY - 1 {
            pending.put(format!("x{i}"), format!("y{i}"));
        }
        // The first put's place is gone now; the second's is not.
        assert_eq!(pending.take("h").as_deref(), Some("t2"));
    }

    #[test]
    fn it_stays_bounded_and_keeps_the_newest() {
        let pending = Pending::default();
        for i in 0..CAPACITY + 10 {
            pending.put(format!("h{i}"), format!("t{i}"));
        }
        let inner = pending.0.lock().unwrap();
        assert!(inner.order.len() <= CAPACITY);
        assert!(inner.tokens.len() <= CAPACITY);
        drop(inner);
        let newest = CAPACITY + 9;
        assert_eq!(
            pending.take(&format!("h{newest}")),
            Some(format!("t{newest}"))
        );
        assert_eq!(pending.take("h0"), None, "the oldest went first");
    }
}
