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
mod codec;
mod crypto;
mod endings;
mod error;
mod events;
mod id;
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
#[cfg(feature = "express")]
#[cfg_attr(docsrs, doc(cfg(feature = "express")))]
pub use express::migrate;
#[cfg(feature = "tower-sessions")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower-sessions")))]
pub mod tower;

pub use batch::{BatchOptions, Incomplete};
pub use builder::StoreBuilder;

/// The store's options by name, set from text ([`StoreBuilder::set`]): the
/// one definition the operations CLI derives its flags from.
pub mod config {
    pub use crate::builder::text::{parse_duration, parse_key_ring, StoreOption, STORE_OPTIONS};
}
pub use cache::{CacheMode, ReadCache};
pub use codec::{BoxError, Codec, SessionCodec};
pub use crypto::KeyRing;
pub use error::{Error, Result};
pub use events::{EventKind, EventReceiver, SessionEvent};
pub use id::{generate_id, RedactedId, SessionId};
pub use index::{IndexAction, IndexPlan, IndexPurpose, IndexRepair, PlannedIndex};
pub use lifetime::{SessionLifetime, LIFETIME_KEY};
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use observe::describe_metrics;
pub use options::{AutoRemove, ConflictPolicy, OverLimit};
pub use outcome::{LoadedSession, RewrapEvent, RewrapReport, SaveOutcome, StoredSession};
pub use schema::DocumentFormat;
pub use snapshot::RESERVED_KEY;
pub use store::{MongoSessionStore, SessionStats, SizeDistribution};
pub use user::{EndReason, SignedOut, UserInfo, UserSession, USER_KEY};

/// The deployment guide's examples, compiled with the doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/deployment.md")]
struct DeploymentGuide;

#[doc(hidden)]
pub mod __bench {
    //! Not public API: the store's own per-operation work (document
    //! encoding, encryption, id hashing), exposed for `bench/` only.

    use mongodb::bson::{DateTime, RawDocument};
    use serde_json::{Map, Value};

    use crate::{outcome::LoadedSession, schema::Layout, KeyRing, Result};

    /// Encodes and decodes whole session documents as the store does.
    #[derive(Debug)]
    pub struct DocumentCodec(Layout);

    impl DocumentCodec {
        /// The default layout: BSON values, hashed ids.
        pub fn plain() -> Self {
            Self(Layout::default())
        }

        /// The default layout with encryption.
        pub fn encrypted(keys: KeyRing) -> Self {
            Self(Layout {
                encryption: Some(keys),
                ..Layout::default()
            })
        }

        /// The stored id of a session id (an HMAC-SHA-256).
        pub fn stored_id(&self, id: &str) -> String {
            self.0.stored_id(id)
        }

        /// A new session's document, as the bytes an insert sends.
        pub fn encode(&self, stored_id: &str, values: &Map<String, Value>) -> Result<Vec<u8>> {
            let now = DateTime::now();
            let data = self.0.encode_values(stored_id, values)?;
            let document = self.0.new_document(stored_id, data, now, now, now, None);
            mongodb::bson::to_vec(&document).map_err(|e| crate::Error::encode(e.to_string()))
        }

        /// What a load does with the bytes a find returns: decodes them and
        /// fingerprints every value for the save to compare against.
        pub fn decode(&self, bytes: &[u8]) -> Result<Map<String, Value>> {
            let raw = RawDocument::from_bytes(bytes)
                .map_err(|e| crate::codec::malformed("document", &e))?;
            let decoded = self.0.decode_raw(raw)?;
            Ok(LoadedSession::new(decoded, &self.0).data)
        }
    }
}
