//! How session values become the stored `data` field and back.

mod escape;
mod native;

use std::{fmt, sync::Arc};

use mongodb::bson::{spec::ElementType, Bson, RawBsonRef};
use serde_json::{Map, Value};

pub(crate) use escape::escape_key;
pub(crate) use native::{malformed, object_to_document, value_to_bson};

use crate::error::{Error, Result};

/// A user-supplied way to store session values (connect-mongo's
/// `serialize`/`unserialize`).
///
/// The stored value is opaque to the store, so saves rewrite it whole; only
/// [`Codec::Bson`] allows the per-key writes that merge concurrent changes.
pub trait SessionCodec: Send + Sync + 'static {
    /// Turns the session's values into what is stored in `data`.
    ///
    /// # Errors
    ///
    /// Any error; it surfaces as an encode error.
    fn encode(&self, values: &Map<String, Value>) -> Result<Bson, BoxError>;

    /// Turns a stored `data` value back into the session's values.
    ///
    /// # Errors
    ///
    /// Any error; it surfaces as a decode error naming the `data` field.
    fn decode(&self, stored: &Bson) -> Result<Map<String, Value>, BoxError>;
}

/// The error a [`SessionCodec`] returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The deepest nesting of arrays and objects a value may have.
pub(crate) const MAX_VALUE_DEPTH: usize = 96;

/// Whether `value` nests deeper than `allowed` levels; never descends
/// further than that, however deep the value.
pub(crate) fn too_deep(value: &Value, allowed: usize) -> bool {
    match value {
        Value::Array(items) => allowed == 0 || items.iter().any(|v| too_deep(v, allowed - 1)),
        Value::Object(map) => allowed == 0 || map.values().any(|v| too_deep(v, allowed - 1)),
        _ => false,
    }
}

/// How the `data` field is stored.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Codec {
    /// A BSON sub-document: queryable, and saved per key so concurrent
    /// changes to different keys merge (default). connect-mongo's
    /// `stringify: false`, connect-mongodb-session's layout.
    #[default]
    Bson,
    /// A JSON string, as connect-mongo stores it by default
    /// (`stringify: true`).
    JsonString,
    /// A BSON object with keys exactly as they are, written whole: the
    /// layout Node's stores write with `stringify: false` (connect-mongo) and
    /// always (connect-mongodb-session). Set by `StoreBuilder::express_layout`
    /// (feature `express`).
    NodeObject,
    /// Your own [`SessionCodec`].
    Custom(Arc<dyn SessionCodec>),
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bson => "Bson",
            Self::JsonString => "JsonString",
            Self::NodeObject => "NodeObject",
            Self::Custom(_) => "Custom(..)",
        })
    }
}

impl Codec {
    /// Whether single keys can be updated in place.
    pub(crate) fn per_key(&self) -> bool {
        matches!(self, Self::Bson)
    }

    pub(crate) fn encode(&self, values: &Map<String, Value>) -> Result<Bson> {
        match self {
            Self::Bson => Ok(Bson::Document(object_to_document(values))),
            Self::JsonString => serde_json::to_string(values)
                .map(Bson::String)
                .map_err(|e| Error::encode(e.to_string())),
            Self::NodeObject => {
                mongodb::bson::to_bson(values).map_err(|e| Error::encode(e.to_string()))
            }
            Self::Custom(codec) => codec
                .encode(values)
                .map_err(|e| Error::encode(e.to_string())),
        }
    }

    /// Decodes the stored `data` value, straight from the bytes the server
    /// sent (only a custom codec gets it as a [`Bson`]).
    pub(crate) fn decode(&self, field: &str, stored: RawBsonRef<'_>) -> Result<Map<String, Value>> {
        let path = || field.to_string();
        match (self, stored) {
            (Self::Bson, RawBsonRef::Document(doc)) => native::raw_document_to_object(doc, &path),
            (Self::Bson, other) => Err(wrong_type(field, "a document", other.element_type())),
            (Self::JsonString, RawBsonRef::String(text)) => serde_json::from_str(text)
                .map_err(|e| Error::decode(field, format!("not a JSON object: {e}"))),
            (Self::JsonString, other) => {
                Err(wrong_type(field, "a JSON string", other.element_type()))
            }
            (Self::NodeObject, RawBsonRef::Document(doc)) => {
                native::raw_verbatim_object(doc, &path)
            }
            (Self::NodeObject, other) => Err(wrong_type(field, "a document", other.element_type())),
            (Self::Custom(codec), stored) => {
                let stored =
                    Bson::try_from(stored.to_raw_bson()).map_err(|e| malformed(field, &e))?;
                codec
                    .decode(&stored)
                    .map_err(|e| Error::decode(field, e.to_string()))
            }
        }
    }
}

pub(crate) fn wrong_type(field: &str, expected: &str, found: ElementType) -> Error {
    Error::decode(field, format!("expected {expected}, found {found:?}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_string_codec_matches_connect_mongo() {
        let values = json!({"cookie": {"path": "/"}, "n": 1})
            .as_object()
            .unwrap()
            .clone();
        let stored = Codec::JsonString.encode(&values).unwrap();
        let text = r#"{"cookie":{"path":"/"},"n":1}"#;
        assert_eq!(stored, Bson::String(text.into()));
        assert_eq!(
            Codec::JsonString
                .decode("session", RawBsonRef::String(text))
                .unwrap(),
            values
        );
        let err = Codec::JsonString
            .decode("session", RawBsonRef::Int32(1))
            .unwrap_err();
        assert_eq!(err.decode_field(), Some("session"));
    }
}
