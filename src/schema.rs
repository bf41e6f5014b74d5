//! The stored document.
//!
//! ```text
//! { _id:          "<session id>",          // the cookie's id
//!   data:         { <key>: <value>, … },   // the session's values as BSON
//!   expires:      ISODate,                 // the TTL index's field
//!   createdAt:    ISODate,
//!   lastModified: ISODate }                // last write or touch
//! }
//! ```
//!
//! Keys inside `data` are escaped (see [`crate::codec`]) only where they
//! contain `.`, `$`, `%` or NUL, or are empty.

/// Names of the document's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fields {
    pub(crate) id: String,
    pub(crate) data: String,
    pub(crate) expires: String,
    pub(crate) created_at: String,
    pub(crate) last_modified: String,
}

impl Default for Fields {
    fn default() -> Self {
        Self {
            id: "_id".into(),
            data: "data".into(),
            expires: "expires".into(),
            created_at: "createdAt".into(),
            last_modified: "lastModified".into(),
        }
    }
}

impl Fields {
    /// The dotted path of one session key inside `data`.
    pub(crate) fn data_path(&self, key: &str) -> String {
        format!("{}.{}", self.data, crate::codec::escape_key(key))
    }
}
