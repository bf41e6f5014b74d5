//! When the cache may answer and when a load may fill it: the epoch that
//! keeps a racing change from leaving an older copy behind, and the
//! freshness of the change stream. Times are passed in (ms since the Unix
//! epoch) so the judgment can be tested without a clock or a server.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, AtomicI64, Ordering},
        Mutex, MutexGuard,
    },
};

use mongodb::bson::Timestamp;

use super::CacheMode;

/// Shared by loads (ticket, admit), writes (invalidate) and the watcher.
#[derive(Debug)]
pub(super) struct Coherence {
    mode: CacheMode,
    bound_ms: i64,
    /// Bumped by evictions (see [`Epochs`]).
    epoch: Mutex<Epochs>,
    streaming: AtomicBool,
    /// Every change committed before this instant has been applied here
    /// (or cannot concern an entry): the stream caught up with a cluster
    /// time the server reported then.
    fresh_as_of: AtomicI64,
    probes: Mutex<Probes>,
}

impl Coherence {
    pub(super) fn new(mode: CacheMode, bound_ms: i64, now: i64) -> Self {
        Self {
            mode,
            bound_ms,
            epoch: Mutex::default(),
            streaming: AtomicBool::new(mode == CacheMode::ChangeStreams),
            fresh_as_of: AtomicI64::new(now),
            probes: Mutex::default(),
        }
    }

    /// What a load hands back to [`admit`](Self::admit) after reading.
    pub(super) fn ticket(&self) -> u64 {
        self.lock_epoch().any
    }

    /// What a write hands back to [`admit_written`](Self::admit_written).
    pub(super) fn write_ticket(&self) -> Epochs {
        *self.lock_epoch()
    }

    /// Runs `insert` if nothing was evicted since `ticket` was taken and
    /// entries may be served; evictions wait meanwhile.
    pub(super) fn admit(&self, ticket: u64, now: i64, insert: impl FnOnce()) {
        let epoch = self.lock_epoch();
        if epoch.any == ticket && self.trustworthy(now) {
            insert();
        }
    }

    /// Runs `insert` with the eviction count of `ticket` if nothing evicted
    /// everything since `ticket` was taken and entries may be served; the
    /// caller judges the evictions of single keys since (`insert` sees
    /// which count they were recorded at). Evictions wait meanwhile.
    pub(super) fn admit_written(&self, ticket: Epochs, now: i64, insert: impl FnOnce(u64)) {
        let epoch = self.lock_epoch();
        if epoch.all == ticket.all && self.trustworthy(now) {
            insert(ticket.any);
        }
    }

    /// Runs `change` with the eviction count it will be recorded at; if it
    /// returns that it evicted, fails every load that started before it.
    pub(super) fn invalidate_key(&self, change: impl FnOnce(u64) -> bool) {
        let mut epoch = self.lock_epoch();
        if change(epoch.any + 1) {
            epoch.any += 1;
        }
    }

    /// Runs `evict`, which empties the cache, and fails every load and
    /// every write-through that started before it.
    pub(super) fn invalidate_all(&self, evict: impl FnOnce()) {
        let mut epoch = self.lock_epoch();
        epoch.any += 1;
        epoch.all += 1;
        evict();
    }

    /// Whether entries may be served: always with the staleness bound;
    /// with change streams, only while the stream is up and has caught up,
    /// within the bound, with the cluster time the server reported.
    pub(super) fn trustworthy(&self, now: i64) -> bool {
        match self.mode {
            CacheMode::StalenessBound => true,
            CacheMode::ChangeStreams => {
                self.is_streaming()
                    && fresh(now, self.fresh_as_of.load(Ordering::Acquire), self.bound_ms)
            }
        }
    }

    /// Whether the change stream is up (fresh or not).
    pub(super) fn is_streaming(&self) -> bool {
        self.streaming.load(Ordering::Acquire)
    }

