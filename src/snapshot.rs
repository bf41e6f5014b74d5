//! What a request loaded, carried to its save.
//!
//! Saving per key — `$set`/`$unset` of only the keys this request changed —
//! is what keeps two overlapping requests from erasing each other's changes.
//! To know what changed, `save` needs the state `load` returned. The
//! frameworks hand a store nothing but the session map between the two
//! calls, so `load` adds one reserved entry ([`RESERVED_KEY`]) holding a
//! fingerprint of each key's loaded value plus the loaded timestamps, and
//! `save` reads it back. The entry is never written to the database.
//!
//! Fingerprints are a keyed SipHash of each value's structure (no serializing), keyed per
//! process: a snapshot is only ever read by the process that made it (a load
//! and its save run in one request), and a random key means nobody can craft
//! two values that look alike to us.

use std::{
    collections::{hash_map::RandomState, HashMap},
    hash::{BuildHasher, Hasher},
    io,
    sync::OnceLock,
};

use serde_json::{json, Map, Value};

use crate::codec::{escape_key, too_deep, MAX_VALUE_DEPTH};

/// Name of the entry the store adds to a loaded session map.
///
/// Applications must not use this key, nor any other key starting with it
/// (such as [`USER_KEY`](crate::USER_KEY)): they are the store's, never
/// stored among the session's values.
pub const RESERVED_KEY: &str = "__mongodb_session_store";

/// Whether a session-map key belongs to the store.
pub(crate) fn is_reserved(key: &str) -> bool {
    key.starts_with(RESERVED_KEY)
}

const FORMAT: u64 = 1;

/// The per-key fingerprints and timestamps of a session as it was loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) fingerprints: HashMap<String, u64>,
    /// Milliseconds since the epoch; `None` where the document has none.
    pub(crate) last_modified: Option<i64>,
    pub(crate) expires: i64,
    pub(crate) created_at: Option<i64>,
    /// The document's write counter, for compare-and-swap saves.
    pub(crate) version: Option<i64>,
    /// Fingerprint of the owner entry as loaded.
    pub(crate) user: Option<u64>,
    /// The session's revocation handle.
    pub(crate) handle: Option<String>,
    /// Keys stored as an older version stored them (an older encryption key
    /// or field name), with the field name they are stored under: a write
    /// of the key must remove that field, and rewriting them is worth it.
    pub(crate) stale: HashMap<String, String>,
}

impl Snapshot {
    /// Fingerprints every key of `data` as loaded.
    pub(crate) fn of(data: &Map<String, Value>) -> Self {
        Self {
            fingerprints: data
                .iter()
                .map(|(k, v)| (k.clone(), fingerprint(v)))
                .collect(),
            ..Self::default()
        }
    }

    /// The reserved entry's value.
    pub(crate) fn to_value(&self) -> Value {
        let keys: Map<String, Value> = self
            .fingerprints
            .iter()
            .map(|(k, fp)| (k.clone(), Value::from(*fp)))
            .collect();
        json!({
            "v": FORMAT, "k": keys, "e": self.expires,
            "m": self.last_modified, "c": self.created_at, "n": self.version,
            "u": self.user, "h": self.handle, "s": self.stale,
        })
    }

    /// Reads the reserved entry back. Anything malformed — a client cannot
    /// reach this map, but an application could clobber the key — yields
    /// `None`, which makes the save replace the whole session rather than
    /// trust a broken diff.
    pub(crate) fn from_value(value: &Value) -> Option<Self> {
        let obj = value.as_object()?;
        if obj.get("v")?.as_u64()? != FORMAT {
            return None;
        }
        let fingerprints = obj
            .get("k")?
            .as_object()?
            .iter()
            .map(|(k, fp)| Some((k.clone(), fp.as_u64()?)))
            .collect::<Option<_>>()?;
        Some(Self {
            fingerprints,
            expires: obj.get("e")?.as_i64()?,
            last_modified: obj.get("m").and_then(Value::as_i64),
            created_at: obj.get("c").and_then(Value::as_i64),
            version: obj.get("n").and_then(Value::as_i64),
            user: obj.get("u").and_then(Value::as_u64),
            handle: obj.get("h").and_then(Value::as_str).map(str::to_string),
            stale: match obj.get("s") {
                None => HashMap::new(),
                Some(stale) => stale
                    .as_object()?
                    .iter()
                    .map(|(k, field)| Some((k.clone(), field.as_str()?.to_string())))
                    .collect::<Option<_>>()?,
            },
        })
    }

