//! The stored document, and how a session maps onto it.
//!
//! ```text
//! { _id:          "<HMAC-SHA-256 of the session id>",
//!   data:         { <key>: <value>, … },   // BSON; with encryption, see below
//!   expires:      ISODate,                 // the TTL index's field
//!   createdAt:    ISODate,
//!   lastModified: ISODate,                 // last write or touch
//!   version:      Int64,                   // +1 on every change of data
//!   user, userAgent, ip                    // when the application sets them
//! }
//! ```
//!
//! With encryption, each entry of `data` is `<HMAC of the key>:
//! Binary(AES-256-GCM of [key, value])`, bound to the document's `_id` and
//! the field name, so values can still be written one key at a time.
//!
//! Every name is configurable and hashing can be turned off, so the layouts
//! of connect-mongo and connect-mongodb-session can be used as is.

use std::{fmt, sync::Arc, time::Duration};

use mongodb::bson::{doc, spec::BinarySubtype, Binary, Bson, DateTime, Document};
use serde_json::{Map, Value};

use crate::{
    codec::{escape_key, value_to_bson, Codec},
    crypto::{Hasher, KeyRing},
    error::Result,
    lifetime::SessionLifetime,
    user::UserInfo,
};

/// Maps a session id to the value stored in the id field
/// (connect-mongo's `transformId`).
pub(crate) type IdTransform = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// What a layout shared with another application requires of the values
/// it writes. The store calls it on every write and knows nothing more of
/// that application (the Express wing implements it).
pub(crate) trait ValueRules: Send + Sync {
    /// Brings `values` up to date for a write at `now_ms` and returns the
    /// expiry they call for (ms since the epoch); `ttl_ms` is the store's.
    fn before_write(&self, values: &mut Map<String, Value>, now_ms: i64, ttl_ms: i64) -> i64;
}

/// Names of the document's fields; an optional one is `None` when not
/// written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fields {
    pub(crate) id: String,
    pub(crate) data: String,
    pub(crate) expires: String,
    pub(crate) created_at: Option<String>,
    pub(crate) last_modified: Option<String>,
    pub(crate) version: Option<String>,
}

impl Default for Fields {
    fn default() -> Self {
        Self {
            id: "_id".into(),
            data: "data".into(),
            expires: "expires".into(),
            created_at: Some("createdAt".into()),
            last_modified: Some("lastModified".into()),
            version: Some("version".into()),
        }
    }
}

mod decode;
mod format;
mod live;

pub(crate) use decode::optional_date;
pub use format::DocumentFormat;
pub(crate) use format::{format_of, FORMAT_FIELD};
pub(crate) use live::and;

const USER: &str = "user";
/// The field naming a regenerated session's lineage (see `endings`); a
/// session without it is the first of its lineage.
pub(crate) const LINEAGE_FIELD: &str = "lineage";
const USER_AGENT: &str = "userAgent";
const IP: &str = "ip";

/// Everything about how sessions are laid out in documents.
#[derive(Clone)]
pub(crate) struct Layout {
    pub(crate) fields: Fields,
    pub(crate) codec: Codec,
    pub(crate) transform_id: Option<IdTransform>,
    pub(crate) hash_ids: bool,
    pub(crate) hasher: Hasher,
    pub(crate) encryption: Option<KeyRing>,
    pub(crate) absolute_timeout: Option<Duration>,
    /// The longest a session's own idle window or absolute lifetime may be.
    pub(crate) lifetime_limit: Duration,
    /// The format this store writes.
    pub(crate) format: DocumentFormat,
    pub(crate) field_names: FieldNameCache,
    /// Rules a foreign layout applies to the values of every write (the
    /// Express layouts: express-session's `cookie` object and its expiry).
    pub(crate) value_rules: Option<Arc<dyn ValueRules>>,
}

/// Encrypted field names are HMACs of the keys; an application uses few
/// keys, so they are worth remembering. Bounded, since keys can come from
/// clients; a miss only costs the hashes again.
#[derive(Clone)]
pub(crate) struct FieldNameCache(moka::sync::Cache<String, Arc<[String]>>);

impl Default for FieldNameCache {
    fn default() -> Self {
        Self(moka::sync::Cache::new(4096))
    }
}