    /// The watcher (re)opened the stream at `now`, from the server's present
    /// (the changes in between were never delivered). Loads that started
    /// before may have read a session deleted meanwhile, so they may not
    /// insert; loads from now on read after the stream's start, so the
    /// changes it did not deliver cannot concern their entries.
    pub(super) fn stream_opened(&self, now: i64) {
        self.invalidate_all(|| {
            self.lock_probes().clear();
            self.fresh_as_of.store(now, Ordering::Release);
            self.streaming.store(true, Ordering::Release);
        });
    }

    /// The stream failed: nothing cached can be vouched for until it is back.
    pub(super) fn stream_lost(&self, evict_all: impl FnOnce()) {
        self.streaming.store(false, Ordering::Release);
        self.invalidate_all(evict_all);
    }

    /// The server reported the cluster time `cluster_time` in reply to a
    /// probe sent at `sent_at`: every change acknowledged before `sent_at`
    /// has a cluster time at or before it.
    pub(super) fn probed(&self, sent_at: i64, cluster_time: Timestamp) {
        self.lock_probes().record(sent_at, cluster_time);
    }

    /// The stream answered, having delivered every change up to its resume
    /// token's cluster time `reached` (`None`: unreadable). `whole_batch`:
    /// the token ended an empty batch, so it covers its whole cluster time;
    /// an event's token covers only that event, not the rest of its
    /// transaction.
    pub(super) fn stream_answered(&self, reached: Option<Timestamp>, whole_batch: bool) {
        let Some(reached) = reached else { return };
        if let Some(as_of) = self.lock_probes().caught_up(reached, whole_batch) {
            self.fresh_as_of.fetch_max(as_of, Ordering::AcqRel);
        }
    }

    fn lock_epoch(&self) -> MutexGuard<'_, Epochs> {
        self.epoch.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_probes(&self) -> MutexGuard<'_, Probes> {
        self.probes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Eviction counts. A load inserts what it read only if nothing was
/// evicted while it was reading (`any`), so a change that raced the read can
/// never leave the older document cached. A write that caches what it wrote
/// knows its version, so only evictions it cannot explain stop it: those of
/// everything (`all`), and those of its own key at another version (which
/// the cache records per key, with the `any` they happened at).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Epochs {
    any: u64,
    all: u64,
}

/// Whether a stream last known fresh `as_of` may still vouch for entries at
/// `now`.
fn fresh(now: i64, as_of: i64, bound_ms: i64) -> bool {
    now.saturating_sub(as_of) < bound_ms
}

/// Cluster times the server reported, not yet reached by the stream,
/// oldest first: `(when the probe was sent, the cluster time)`.
#[derive(Debug, Default)]
struct Probes(VecDeque<(i64, Timestamp)>);

impl Probes {
    /// Enough for a stream that lags by many bounds; past that the newest
    /// sample is replaced, which only delays the verdict.
    const KEPT: usize = 64;

    fn record(&mut self, sent_at: i64, cluster_time: Timestamp) {
        if self.0.len() == Self::KEPT {
            self.0.pop_back();
        }
        self.0.push_back((sent_at, cluster_time));
    }

