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
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use observe::describe_metrics;
pub use options::{AutoRemove, ConflictPolicy};
pub use outcome::{LoadedSession, RewrapReport, SaveOutcome, StoredSession};
pub use snapshot::RESERVED_KEY;
pub use store::MongoSessionStore;
pub use user::{UserInfo, UserSession, USER_KEY};

#[doc(hidden)]
pub mod __bench {
    //! Not public API: the store's own per-operation work (document
    //! encoding, encryption, id hashing), exposed for `bench/` only.

    use mongodb::bson::{DateTime, Document};
    use serde_json::{Map, Value};

    use crate::{schema::Layout, KeyRing, Result};

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

        /// A new session's document.
        pub fn encode(&self, stored_id: &str, values: &Map<String, Value>) -> Result<Document> {
            let now = DateTime::now();
            let data = self.0.encode_values(stored_id, values)?;
            Ok(self.0.new_document(stored_id, data, now, now, now, None))
        }

        /// A document's values.
        pub fn decode(&self, document: &Document) -> Result<Map<String, Value>> {
            Ok(self.0.decode(document)?.data)
        }
    }
}
