//! What every store operation reports: a `tracing` span and, with the
//! `metrics` feature, counters and a latency histogram.
//!
//! Each public operation of [`MongoSessionStore`](crate::MongoSessionStore)
//! is a thin wrapper that hands its body to [`observed`]. The wrapper opens
//! the span, scopes a task-local [`Context`](spans) in which the store's one
//! driver chokepoint (`run_until`) counts round trips and `load` notes a
//! cache hit, then derives the outcome from the return value. Nothing here
//! changes what an operation does.
//!
//! # Spans
//!
//! One span per operation, at `INFO` level, target `mongodb_session_store`,
//! named `mongodb_session_store.<op>` (`mongodb_session_store.load`, …), a
//! child of whatever span is current (a web framework's request span, when
//! the adapters call the store from a request). Fields:
//!
//! | field | value |
//! |---|---|
//! | `op` | the operation: `load`, `create`, `save`, `touch`, `delete`, `delete_expired`, `user_sessions`, `revoke`, `revoke_others`, `rewrap`, `all`, `length`, `clear` |
//! | `id` | the session's [`RedactedId`](crate::RedactedId) (`sid#…`), never the id itself; absent for operations without one |
//! | `outcome` | see below |
//! | `round_trips` | the driver operations the store awaited (a cursor drained in one call counts once; `all`'s later batches are not counted) |
//! | `error` | on failure, its kind: `config`, `unreachable`, `connection`, `timeout`, `database`, `decode`, `encode`, `reserved_key`, `index_conflict`, `id_exhausted`, `conflict`, `contended` |
//!
//! Outcomes: `load` — `hit` (answered by the read-through cache), `miss`
//! (read from the database), `missing` (no live session); `save` —
//! `updated`, `touched`, `unchanged`, `missing`; `touch` — `touched`,
//! `unchanged`; `delete` — `deleted`, `missing`; `revoke` — `revoked`,
//! `missing`; `create` — `created`; the others `ok`. Any operation can end
//! in `conflict` ([`Error::is_conflict`](crate::Error::is_conflict)) or
//! `error`.
//!
//! # Metrics
//!
//! With the `metrics` feature (off by default; without it the calls below
//! compile to nothing), through the [`metrics`](https://docs.rs/metrics)
//! facade, so the application's recorder (Prometheus, StatsD, …) exports
//! them:
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `mongodb_sessions_operations_total` | counter | `op`, `outcome` |
//! | `mongodb_sessions_operation_duration_seconds` | histogram | `op`, `outcome` |
//! | `mongodb_sessions_round_trips_total` | counter | `op` |
//! | `mongodb_sessions_errors_total` | counter | `op`, `kind` (as the span's `error`) |
//! | `mongodb_sessions_cache_hits_total` | counter | |
//! | `mongodb_sessions_cache_misses_total` | counter | |
//! | `mongodb_sessions_cache_evictions_total` | counter | `reason`: `size`, `expired`, `invalidated` |
//! | `mongodb_sessions_change_stream_up` | gauge | 1 while the cache's change stream is open, 0 after it failed |

mod metrics;
mod spans;

#[cfg(feature = "metrics")]
pub use metrics::describe_metrics;
pub(crate) use metrics::{change_stream_up, count_evictions};
pub(crate) use spans::{note_cache_hit, observed, observed_load, round_trip, Op};