    /// Whether `value` under `key` differs from what was loaded.
    pub(crate) fn changed(&self, key: &str, value: &Value) -> bool {
        self.fingerprints.get(key) != Some(&fingerprint(value))
    }

    /// Whether the owner entry differs from what was loaded.
    pub(crate) fn user_changed(&self, entry: Option<&Value>) -> bool {
        self.user != entry.map(fingerprint)
    }

    /// Whether `key` now holds something else than was loaded (`None`:
    /// absent), that is, whether another request changed it meanwhile.
    pub(crate) fn differs_from(&self, key: &str, current: Option<&Value>) -> bool {
        self.fingerprints.get(key).copied() != current.map(fingerprint)
    }
}

#[cfg(test)]
impl Snapshot {
    /// What a load of `data` (a JSON object) with these stamps records.
    pub(crate) fn loaded_at(data: &Value, expires: i64, last_modified: i64) -> Self {
        let mut snapshot = Self::of(data.as_object().expect("an object"));
        snapshot.expires = expires;
        snapshot.last_modified = Some(last_modified);
        snapshot
    }
}

/// Splits a framework session map into the user's entries and the snapshot.
pub(crate) fn split(data: &Map<String, Value>) -> (UserEntries<'_>, Option<Snapshot>) {
    split_any(SessionMap::Ordered(data))
}

/// [`split`] for a map held in a `HashMap` (the adapters' framework maps),
/// read where it is rather than copied.
#[cfg_attr(
    not(any(feature = "tower-sessions", feature = "actix-session")),
    allow(dead_code)
)]
pub(crate) fn split_hashed(data: &HashMap<String, Value>) -> (UserEntries<'_>, Option<Snapshot>) {
    split_any(SessionMap::Hashed(data))
}

fn split_any(data: SessionMap<'_>) -> (UserEntries<'_>, Option<Snapshot>) {
    let snapshot = data.get(RESERVED_KEY).and_then(Snapshot::from_value);
    (UserEntries(data), snapshot)
}

/// A session map as a framework holds it.
#[derive(Debug, Clone, Copy)]
enum SessionMap<'a> {
    Ordered(&'a Map<String, Value>),
    #[cfg_attr(
        not(any(feature = "tower-sessions", feature = "actix-session")),
        allow(dead_code)
    )]
    Hashed(&'a HashMap<String, Value>),
}

impl<'a> SessionMap<'a> {
    fn get(self, key: &str) -> Option<&'a Value> {
        match self {
            Self::Ordered(map) => map.get(key),
            Self::Hashed(map) => map.get(key),
        }
    }

    fn iter(self) -> Entries<'a> {
        match self {
            Self::Ordered(map) => Entries::Ordered(map.iter()),
            Self::Hashed(map) => Entries::Hashed(map.iter()),
        }
    }
}

enum Entries<'a> {
    Ordered(serde_json::map::Iter<'a>),
    Hashed(std::collections::hash_map::Iter<'a, String, Value>),
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a String, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Ordered(entries) => entries.next(),
            Self::Hashed(entries) => entries.next(),
        }
    }
}

/// A session map seen without its reserved entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UserEntries<'a>(SessionMap<'a>);

impl<'a> UserEntries<'a> {
    pub(crate) fn iter(self) -> impl Iterator<Item = (&'a String, &'a Value)> {
        self.0.iter().filter(|(k, _)| !is_reserved(k))
    }

    pub(crate) fn contains(self, key: &str) -> bool {
        !is_reserved(key) && self.0.get(key).is_some()
    }

