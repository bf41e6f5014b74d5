//! Session values as native BSON, so `data` is a queryable sub-document.
//!
//! Values arrive from the frameworks as JSON. Integers become `Int32` when
//! they fit and `Int64` otherwise (as Node's driver writes them), floats
//! become `Double`. Reading back is exact for everything JSON can hold, with
//! one documented exception: an unsigned integer above `i64::MAX` is stored
//! as a `Double`. Values another writer put there (dates, object ids, …) are
//! read the way `JSON.stringify` would show them: dates as ISO-8601 strings,
//! object ids as hex, anything else as relaxed Extended JSON.

use mongodb::bson::{Bson, Document};
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

/// Converts a stored value back; `path` names it in errors (`data.cart`).
pub(crate) fn bson_to_value(bson: &Bson, path: &dyn Fn() -> String) -> Result<Value> {
    Ok(match bson {
        Bson::Null | Bson::Undefined => Value::Null,
        Bson::Boolean(b) => Value::Bool(*b),
        Bson::Int32(i) => Value::from(*i),
        Bson::Int64(i) => Value::from(*i),
        Bson::Double(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Bson::String(s) => Value::String(s.clone()),
        Bson::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| bson_to_value(item, &|| format!("{}.{i}", path())))
            .collect::<Result<Vec<_>>>()?
            .into(),
        Bson::Document(doc) => Value::Object(document_to_object(doc, path)?),
        Bson::DateTime(dt) => Value::String(iso_8601(*dt)),
        Bson::ObjectId(oid) => Value::String(oid.to_hex()),
        other => other.clone().into_relaxed_extjson(),
    })
}

/// Converts a stored document back to a JSON object, unescaping field names.
pub(crate) fn document_to_object(
    doc: &Document,
    path: &dyn Fn() -> String,
) -> Result<Map<String, Value>> {
    let mut map = Map::new();
    for (field, bson) in doc {
        let key = unescape_key(field).ok_or_else(|| {
            Error::decode(
                format!("{}.{field}", path()),
                "field name is not an escaped session key",
            )
        })?;
        let value = bson_to_value(bson, &|| format!("{}.{field}", path()))?;
        map.insert(key.into_owned(), value);
    }
    Ok(map)
}

/// Converts a document written by another program, keys as they are.
pub(crate) fn verbatim_object(
    doc: &Document,
    path: &dyn Fn() -> String,
) -> Result<Map<String, Value>> {
    doc.iter()
        .map(|(field, bson)| {
            let value = bson_to_value(bson, &|| format!("{}.{field}", path()))?;
            Ok((field.clone(), value))
        })
        .collect()
}

/// Formats like JavaScript's `Date.prototype.toJSON`.
pub(crate) fn iso_8601(dt: mongodb::bson::DateTime) -> String {
    dt.try_to_rfc3339_string()
        .unwrap_or_else(|_| dt.timestamp_millis().to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn round_trip(value: &Value) -> Value {
        bson_to_value(&value_to_bson(value), &|| "data.x".into()).unwrap()
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
        let v = bson_to_value(&Bson::DateTime(dt), &|| "data.d".into()).unwrap();
        assert_eq!(v, json!("2021-08-08T06:00:39.119Z"));
    }

    #[test]
    fn unescapable_field_names_name_the_field() {
        let doc = mongodb::bson::doc! { "ok": 1, "bad.name": 2 };
        let err = document_to_object(&doc, &|| "data".into()).unwrap_err();
        assert_eq!(err.decode_field(), Some("data.bad.name"));
    }
}
