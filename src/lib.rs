#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
// A silent truncation in the library is a wrong expiry or a wrong size;
// benches and tests may cast freely.
#![warn(clippy::cast_possible_truncation)]

#[cfg(any(feature = "tower-sessions", feature = "actix-session"))]
mod adapter;
mod batch;
mod builder;
mod cache;
mod changes;
pub mod codec;
mod crypto;
mod endings;
mod error;
pub mod events;
pub mod id;
mod index;
mod lifetime;
mod observe;
mod options;
mod outcome;
mod plan;
mod schema;
mod snapshot;
mod store;
mod touch_hints;
mod user;
mod write;

#[cfg(feature = "actix-session")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix-session")))]
pub mod actix;
#[cfg(feature = "express")]
#[cfg_attr(docsrs, doc(cfg(feature = "express")))]
pub mod express;
#[cfg(feature = "tower-sessions")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower-sessions")))]
pub mod tower;

// The crate root: what an application needs to build and use a store.
pub use builder::StoreBuilder;
pub use cache::ReadCache;
pub use codec::Codec;
pub use crypto::KeyRing;
pub use error::{Error, Result};
pub use index::IndexRepair;
pub use lifetime::SessionLifetime;
pub use options::{AutoRemove, ConflictPolicy, OverLimit};
pub use schema::DocumentFormat;
pub use store::MongoSessionStore;
pub use user::UserInfo;

/// What the core API (`load`, `save`, `create`, `all`) takes and returns,
/// for an application or adapter that calls it rather than going through
/// the `tower` or `actix` module.
pub mod session {
    pub use crate::lifetime::LIFETIME_KEY;
    pub use crate::outcome::{current_handle, LoadedSession, SaveOutcome, StoredSession};
    pub use crate::snapshot::{is_reserved, RESERVED_PREFIX, TRACKING_KEY};
    pub use crate::user::USER_KEY;
}

/// A user's sessions: what a "your devices" page lists.
pub mod users {
    pub use crate::user::{EndReason, SignedOut, UserSession};
}

/// Operations on the whole collection, for operators and tools: figures,
/// indexes, key rotation, batches.
pub mod admin {
    pub use crate::batch::{BatchOptions, Incomplete};
    pub use crate::cache::CacheMode;
    pub use crate::index::{IndexAction, IndexPlan, IndexPurpose, PlannedIndex};
    pub use crate::outcome::{RewrapEvent, RewrapReport};
    pub use crate::store::{SessionStats, SizeDistribution};
}

/// The store's options by name, set from text ([`StoreBuilder::set`]): the
/// one definition the operations CLI derives its flags from.
pub mod config {
    pub use crate::builder::text::{parse_duration, parse_key_ring, StoreOption, STORE_OPTIONS};
}

/// The `metrics` facade's descriptions of the store's metrics.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics {
    pub use crate::observe::describe_metrics;
}

// The topic pages under docs/, their examples compiled with the doc tests
// (docs.rs shows the README only; the pages are read in the repository).
/// The deployment guide's examples, compiled with the doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/deployment.md")]
struct DeploymentGuide;
#[cfg(doctest)]
#[doc = include_str!("../docs/options.md")]
struct OptionsGuide;
#[cfg(doctest)]
#[doc = include_str!("../docs/cache.md")]
struct CacheGuide;
#[cfg(doctest)]
#[doc = include_str!("../docs/express.md")]
struct ExpressGuide;
#[cfg(doctest)]
#[doc = include_str!("../docs/cli.md")]
struct CliGuide;
#[cfg(doctest)]
#[doc = include_str!("../docs/observability.md")]
struct ObservabilityGuide;
#[cfg(doctest)]
#[doc = include_str!("../docs/concurrency.md")]
struct ConcurrencyGuide;
#[cfg(doctest)]
#[doc = include_str!("../docs/security.md")]
struct SecurityGuide;
#[cfg(doctest)]
#[doc = include_str!("../docs/demo.md")]
struct DemoGuide;

// Not public API: the store's internals the benchmarks measure stage by
// stage (`bench/`, `tests/alloc.rs`), behind the non-default `bench` feature.
#[cfg(feature = "bench")]
#[doc(hidden)]
#[path = "bench.rs"]
pub mod __bench;