    /// Refuses keys of the reserved namespace other than the two the store
    /// itself puts there, and an owner entry that is not one: they would
    /// otherwise be dropped silently, or forge an owner.
    pub(crate) fn check_reserved(self) -> crate::Result<()> {
        for (key, value) in self.0.iter() {
            let legitimate = match key.as_str() {
                RESERVED_KEY => true,
                crate::user::USER_KEY => crate::UserInfo::from_value(value).is_some(),
                other => !is_reserved(other),
            };
            if !legitimate {
                return Err(crate::Error::reserved_key(key));
            }
        }
        Ok(())
    }

    /// The owner entry ([`USER_KEY`](crate::USER_KEY)), if any.
    pub(crate) fn user_entry(self) -> Option<&'a Value> {
        self.0.get(crate::user::USER_KEY)
    }

    /// Refuses values nested deeper than MongoDB stores (100 levels for the
    /// whole document, of which the document, `data` and the key take 3).
    pub(crate) fn check_depth(self) -> crate::Result<()> {
        match self
            .iter()
            .find(|(_, value)| too_deep(value, MAX_VALUE_DEPTH))
        {
            Some((key, _)) => Err(crate::Error::encode(format!(
                "the value of {key:?} is nested more than {MAX_VALUE_DEPTH} levels deep, \
                 more than MongoDB stores"
            ))),
            None => Ok(()),
        }
    }

    /// Refuses entries nested too deep, or taking more than `limit` bytes
    /// as stored.
    pub(crate) fn check_size(self, limit: usize, encrypted: bool) -> crate::Result<()> {
        self.check_depth()?;
        let size = self.stored_size(encrypted);
        if size > limit {
            return Err(crate::Error::encode(format!(
                "the session's values take {size} bytes as stored, over the limit of {limit} \
                 (max_session_bytes)"
            )));
        }
        Ok(())
    }

    /// Bytes the entries take in the stored `data` document, computed
    /// without building it: BSON as the native codec writes it, or, with
    /// encryption, one ciphertext of `[key, value]` per entry.
    pub(crate) fn stored_size(self, encrypted: bool) -> usize {
        let mut size = DOCUMENT_FRAME;
        for (key, value) in self.iter() {
            size += if encrypted {
                // Type, a 22-character name and its NUL, the binary's length
                // and subtype, our header, the JSON plaintext, the GCM tag.
                let mut counter = ByteCounter(0);
                let _ = serde_json::to_writer(&mut counter, &(key, value));
                1 + 22 + 1 + 4 + 1 + 17 + counter.0 + 16
            } else {
                element_size(escape_key(key).len(), value)
            };
        }
        size
    }

    pub(crate) fn to_map(self) -> Map<String, Value> {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// A BSON document's length prefix and terminating NUL.
const DOCUMENT_FRAME: usize = 5;

/// One BSON element: its type byte, its name and NUL, its value.
fn element_size(name_len: usize, value: &Value) -> usize {
    1 + name_len + 1 + bson_value_size(value)
}

/// The size of `value` as [`value_to_bson`](crate::codec) stores it.
fn bson_value_size(value: &Value) -> usize {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(n) => match n.as_i64() {
            Some(i) if i32::try_from(i).is_ok() => 4,
            _ => 8,
        },
        Value::String(text) => 4 + text.len() + 1,
        Value::Array(items) => {
            DOCUMENT_FRAME
                + items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| element_size(digits(i), item))
                    .sum::<usize>()
        }
        Value::Object(map) => {
            DOCUMENT_FRAME
                + map
                    .iter()
                    .map(|(k, v)| element_size(escape_key(k).len(), v))
                    .sum::<usize>()
        }
    }
}

/// Decimal digits of an array index (BSON names array elements "0", "1", …).
fn digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

pub(crate) fn fingerprint(value: &Value) -> u64 {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    let mut hasher = KEYS.get_or_init(RandomState::new).build_hasher();
    feed(&mut hasher, value);
    hasher.finish()
}