impl FieldNameCache {
    /// Every name of `key` (see `KeyRing::field_names`), the current one
    /// first.
    fn get_or_insert(&self, key: &str, hash: impl FnOnce() -> Vec<String>) -> Arc<[String]> {
        if let Some(names) = self.0.get(key) {
            return names;
        }
        let names: Arc<[String]> = hash().into();
        self.0.insert(key.to_string(), Arc::clone(&names));
        names
    }
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            fields: Fields::default(),
            codec: Codec::default(),
            transform_id: None,
            hash_ids: true,
            hasher: Hasher::default(),
            encryption: None,
            absolute_timeout: None,
            lifetime_limit: Duration::from_secs(14 * 24 * 60 * 60),
            format: DocumentFormat::default(),
            field_names: FieldNameCache::default(),
            value_rules: None,
        }
    }
}

impl fmt::Debug for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layout")
            .field("fields", &self.fields)
            .field("codec", &self.codec)
            .field("transform_id", &self.transform_id.is_some())
            .field("hash_ids", &self.hash_ids)
            .field("encryption", &self.encryption)
            .field("absolute_timeout", &self.absolute_timeout)
            .field("lifetime_limit", &self.lifetime_limit)
            .field("format", &self.format)
            .field("value_rules", &self.value_rules.is_some())
            .finish()
    }
}

/// A session key and the field name it is stored under.
pub(crate) type StaleKey = (String, String);

/// A session as decoded from its document.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub(crate) stored_id: String,
    pub(crate) data: Map<String, Value>,
    pub(crate) expires: DateTime,
    pub(crate) created_at: Option<DateTime>,
    pub(crate) last_modified: Option<DateTime>,
    pub(crate) version: Option<i64>,
    pub(crate) user: Option<UserInfo>,
    /// The lineage the document names, if it names one (see
    /// [`Layout::lineage`]).
    pub(crate) lineage: Option<String>,
    /// The session's own lifetime, if the document stores one.
    pub(crate) lifetime: Option<SessionLifetime>,
    /// The document's format.
    pub(crate) format: i64,
    /// Keys not stored as a write would store them now (sealed under an
    /// older key, or under an older field name), with the field name they
    /// are stored under.
    pub(crate) stale: Vec<StaleKey>,
}

impl Layout {
    /// The value stored in the id field for the cookie's id.
    pub(crate) fn stored_id(&self, id: &str) -> String {
        match &self.transform_id {
            Some(transform) => transform(id),
            None if self.hash_ids => self.hasher.hash("id", id, 32),
            None => id.to_string(),
        }
    }

    /// The revocation handle of the session stored under `stored_id`.
    pub(crate) fn handle(&self, stored_id: &str) -> String {
        self.hasher.hash("handle", stored_id, 16)
    }

    /// The lineage of the session stored under `stored_id` whose document
    /// names `named` (or none): the chain of ids one device's session has
    /// had through its regenerations. A first session names none and its
    /// lineage is derived from its id, so only regenerated documents carry
    /// the field.
    pub(crate) fn lineage(&self, stored_id: &str, named: Option<&str>) -> String {
        named.map_or_else(
            || self.hasher.hash("lineage", stored_id, 16),
            str::to_string,
        )
    }

    /// The name under which `key` is stored inside `data`.
    fn field_name(&self, key: &str) -> String {
        match &self.encryption {
            Some(ring) => self.encrypted_names(ring, key)[0].clone(),
            None => escape_key(key).into_owned(),
        }
    }

    /// Every name `key` may be stored under with encryption, the current
    /// one first: the key ring's (see `KeyRing::field_names`), and the one
    /// the first encrypting release used, an HMAC under the id-hash key
    /// (the built-in one, or the application's `id_hash_key`).
    fn encrypted_names(&self, ring: &KeyRing, key: &str) -> Arc<[String]> {
        self.field_names.get_or_insert(key, || {
            let mut names = ring.field_names(key);
            let first = self.hasher.hash("field", key, 16);
            if !names.contains(&first) {
                names.push(first);
            }
            names
        })
    }

