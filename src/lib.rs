#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod codec;
mod crypto;
mod error;
mod events;
mod id;
mod index;
mod schema;
mod snapshot;
mod store;
mod touch_hints;
mod user;
mod write;

#[cfg(feature = "actix-session")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix-session")))]
pub mod actix;
#[cfg(feature = "tower-sessions")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower-sessions")))]
pub mod tower;

pub use builder::{AutoRemove, StoreBuilder};
pub use codec::{BoxError, Codec, SessionCodec};
pub use crypto::KeyRing;
pub use error::{Error, Result};
pub use events::{EventKind, EventReceiver, SessionEvent, SessionId};
pub use id::{generate_id, RedactedId};
pub use schema::IdTransform;
pub use snapshot::RESERVED_KEY;
pub use store::{
    ConflictPolicy, LoadedSession, MongoSessionStore, RewrapReport, SaveOutcome, StoredSession,
};
pub use user::{UserInfo, UserSession, USER_KEY};
