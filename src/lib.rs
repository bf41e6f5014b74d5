#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
// A silent truncation in the library is a wrong expiry or a wrong size;
// benches and tests may cast freely.
#![warn(clippy::cast_possible_truncation)]

#[cfg(any(feature = "tower-sessions", feature = "actix-session"))]
mod adapter;
mod builder;
mod cache;
mod changes;
mod codec;
mod crypto;
mod endings;
mod error;
mod events;
mod id;
mod index;
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
#[cfg(feature = "express")]
#[cfg_attr(docsrs, doc(cfg(feature = "express")))]
pub use express::migrate;
#[cfg(feature = "tower-sessions")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower-sessions")))]
pub mod tower;

pub use builder::StoreBuilder;
pub use cache::{CacheMode, ReadCache};
pub use codec::{BoxError, Codec, SessionCodec};
pub use crypto::KeyRing;
pub use error::{Error, Result};
pub use events::{EventKind, EventReceiver, SessionEvent};
pub use id::{generate_id, RedactedId, SessionId};
pub use index::{IndexAction, IndexPlan, IndexPurpose, IndexRepair, PlannedIndex};
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use observe::describe_metrics;
pub use options::{AutoRemove, ConflictPolicy};
pub use outcome::{LoadedSession, RewrapEvent, RewrapReport, SaveOutcome, StoredSession};
pub use snapshot::RESERVED_KEY;
pub use store::{MongoSessionStore, SessionStats, SizeDistribution};
pub use user::{UserInfo, UserSession, USER_KEY};

/// The deployment guide's examples, compiled with the doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/deployment.md")]
struct DeploymentGuide;

// Not public API: the store's internals the benchmarks measure stage by
// stage (`bench/`, `tests/alloc.rs`), behind the non-default `bench` feature.
#[cfg(feature = "bench")]
#[doc(hidden)]
#[path = "bench.rs"]
pub mod __bench;
