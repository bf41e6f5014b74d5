#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod codec;
mod error;
mod id;
mod index;
mod schema;
mod snapshot;
mod store;
mod write;

#[cfg(feature = "tower-sessions")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower-sessions")))]
pub mod tower;

pub use builder::{AutoRemove, StoreBuilder};
pub use error::{Error, Result};
pub use id::{generate_id, RedactedId};
pub use snapshot::RESERVED_KEY;
pub use store::{LoadedSession, MongoSessionStore, SaveOutcome};
