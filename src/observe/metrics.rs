//! The figures observed operations record through the `metrics` facade.
//! Without the `metrics` feature every function here is empty and inlined
//! away, and [`Timer`] is zero-sized: the store pays nothing.

use std::sync::Arc;

use crate::outcome::LoadedSession;

/// The read-through cache's builder, for [`count_evictions`].
pub(crate) type CacheBuilder = moka::sync::CacheBuilder<
    String,
    Arc<LoadedSession>,
    moka::sync::Cache<String, Arc<LoadedSession>>,
>;

#[cfg(feature = "metrics")]
pub use enabled::describe_metrics;
#[cfg(feature = "metrics")]
pub(crate) use enabled::*;

#[cfg(not(feature = "metrics"))]
pub(crate) use disabled::*;

#[cfg(feature = "metrics")]
mod enabled {
    use std::time::Instant;

    use ::metrics::{
        counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
    };
    use moka::notification::RemovalCause;

    use super::CacheBuilder;
    use crate::observe::Op;

    const OPERATIONS: &str = "mongodb_sessions_operations_total";
    const DURATION: &str = "mongodb_sessions_operation_duration_seconds";
    const ROUND_TRIPS: &str = "mongodb_sessions_round_trips_total";
    const ERRORS: &str = "mongodb_sessions_errors_total";
    const CACHE_HITS: &str = "mongodb_sessions_cache_hits_total";
    const CACHE_MISSES: &str = "mongodb_sessions_cache_misses_total";
    const CACHE_EVICTIONS: &str = "mongodb_sessions_cache_evictions_total";
    const CHANGE_STREAM_UP: &str = "mongodb_sessions_change_stream_up";

    /// When an operation started.
    pub(crate) struct Timer(Instant);

    impl Timer {
        pub(crate) fn start() -> Self {
            Self(Instant::now())
        }
    }

    pub(crate) fn operation(op: Op, outcome: &'static str, round_trips: u32, timer: Timer) {
        let (op, seconds) = (op.label(), timer.0.elapsed().as_secs_f64());
        counter!(OPERATIONS, "op" => op, "outcome" => outcome).increment(1);
        histogram!(DURATION, "op" => op, "outcome" => outcome).record(seconds);
        counter!(ROUND_TRIPS, "op" => op).increment(u64::from(round_trips));
    }

    pub(crate) fn error(op: Op, kind: &'static str) {
        counter!(ERRORS, "op" => op.label(), "kind" => kind).increment(1);
    }

    pub(crate) fn cache_lookup(hit: bool) {
        counter!(if hit { CACHE_HITS } else { CACHE_MISSES }).increment(1);
    }

    pub(crate) fn change_stream_up(up: bool) {
        gauge!(CHANGE_STREAM_UP).set(if up { 1.0 } else { 0.0 });
    }

    /// Counts the entries the cache drops, by why; a value replaced by a
    /// newer one is not dropped.
    pub(crate) fn count_evictions(builder: CacheBuilder) -> CacheBuilder {
        builder.eviction_listener(|_, _, cause| {
            let reason = match cause {
                RemovalCause::Size => "size",
                RemovalCause::Expired => "expired",
                RemovalCause::Explicit => "invalidated",
                RemovalCause::Replaced => return,
            };
            counter!(CACHE_EVICTIONS, "reason" => reason).increment(1);
        })
    }

    /// Describes the store's metrics (unit and help text) to the installed
    /// recorder. Optional: call it once after installing the recorder for
    /// `# HELP` lines and units in the exporter's output.
    pub fn describe_metrics() {
        describe_counter!(
            OPERATIONS,
            "Session store operations, by operation and outcome."
        );
        describe_histogram!(DURATION, Unit::Seconds, "Session store operation latency.");
        describe_counter!(
            ROUND_TRIPS,
            "Database round trips of session store operations."
        );
        describe_counter!(ERRORS, "Failed session store operations, by error kind.");
        describe_counter!(CACHE_HITS, "Loads answered by the read-through cache.");
        describe_counter!(
            CACHE_MISSES,
            "Loads of a cached store that read the database."
        );
        describe_counter!(
            CACHE_EVICTIONS,
            "Entries dropped from the read-through cache."
        );
        describe_gauge!(
            CHANGE_STREAM_UP,
            "1 while the cache's change stream is open."
        );
    }
}

#[cfg(not(feature = "metrics"))]
mod disabled {
    use super::CacheBuilder;
    use crate::observe::Op;

    pub(crate) struct Timer;

    impl Timer {
        #[inline(always)]
        pub(crate) fn start() -> Self {
            Self
        }
    }

    #[inline(always)]
    pub(crate) fn operation(_: Op, _: &'static str, _: u32, _: Timer) {}

    #[inline(always)]
    pub(crate) fn error(_: Op, _: &'static str) {}

    #[inline(always)]
    pub(crate) fn cache_lookup(_: bool) {}

    #[inline(always)]
    pub(crate) fn change_stream_up(_: bool) {}

    #[inline(always)]
    pub(crate) fn count_evictions(builder: CacheBuilder) -> CacheBuilder {
        builder
    }
}