    /// Drops the probes the stream has now caught up with; returns when the
    /// latest of them was sent, the instant the stream is now fresh as of.
    fn caught_up(&mut self, reached: Timestamp, whole_batch: bool) -> Option<i64> {
        let mut as_of = None;
        while let Some(&(sent_at, cluster_time)) = self.0.front() {
            let covered = if whole_batch {
                cluster_time <= reached
            } else {
                cluster_time < reached
            };
            if !covered {
                break;
            }
            as_of = Some(sent_at);
            self.0.pop_front();
        }
        as_of
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: i64 = 1_000;

    fn ts(time: u32, increment: u32) -> Timestamp {
        Timestamp { time, increment }
    }

    fn streaming(now: i64) -> Coherence {
        Coherence::new(CacheMode::ChangeStreams, BOUND, now)
    }

    /// A load that took its ticket at the moment the stream was down, read
    /// the session, and finishes after the stream was reopened from "now"
    /// (a delete in the gap was never delivered) must not cache what it read.
    #[test]
    fn a_load_that_spans_a_stream_reopen_cannot_insert() {
        let gate = streaming(0);
        gate.stream_lost(|| {});
        let ticket = gate.ticket(); // a load starts reading during the gap
        gate.stream_opened(10);
        gate.stream_answered(Some(ts(1, 1)), true);
        let mut inserted = false;
        gate.admit(ticket, 30, || inserted = true);
        assert!(!inserted, "a load from before the reopen filled the cache");

        // A load that starts after the reopen may.
        let ticket = gate.ticket();
        gate.admit(ticket, 40, || inserted = true);
        assert!(inserted);
    }

    /// Majority commit has stalled (or the stream lags): every getMore comes
    /// back promptly, but its resume token stays at the cluster time it had,
    /// while the server's cluster time moves on (a delete applied on the
    /// primary, not yet on the stream). Within the bound the cache may
    /// answer; past it, it must step aside however live the stream looks.
    #[test]
    fn a_stream_that_answers_but_lags_is_trusted_only_within_the_bound() {
        let gate = streaming(0);
        gate.probed(0, ts(100, 1));
        gate.stream_answered(Some(ts(100, 1)), true);
        assert!(gate.trustworthy(900));
        // The delete: the server's cluster time moves past the stream's.
        let mut now = 100;
        while now < 5_000 {
            gate.probed(now, ts(100, 2));
            gate.stream_answered(Some(ts(100, 1)), true);
            now += 250;
        }
        assert!(
            !gate.trustworthy(now),
            "served {now} ms after the stream last caught up"
        );
        assert!(gate.trustworthy(999), "caught up at 0: fresh until 1000");
    }

    /// An idle deployment: the stream's empty batches carry the cluster time
    /// itself, so it keeps catching up and the cache keeps answering.
    #[test]
    fn an_idle_stream_that_keeps_up_stays_trusted() {
        let gate = streaming(0);
        let mut now = 0;
        while now < 5_000 {
            gate.probed(now, ts(100, 1));
            gate.stream_answered(Some(ts(100, 1)), true);
            now += 250;
            assert!(gate.trustworthy(now), "at {now}");
        }
    }

    /// A busy stream: every batch carries events, and each event's token is
    /// past the cluster time probed before it.
    #[test]
    fn a_busy_stream_that_keeps_up_stays_trusted() {
        let gate = streaming(0);
        let mut now = 0;
        let mut seconds = 100;
        while now < 5_000 {
            gate.probed(now, ts(seconds, 0));
            seconds += 1;
            gate.stream_answered(Some(ts(seconds, 0)), false);
            now += 250;
            assert!(gate.trustworthy(now), "at {now}");
        }
    }

    /// An event's token covers that event, not others in the same
    /// transaction at the same cluster time: it satisfies only probes from
    /// strictly before. An empty batch's token covers its whole time.
    #[test]
    fn an_event_at_the_probed_time_is_not_enough() {
        let gate = streaming(0);
        gate.probed(2_000, ts(100, 5));
        gate.stream_answered(Some(ts(100, 5)), false);
        assert!(!gate.trustworthy(2_100));
        gate.stream_answered(Some(ts(100, 5)), true);
        assert!(gate.trustworthy(2_100));
    }

    /// Without a readable token the stream vouches for nothing.
    #[test]
    fn an_unreadable_token_vouches_for_nothing() {
        let gate = streaming(0);
        gate.probed(2_000, ts(100, 5));
        gate.stream_answered(None, true);
        assert!(!gate.trustworthy(2_100));
    }

    #[test]
    fn a_lost_stream_vouches_for_nothing() {
        let gate = streaming(0);
        gate.stream_lost(|| {});
        assert!(!gate.trustworthy(1));
        let mut inserted = false;
        gate.admit(gate.ticket(), 1, || inserted = true);
        assert!(!inserted);
    }

    #[test]
    fn without_change_streams_entries_are_always_admitted() {
        let gate = Coherence::new(CacheMode::StalenessBound, BOUND, 0);
        assert!(gate.trustworthy(1_000_000));
        let ticket = gate.ticket();
        let mut inserted = false;
        gate.admit(ticket, 1_000_000, || inserted = true);
        assert!(inserted);
    }
}
