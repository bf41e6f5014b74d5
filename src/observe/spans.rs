//! The span around each operation and the task-local context it scopes.

use std::{cell::Cell, future::Future};

use futures_util::stream::BoxStream;
use tracing::{field::Empty, Instrument, Span};

use super::metrics;
use crate::{
    error::Result,
    id::RedactedId,
    outcome::{LoadedSession, RewrapReport, SaveOutcome, StoredSession},
    user::UserSession,
};

/// A public store operation, as spans and metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Load,
    Create,
    Save,
    Touch,
    Delete,
    DeleteExpired,
    UserSessions,
    SignedOut,
    Revoke,
    RevokeOthers,
    Rewrap,
    All,
    Length,
    Clear,
    Stats,
    IndexPlan,
    EnsureIndexes,
}

/// A span's name must be a literal at its callsite: one callsite per
/// operation, so subscribers can filter and name them statically.
macro_rules! op_spans {
    ($($variant:ident => $name:literal, $label:literal;)*) => {
        impl Op {
            /// The `op` field and label.
            #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
            pub(crate) fn label(self) -> &'static str {
                match self {
                    $(Self::$variant => $label,)*
                }
            }

            fn span(self, id: Option<&str>) -> Span {
                match self {
                    $(Self::$variant => tracing::info_span!(
                        target: "mongodb_session_store",
                        $name,
                        op = $label,
                        id = id.map(|id| tracing::field::display(RedactedId::new(id))),
                        outcome = Empty,
                        round_trips = Empty,
                        error = Empty,
                    ),)*
                }
            }
        }
    };
}

op_spans! {
    Load => "mongodb_session_store.load", "load";
    Create => "mongodb_session_store.create", "create";
    Save => "mongodb_session_store.save", "save";
    Touch => "mongodb_session_store.touch", "touch";
    Delete => "mongodb_session_store.delete", "delete";
    DeleteExpired => "mongodb_session_store.delete_expired", "delete_expired";
    UserSessions => "mongodb_session_store.user_sessions", "user_sessions";
    SignedOut => "mongodb_session_store.signed_out", "signed_out";
    Revoke => "mongodb_session_store.revoke", "revoke";
    RevokeOthers => "mongodb_session_store.revoke_others", "revoke_others";
    Rewrap => "mongodb_session_store.rewrap", "rewrap";
    All => "mongodb_session_store.all", "all";
    Length => "mongodb_session_store.length", "length";
    Clear => "mongodb_session_store.clear", "clear";
    Stats => "mongodb_session_store.stats", "stats";
    IndexPlan => "mongodb_session_store.index_plan", "index_plan";
    EnsureIndexes => "mongodb_session_store.ensure_indexes", "ensure_indexes";
}

/// What the body of one operation noted while it ran.
#[derive(Debug, Default)]
struct Context {
    round_trips: Cell<u32>,
    cache_hit: Cell<bool>,
}

tokio::task_local! {
    static CONTEXT: Context;
}

/// Counts one driver operation of the operation being observed; nothing
/// outside one.
pub(crate) fn round_trip() {
    let _ = CONTEXT.try_with(|c| c.round_trips.set(c.round_trips.get().saturating_add(1)));
}

/// The load being observed was answered from the cache.
pub(crate) fn note_cache_hit() {
    let _ = CONTEXT.try_with(|c| c.cache_hit.set(true));
}

/// Runs `future`, the body of `op` on session `id`, inside its span, and
/// reports how it ended.
pub(crate) async fn observed<T: Outcome>(
    op: Op,
    id: Option<&str>,
    future: impl Future<Output = Result<T>>,
) -> Result<T> {
    run(op, id, false, future).await
}

/// [`observed`] for a load, on a store with a read-through cache when
/// `cached`: a load that the cache did not answer is a cache miss.
pub(crate) async fn observed_load(
    id: &str,
    cached: bool,
    future: impl Future<Output = Result<Option<LoadedSession>>>,
) -> Result<Option<LoadedSession>> {
    run(Op::Load, Some(id), cached, future).await
}

async fn run<T: Outcome>(
    op: Op,
    id: Option<&str>,
    cached: bool,
    future: impl Future<Output = Result<T>>,
) -> Result<T> {
    let span = op.span(id);
    let timer = metrics::Timer::start();
    let body = async {
        let result = future.await;
        let noted = CONTEXT.with(|c| (c.round_trips.get(), c.cache_hit.get()));
        (result, noted)
    };
    let (result, (round_trips, cache_hit)) = CONTEXT
        .scope(Context::default(), body)
        .instrument(span.clone())
        .await;
    let outcome = match &result {
        Ok(value) => value.outcome(op, cache_hit),
        Err(error) if error.is_conflict() => "conflict",
        Err(_) => "error",
    };
    if let Some(id) = result.as_ref().ok().and_then(Outcome::new_id) {
        if !span.is_disabled() {
            span.record("id", tracing::field::display(RedactedId::new(id)));
        }
    }
    span.record("outcome", outcome);
    span.record("round_trips", round_trips);
    if let Err(error) = &result {
        span.record("error", error.kind_label());
        metrics::error(op, error.kind_label());
    }
    metrics::operation(op, outcome, round_trips, timer);
    // A load that went to the database (a plausible id) missed the cache.
    if cached && (cache_hit || round_trips > 0) {
        metrics::cache_lookup(cache_hit);
    }
    result
}

/// The `outcome` of an operation that returned `self`.
pub(crate) trait Outcome {
    fn outcome(&self, op: Op, cache_hit: bool) -> &'static str;

    /// The id of the session the operation created, for the span's `id`.
    fn new_id(&self) -> Option<&str> {
        None
    }
}

impl Outcome for Option<LoadedSession> {
    fn outcome(&self, _: Op, cache_hit: bool) -> &'static str {
        match (self, cache_hit) {
            (None, _) => "missing",
            (Some(_), true) => "hit",
            (Some(_), false) => "miss",
        }
    }
}

impl Outcome for SaveOutcome {
    fn outcome(&self, _: Op, _: bool) -> &'static str {
        match self {
            SaveOutcome::Updated => "updated",
            SaveOutcome::Touched => "touched",
            SaveOutcome::Unchanged => "unchanged",
            SaveOutcome::Missing => "missing",
        }
    }
}

impl Outcome for bool {
    fn outcome(&self, op: Op, _: bool) -> &'static str {
        match (op, self) {
            (Op::Touch, true) => "touched",
            (Op::Touch, false) => "unchanged",
            (Op::Revoke, true) => "revoked",
            (_, true) => "deleted",
            (_, false) => "missing",
        }
    }
}

impl Outcome for String {
    fn outcome(&self, _: Op, _: bool) -> &'static str {
        "created"
    }

    fn new_id(&self) -> Option<&str> {
        Some(self)
    }
}

/// Operations whose answer is a count or a listing: they either work or fail.
macro_rules! ok_outcome {
    ($($t:ty),*) => {
        $(impl Outcome for $t {
            fn outcome(&self, _: Op, _: bool) -> &'static str {
                "ok"
            }
        })*
    };
}

ok_outcome!(
    u64,
    Vec<UserSession>,
    Vec<crate::users::SignedOut>,
    RewrapReport,
    crate::admin::SessionStats,
    crate::admin::IndexPlan,
    BoxStream<'static, Result<StoredSession>>
);
