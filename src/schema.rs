//! The stored document, and how a session maps onto it.
//!
//! ```text
//! { _id:          "<session id>",          // the cookie's id
//!   data:         { <key>: <value>, … },   // the session's values as BSON
//!   expires:      ISODate,                 // the TTL index's field
//!   createdAt:    ISODate,
//!   lastModified: ISODate,                 // last write or touch
//!   version:      Int64 }                  // +1 on every change of data
//! ```
//!
//! Every name is configurable, and the timestamps can be turned off, so the
//! layouts of connect-mongo and connect-mongodb-session can be used as is.

use std::{fmt, sync::Arc, time::SystemTime};

use mongodb::bson::{doc, Bson, DateTime, Document};
use serde_json::{Map, Value};

use crate::{
    codec::{escape_key, wrong_type, Codec},
    error::{Error, Result},
};

/// Maps a session id to the value stored in the id field
/// (connect-mongo's `transformId`).
pub type IdTransform = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Names of the document's fields; a timestamp is `None` when not written.
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

impl Fields {
    /// The dotted path of one session key inside `data`.
    pub(crate) fn data_path(&self, key: &str) -> String {
        format!("{}.{}", self.data, escape_key(key))
    }
}

/// Everything about how sessions are laid out in documents.
#[derive(Clone, Default)]
pub(crate) struct Layout {
    pub(crate) fields: Fields,
    pub(crate) codec: Codec,
    pub(crate) transform_id: Option<IdTransform>,
}

impl fmt::Debug for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layout")
            .field("fields", &self.fields)
            .field("codec", &self.codec)
            .field("transform_id", &self.transform_id.is_some())
            .finish()
    }
}

/// A session as decoded from its document.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub(crate) data: Map<String, Value>,
    pub(crate) expires: DateTime,
    pub(crate) created_at: Option<DateTime>,
    pub(crate) last_modified: Option<DateTime>,
    pub(crate) version: Option<i64>,
}

impl Layout {
    /// The value stored in the id field for the cookie's id.
    pub(crate) fn key(&self, id: &str) -> String {
        match &self.transform_id {
            Some(transform) => transform(id),
            None => id.to_string(),
        }
    }

    /// The filter matching the session `id` if it has not expired.
    pub(crate) fn live_filter(&self, id: &str, now: DateTime) -> Document {
        doc! { &self.fields.id: self.key(id), &self.fields.expires: { "$gt": now } }
    }

    /// A new session's document.
    pub(crate) fn new_document(
        &self,
        key: &str,
        values: Bson,
        expires: DateTime,
        created_at: DateTime,
        now: DateTime,
    ) -> Document {
        let fields = &self.fields;
        let mut document = doc! {
            &fields.id: key,
            &fields.data: values,
            &fields.expires: expires,
        };
        if let Some(name) = &fields.created_at {
            document.insert(name, created_at);
        }
        if let Some(name) = &fields.last_modified {
            document.insert(name, now);
        }
        if let Some(name) = &fields.version {
            document.insert(name, 0_i64);
        }
        document
    }

    /// `$set` of the expiry and the modification time.
    pub(crate) fn stamps(&self, expires: DateTime, now: DateTime) -> Document {
        let mut set = doc! { &self.fields.expires: expires };
        if let Some(name) = &self.fields.last_modified {
            set.insert(name, now);
        }
        set
    }

    pub(crate) fn decode(&self, document: &Document) -> Result<Decoded> {
        let fields = &self.fields;
        let data = match document.get(&fields.data) {
            Some(stored) => self.codec.decode(&fields.data, stored)?,
            None => return Err(Error::decode(&fields.data, "missing")),
        };
        let expires = optional_date(document, &fields.expires)?
            .ok_or_else(|| Error::decode(&fields.expires, "missing"))?;
        Ok(Decoded {
            data,
            expires,
            created_at: optional_named_date(document, fields.created_at.as_deref())?,
            last_modified: optional_named_date(document, fields.last_modified.as_deref())?,
            version: self.version(document)?,
        })
    }

    fn version(&self, document: &Document) -> Result<Option<i64>> {
        let Some(field) = &self.fields.version else {
            return Ok(None);
        };
        match document.get(field) {
            None | Some(Bson::Null) => Ok(None),
            Some(Bson::Int64(n)) => Ok(Some(*n)),
            Some(Bson::Int32(n)) => Ok(Some(i64::from(*n))),
            Some(other) => Err(wrong_type(field, "an integer", other)),
        }
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

fn optional_named_date(document: &Document, field: Option<&str>) -> Result<Option<DateTime>> {
    field.map_or(Ok(None), |name| optional_date(document, name))
}

fn optional_date(document: &Document, field: &str) -> Result<Option<DateTime>> {
    match document.get(field) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::DateTime(dt)) => Ok(Some(*dt)),
        Some(other) => Err(wrong_type(field, "a date", other)),
    }
}

/// `SystemTime` to a BSON date, or `now + ttl` when there is none.
pub(crate) fn expiry_or(expires: Option<SystemTime>, fallback: std::time::Duration) -> DateTime {
    DateTime::from_system_time(expires.unwrap_or_else(|| SystemTime::now() + fallback))
}
