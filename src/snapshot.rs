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
//! Fingerprints are a keyed SipHash of each value's JSON encoding, keyed per
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
            "u": self.user, "h": self.handle,
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

/// Splits a framework session map into the user's entries and the snapshot.
pub(crate) fn split(data: &Map<String, Value>) -> (UserEntries<'_>, Option<Snapshot>) {
    let snapshot = data.get(RESERVED_KEY).and_then(Snapshot::from_value);
    (UserEntries(data), snapshot)
}

/// A session map seen without its reserved entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UserEntries<'a>(&'a Map<String, Value>);

impl<'a> UserEntries<'a> {
    pub(crate) fn iter(self) -> impl Iterator<Item = (&'a String, &'a Value)> {
        self.0.iter().filter(|(k, _)| !is_reserved(k))
    }

    pub(crate) fn contains(self, key: &str) -> bool {
        !is_reserved(key) && self.0.contains_key(key)
    }

    /// The owner entry ([`USER_KEY`](crate::USER_KEY)), if any.
    pub(crate) fn user_entry(self) -> Option<&'a Value> {
        self.0.get(crate::user::USER_KEY)
    }

    /// Bytes the entries take as a JSON object, without building it.
    pub(crate) fn json_size(self) -> usize {
        let mut counter = ByteCounter(0);
        let mut entries = 0;
        for (key, value) in self.iter() {
            // Writing to a counter cannot fail.
            let _ = serde_json::to_writer(&mut counter, key);
            let _ = serde_json::to_writer(&mut counter, value);
            entries += 1;
        }
        // Braces, a colon per entry, a comma between entries.
        counter.0 + 2 + entries + entries.saturating_sub(1)
    }

    pub(crate) fn to_map(self) -> Map<String, Value> {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

pub(crate) fn fingerprint(value: &Value) -> u64 {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    let mut writer = HashWriter(KEYS.get_or_init(RandomState::new).build_hasher());
    // Writing into a hasher cannot fail, and a JSON value always serializes.
    let _ = serde_json::to_writer(&mut writer, value);
    writer.0.finish()
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

struct HashWriter<H>(H);

impl<H: Hasher> io::Write for HashWriter<H> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_survives_the_session_map() {
        let data = json!({"a": 1, "b": {"c": [true]}});
        let mut snapshot = Snapshot::of(data.as_object().unwrap());
        snapshot.expires = 10;
        snapshot.last_modified = Some(5);
        snapshot.version = Some(3);
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
        assert_eq!(entries.json_size(), r#"{"a":1}"#.len());
    }
}
