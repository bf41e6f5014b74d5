//! Session values as native BSON, so `data` is a queryable sub-document.
//!
//! Values arrive from the frameworks as JSON. Integers become `Int32` when
//! they fit and `Int64` otherwise (as Node's driver writes them), floats
//! become `Double`. Reading back is exact for everything JSON can hold, with
//! one documented exception: an unsigned integer above `i64::MAX` is stored
//! as a `Double`. Values another writer put there (dates, object ids, …) are
//! read the way `JSON.stringify` would show them: dates as ISO-8601 strings,
//! object ids as hex, anything else as relaxed Extended JSON.

use std::borrow::Cow;

use mongodb::bson::{Bson, Document, RawBsonRef, RawDocument};
use serde_json::{Map, Number, Value};

use super::escape::{escape_key, unescape_key};
use crate::error::{Error, Result};

/// Converts one session value to BSON, escaping every field name in it.
pub(crate) fn value_to_bson(value: &Value) -> Bson {
    match value {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => number_to_bson(n),
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(items) => Bson::Array(items.iter().map(value_to_bson).collect()),
        Value::Object(map) => Bson::Document(object_to_document(map)),
    }
}

fn number_to_bson(n: &Number) -> Bson {
    if let Some(i) = n.as_i64() {
        return i32::try_from(i).map_or(Bson::Int64(i), Bson::Int32);
    }
    // Only a u64 above i64::MAX or a float is left; both fit a double.
    Bson::Double(n.as_f64().unwrap_or(f64::NAN))
}

/// Converts a JSON object to a document with escaped field names.
pub(crate) fn object_to_document(map: &Map<String, Value>) -> Document {
    map.iter()
        .map(|(k, v)| (escape_key(k).into_owned(), value_to_bson(v)))
        .collect()
}

/// Converts a stored value back, straight from the bytes the server sent;
/// `path` names it in errors (`data.cart`).
pub(crate) fn raw_to_value(bson: RawBsonRef<'_>, path: &dyn Fn() -> String) -> Result<Value> {
    Ok(match bson {
        RawBsonRef::Null | RawBsonRef::Undefined => Value::Null,
        RawBsonRef::Boolean(b) => Value::Bool(b),
        RawBsonRef::Int32(i) => Value::from(i),
        RawBsonRef::Int64(i) => Value::from(i),
        RawBsonRef::Double(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        RawBsonRef::String(s) => Value::String(s.to_owned()),
        RawBsonRef::Array(items) => {
            // Counted first: walking the elements' headers is cheaper than
            // growing the vector (and, for objects, the map) step by step.
            let mut values = Vec::with_capacity(items.into_iter().count());
            for (i, item) in items.into_iter().enumerate() {
                let item = item.map_err(|e| malformed(&format!("{}.{i}", path()), &e))?;
                values.push(raw_to_value(item, &|| format!("{}.{i}", path()))?);
            }
            Value::Array(values)
        }
        RawBsonRef::Document(doc) => Value::Object(raw_document_to_object(doc, path)?),
        RawBsonRef::DateTime(dt) => Value::String(iso_8601(dt)),
        RawBsonRef::ObjectId(oid) => Value::String(oid.to_hex()),
        other => Bson::try_from(other.to_raw_bson())
            .map_err(|e| malformed(&path(), &e))?
            .into_relaxed_extjson(),
    })
}

/// Converts a stored document back to a JSON object, unescaping field names.
pub(crate) fn raw_document_to_object(
    doc: &RawDocument,
    path: &dyn Fn() -> String,
) -> Result<Map<String, Value>> {
    convert_fields(doc, path, |field| {
        unescape_key(field).map(Cow::into_owned).ok_or_else(|| {
            Error::decode(
                format!("{}.{field}", path()),
                "field name is not an escaped session key",
            )
        })
    })
}

/// Converts a document written by another program, keys as they are.
pub(crate) fn raw_verbatim_object(
    doc: &RawDocument,
    path: &dyn Fn() -> String,
) -> Result<Map<String, Value>> {
    convert_fields(doc, path, |field| Ok(field.to_owned()))
}

fn convert_fields(
    doc: &RawDocument,
    path: &dyn Fn() -> String,
    key: impl Fn(&str) -> Result<String>,
) -> Result<Map<String, Value>> {
    let mut map = Map::with_capacity(doc.into_iter().count());
    for element in doc {
        let (field, bson) = element.map_err(|e| malformed(&path(), &e))?;
        let value = raw_to_value(bson, &|| format!("{}.{field}", path()))?;
        map.insert(key(field)?, value);
    }
    Ok(map)
}

/// The error for bytes that are not BSON (a truncated or corrupt value).
pub(crate) fn malformed(path: &str, error: &dyn std::fmt::Display) -> Error {
    Error::decode(path, format!("malformed BSON: {error}"))
}

/// Formats like JavaScript's `Date.prototype.toJSON`.
pub(crate) fn iso_8601(dt: mongodb::bson::DateTime) -> String {
    dt.try_to_rfc3339_string()
        .unwrap_or_else(|_| dt.timestamp_millis().to_string())
}

#[cfg(test)]
mod tests {
    use mongodb::bson::doc;
    use serde_json::json;

    use super::*;

    fn round_trip(value: &Value) -> Value {
        let stored =
            mongodb::bson::RawDocumentBuf::from_document(&doc! {"x": value_to_bson(value)})
                .unwrap();
        raw_to_value(stored.get("x").unwrap().unwrap(), &|| "data.x".into()).unwrap()
    }

    #[test]
    fn json_values_round_trip_exactly() {
        let value = json!({
            "int": 7, "big": 1_i64 << 40, "neg": -3, "float": 1.5, "whole_float": 2.0,
            "s": "text", "b": true, "n": null, "arr": [1, "two", {"three": 3}],
            "nested": {"a.b": {"$c": [""]}, "": 0, "%": 1}
        });
        assert_eq!(round_trip(&value), value);
    }

    #[test]
    fn small_integers_are_int32_like_nodes_driver() {
        assert_eq!(value_to_bson(&json!(5)), Bson::Int32(5));
        assert_eq!(value_to_bson(&json!(1_i64 << 40)), Bson::Int64(1 << 40));
    }

    #[test]
    fn foreign_types_read_as_json_stringify_would() {
        let dt = mongodb::bson::DateTime::from_millis(1_628_402_439_119);
        let v = raw_to_value(RawBsonRef::DateTime(dt), &|| "data.d".into()).unwrap();
        assert_eq!(v, json!("2021-08-08T06:00:39.119Z"));
    }

    #[test]
    fn unescapable_field_names_name_the_field() {
        let doc = mongodb::bson::rawdoc! { "ok": 1, "bad.name": 2 };
        let err = raw_document_to_object(&doc, &|| "data".into()).unwrap_err();
        assert_eq!(err.decode_field(), Some("data.bad.name"));
    }
}