    /// The dotted path of one session key.
    pub(crate) fn data_path(&self, key: &str) -> String {
        self.stored_path(&self.field_name(key))
    }

    /// The dotted paths `key` may be stored under other than `data_path`'s:
    /// with encryption, its names under the ring's other keys and the
    /// earlier public one. A write of the key removes them, a removal
    /// removes them too.
    pub(crate) fn other_paths(&self, key: &str) -> Vec<String> {
        match &self.encryption {
            Some(ring) => self.encrypted_names(ring, key)[1..]
                .iter()
                .map(|name| self.stored_path(name))
                .collect(),
            None => Vec::new(),
        }
    }

    /// The dotted path of a field of `data` as it is stored.
    pub(crate) fn stored_path(&self, field: &str) -> String {
        format!("{}.{field}", self.fields.data)
    }

    /// Whether single keys can be updated in place.
    pub(crate) fn per_key(&self) -> bool {
        self.codec.per_key() && self.value_rules.is_none()
    }

    /// One value as stored under its key.
    pub(crate) fn encode_value(&self, stored_id: &str, key: &str, value: &Value) -> Bson {
        let Some(ring) = &self.encryption else {
            return value_to_bson(value);
        };
        let field = self.field_name(key);
        let plaintext = serde_json::to_vec(&(key, value)).expect("a JSON value always serializes");
        let sealed = ring.seal(aad(stored_id, &field).as_bytes(), &plaintext);
        Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: sealed,
        })
    }

    /// All values, as stored in the data field.
    pub(crate) fn encode_values(
        &self,
        stored_id: &str,
        values: &Map<String, Value>,
    ) -> Result<Bson> {
        if self.encryption.is_none() {
            return self.codec.encode(values);
        }
        Ok(Bson::Document(
            values
                .iter()
                .map(|(k, v)| (self.field_name(k), self.encode_value(stored_id, k, v)))
                .collect(),
        ))
    }

    /// A new session's document.
    pub(crate) fn new_document(
        &self,
        stored_id: &str,
        values: Bson,
        expires: DateTime,
        created_at: DateTime,
        now: DateTime,
        user: Option<&UserInfo>,
    ) -> Document {
        let fields = &self.fields;
        let mut document = doc! {
            &fields.id: stored_id,
            &fields.data: values,
            &fields.expires: expires,
        };
        document.extend(self.format_stamp());
        if let Some(name) = &fields.created_at {
            document.insert(name, created_at);
        }
        if let Some(name) = &fields.last_modified {
            document.insert(name, now);
        }
        if let Some(name) = &fields.version {
            document.insert(name, 0_i64);
        }
        if let Some(user) = user {
            document.extend(user_fields(user));
        }
        document
    }

    /// `$set` of the expiry, the modification time and the format.
    pub(crate) fn stamps(&self, expires: DateTime, now: DateTime) -> Document {
        let mut set = doc! { &self.fields.expires: expires };
        if let Some(name) = &self.fields.last_modified {
            set.insert(name, now);
        }
        // Every write upgrades the document to the format this store writes.
        set.extend(self.format_stamp());
        set
    }

    /// Matches the document only while its version is `version`.
    pub(crate) fn version_filter(&self, filter: &mut Document, version: Option<i64>) {
        if let Some(field) = &self.fields.version {
            match version {
                Some(n) => filter.insert(field, n),
                None => filter.insert(field, doc! { "$exists": false }),
            };
        }
    }
}

/// What binds a ciphertext to its document and field.
pub(super) fn aad(stored_id: &str, field: &str) -> String {
    format!("mss/v1\0{stored_id}\0{field}")
}

/// The top-level fields recording a session's owner.
pub(crate) fn user_fields(user: &UserInfo) -> Document {
    let optional = |v: &Option<String>| v.clone().map_or(Bson::Null, Bson::String);
    doc! {
        USER: &user.user,
        USER_AGENT: optional(&user.user_agent),
        IP: optional(&user.ip),
    }
}

/// `$unset` of the owner fields.
pub(crate) fn unset_user_fields() -> Document {
    doc! { USER: "", USER_AGENT: "", IP: "" }
}

/// The name of the indexed owner field.
pub(crate) const USER_FIELD: &str = USER;