/// Feeds `value`'s structure to `hasher` without serializing it: a tag per
/// node, lengths before contents (so no two values feed the same bytes),
/// numbers by kind (`1` and `1.0` differ, as in their JSON).
fn feed(hasher: &mut impl Hasher, value: &Value) {
    match value {
        Value::Null => hasher.write_u8(0),
        Value::Bool(b) => hasher.write_u8(1 + u8::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                hasher.write_u8(3);
                hasher.write_i64(i);
            } else if let Some(u) = n.as_u64() {
                hasher.write_u8(4);
                hasher.write_u64(u);
            } else {
                hasher.write_u8(5);
                hasher.write_u64(n.as_f64().unwrap_or(f64::NAN).to_bits());
            }
        }
        Value::String(text) => {
            hasher.write_u8(6);
            feed_str(hasher, text);
        }
        Value::Array(items) => {
            hasher.write_u8(7);
            hasher.write_usize(items.len());
            for item in items {
                feed(hasher, item);
            }
        }
        Value::Object(map) => {
            hasher.write_u8(8);
            hasher.write_usize(map.len());
            for (key, item) in map {
                feed_str(hasher, key);
                feed(hasher, item);
            }
        }
    }
}

fn feed_str(hasher: &mut impl Hasher, text: &str) {
    hasher.write_usize(text.len());
    hasher.write(text.as_bytes());
}

struct ByteCounter(usize);

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::doc;

    use super::*;

    #[test]
    fn the_stored_size_is_the_size_of_the_bson_written() {
        let data = json!({
            "n": 1, "big": 5_000_000_000_i64, "f": 1.5, "s": "text", "t": true, "z": null,
            "a.b": {"c$": [1, "x", [2.5], {"d": null}]},
            "long": (0..120).collect::<Vec<_>>(),
        });
        let map = data.as_object().unwrap();
        let (entries, _) = split(map);
        let document = crate::codec::object_to_document(map);
        let written = mongodb::bson::to_vec(&document).unwrap().len();
        assert_eq!(entries.stored_size(false), written);
    }

    #[test]
    fn fingerprints_tell_apart_what_json_tells_apart() {
        let distinct = [
            json!(null),
            json!(false),
            json!(true),
            json!(0),
            json!(1),
            json!(1.0),
            json!(-1),
            json!(u64::MAX),
            json!(""),
            json!("1"),
            json!([]),
            json!({}),
            json!(["a", "b"]),
            json!(["ab"]),
            json!({"a": "b"}),
            json!({"ab": ""}),
            json!([[]]),
            json!([{}]),
            json!({"a": 1, "b": 2}),
            json!({"a": 1}),
        ];
        for (i, a) in distinct.iter().enumerate() {
            assert_eq!(fingerprint(a), fingerprint(&a.clone()), "{a} is stable");
            for b in &distinct[i + 1..] {
                assert_ne!(fingerprint(a), fingerprint(b), "{a} and {b}");
            }
        }
    }

    #[test]
    fn snapshot_survives_the_session_map() {
        let data = json!({"a": 1, "b": {"c": [true]}});
        let mut snapshot = Snapshot::of(data.as_object().unwrap());
        snapshot.expires = 10;
        snapshot.last_modified = Some(5);
        snapshot.version = Some(3);
        snapshot.stale.insert("a".into(), "old-name".into());
        let back = Snapshot::from_value(&snapshot.to_value()).unwrap();
        assert_eq!(back, snapshot);
        assert!(!back.changed("a", &json!(1)));
        assert!(back.changed("a", &json!(2)));
        assert!(back.changed("new", &json!(1)));
        assert!(!back.differs_from("a", Some(&json!(1))));
        assert!(back.differs_from("a", None));
        assert!(!back.differs_from("new", None));
    }

    #[test]
    fn a_clobbered_entry_is_ignored() {
        for bad in [
            json!("x"),
            json!({"v": 99}),
            json!({"v": 1, "k": {"a": "x"}, "e": 1}),
        ] {
            assert_eq!(Snapshot::from_value(&bad), None, "{bad}");
        }
    }

    #[test]
    fn user_entries_hide_the_reserved_key() {
        let map = json!({"a": 1, RESERVED_KEY: {}, crate::user::USER_KEY: {}});
        let (entries, _) = split(map.as_object().unwrap());
        assert_eq!(entries.iter().count(), 1);
        assert!(!entries.contains(RESERVED_KEY));
        let stored = mongodb::bson::to_vec(&doc! {"a": 1}).unwrap().len();
        assert_eq!(entries.stored_size(false), stored);
    }
}
