//! What every store operation reports: a `tracing` span and, with the
//! `metrics` feature, counters and a latency histogram.
//!
//! Each public operation of [`MongoSessionStore`](crate::MongoSessionStore)
//! is a thin wrapper that hands its body to [`observed`]. The wrapper opens
//! the span, scopes a task-local context in which the store's one
//! driver chokepoint (`run_until`) counts round trips and `load` notes a
//! cache hit, then derives the outcome from the return value. Nothing here
//! changes what an operation does. The cache reports its figures from two
//! hooks: an eviction listener on its entries (installed only with the
//! `metrics` feature) and the change stream's opening and loss.
//!
//! The span names and fields, the outcomes and the metric names and labels
//! are public: README.md's *Tracing and metrics* lists them, and
//! `tests/it/observe` checks them.

mod metrics;
mod spans;

#[cfg(feature = "metrics")]
pub use metrics::describe_metrics;
pub(crate) use metrics::{change_stream_up, count_evictions};
pub(crate) use spans::{note_cache_hit, observed, observed_load, round_trip, Op};
