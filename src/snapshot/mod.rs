//! What a request loaded, carried to its save.
//!
//! Saving per key — `$set`/`$unset` of only the keys this request changed —
//! is what keeps two overlapping requests from erasing each other's changes.
//! To know what changed, `save` needs the state `load` returned. The
//! frameworks hand a store nothing but the session map between the two
//! calls, so `load` adds one reserved entry ([`TRACKING_KEY`]) holding a
//! fingerprint of each key's loaded value plus the loaded timestamps, and
//! `save` reads it back. The entry is never written to the database; it
//! is one string (see `entry.rs` for its grammar and why).
//!
//! Fingerprints are a keyed SipHash of each value's structure (no serializing), keyed per
//! process: a snapshot is only ever read by the process that made it (a load
//! and its save run in one request), and a random key means nobody can craft
//! two values that look alike to us.

use std::{
    collections::{hash_map::RandomState, HashMap},
    hash::{BuildHasher, Hasher},
    sync::OnceLock,
};

use serde_json::{Map, Value};

use crate::lifetime::SessionLifetime;

mod entries;
mod entry;
mod prints;
mod texts;

#[cfg_attr(not(feature = "actix-session"), allow(unused_imports))]
pub(crate) use entries::entry_size;
pub(crate) use entries::{split, split_map, UserEntries};
use entry::{push_name, read_head, take_name, write_head, Head};
pub(crate) use prints::Prints;
pub(crate) use texts::Texts;

/// The key of the *tracking entry*: the entry a loaded session map carries
/// from [`load`](crate::MongoSessionStore::load) to its save, so the save
/// writes only what changed. It is never stored. The adapters hide it
/// (`tower::stored_keys`, `actix::entries`).
pub const TRACKING_KEY: &str = RESERVED_PREFIX;

/// The store's namespace in a session map: the tracking entry, the owner
/// entry ([`USER_KEY`](crate::session::USER_KEY)) and the lifetime entry
/// ([`LIFETIME_KEY`](crate::session::LIFETIME_KEY)) start with it, and an
/// application's own keys must not (a save refuses them with
/// [`Error::is_reserved_key`](crate::Error::is_reserved_key)).
pub const RESERVED_PREFIX: &str = "__mongodb_session_store";

/// Whether `key` is in the store's namespace ([`RESERVED_PREFIX`]).
pub fn is_reserved(key: &str) -> bool {
    key.starts_with(RESERVED_PREFIX)
}

/// The per-key fingerprints and timestamps of a session as it was loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) fingerprints: Prints,
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
    /// The session's lineage (see `endings`), which a regeneration of it
    /// carries on.
    pub(crate) lineage: Option<String>,
    /// The session's own lifetime as loaded.
    pub(crate) lifetime: Option<SessionLifetime>,
    /// The document's format as loaded (1 when absent).
    pub(crate) format: i64,
    /// Keys stored as an older version stored them (an older encryption key
    /// or field name), with the field name they are stored under: a write
    /// of the key must remove that field, and rewriting them is worth it.
    pub(crate) stale: HashMap<String, String>,
    /// actix-session's texts of the values as loaded (see `texts.rs`).
    pub(crate) texts: Option<Texts>,
}

impl Snapshot {
    /// Fingerprints every key of `data` as loaded.
    pub(crate) fn of(data: &Map<String, Value>) -> Self {
        Self {
            fingerprints: Prints::of(data.iter()),
            format: 1,
            ..Self::default()
        }
    }

    /// The reserved entry's value: one string, built with one allocation.
    pub(crate) fn to_value(&self) -> Value {
        let stale: usize = self.stale.iter().map(|(k, f)| k.len() + f.len() + 8).sum();
        let texts = [&self.handle, &self.lineage].map(|t| t.as_ref().map_or(0, String::len));
        let mut entry = String::with_capacity(
            160 + texts[0] + texts[1] + self.fingerprints.text().len() + stale,
        );
        write_head(
            &mut entry,
            &Head {
                expires: self.expires,
                last_modified: self.last_modified,
                created_at: self.created_at,
                version: self.version,
                format: self.format,
                lifetime: self.lifetime,
                user: self.user,
                handle: self.handle.as_deref(),
                lineage: self.lineage.as_deref(),
            },
        );
        entry.push_str(self.fingerprints.text());
        if !self.stale.is_empty() {
            entry.push('/');
            for (key, field) in &self.stale {
                push_name(&mut entry, key);
                push_name(&mut entry, field);
            }
        }
        if let Some(texts) = &self.texts {
            entry.push('~');
            entry.push_str(texts.text());
        }
        Value::String(entry)
    }

    /// Reads the reserved entry back. Anything malformed — a client cannot
    /// reach this map, but an application could clobber the key — yields
    /// `None`, which makes the save replace the whole session rather than
    /// trust a broken diff.
    pub(crate) fn from_value(value: &Value) -> Option<Self> {
        let (head, rest) = read_head(value.as_str()?)?;
        let (fingerprints, rest) = Prints::parse(rest)?;
        let mut stale = HashMap::new();
        let mut rest = rest;
        if let Some(mut section) = rest.strip_prefix('/') {
            // A stale record starts with a length, so a `~` there ends them.
            while !section.is_empty() && !section.starts_with('~') {
                let (key, after) = take_name(section)?;
                let (field, after) = take_name(after)?;
                stale.insert(key.to_string(), field.to_string());
                section = after;
            }
            rest = section;
        }
        let texts = match rest.strip_prefix('~') {
            Some(section) => Some(Texts::parse(section)?),
            None if rest.is_empty() => None,
            None => return None,
        };
        Some(Self {
            fingerprints,
            expires: head.expires,
            last_modified: head.last_modified,
            created_at: head.created_at,
            version: head.version,
            user: head.user,
            handle: head.handle.map(str::to_string),
            lineage: head.lineage.map(str::to_string),
            lifetime: head.lifetime,
            format: head.format,
            stale,
            texts,
        })
    }

    /// Whether `value` under `key` differs from what was loaded.
    pub(crate) fn changed(&self, key: &str, value: &Value) -> bool {
        self.fingerprints.get(key) != Some(fingerprint(value))
    }

    /// Whether the owner entry differs from what was loaded.
    pub(crate) fn user_changed(&self, entry: Option<&Value>) -> bool {
        self.user != entry.map(fingerprint)
    }

    /// Whether `key` now holds something else than was loaded (`None`:
    /// absent), that is, whether another request changed it meanwhile.
    pub(crate) fn differs_from(&self, key: &str, current: Option<&Value>) -> bool {
        self.fingerprints.get(key) != current.map(fingerprint)
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

#[cfg(test)]
mod tests {
    use mongodb::bson::doc;
    use serde_json::json;

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
        let data = json!({"a": 1, "b": {"c": [true]}, "b/c": 2});
        let mut snapshot = Snapshot::of(data.as_object().unwrap());
        snapshot.expires = 10;
        snapshot.last_modified = Some(5);
        snapshot.version = Some(3);
        snapshot.handle = Some("h".into());
        snapshot.lineage = Some("l".into());
        snapshot.lifetime =
            Some(SessionLifetime::new().idle_timeout(std::time::Duration::from_secs(9)));
        snapshot.format = 2;
        snapshot.stale.insert("a".into(), "old-name".into());
        snapshot.stale.insert("b/c".into(), "1:x/".into());
        let mut texts = String::new();
        Texts::push(&mut texts, "a~", "1", 7);
        snapshot.texts = Texts::parse(&texts);
        let back = Snapshot::from_value(&snapshot.to_value()).unwrap();
        assert_eq!(back, snapshot);
        snapshot.stale.clear();
        let back = Snapshot::from_value(&snapshot.to_value()).unwrap();
        assert_eq!(back, snapshot);
        snapshot.texts = None;
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
            json!({"v": 1, "k": {"a": 1}, "e": 1}),
            json!("mss2;e1;|0000000000000001"),
            json!("mss2;e1;|/1:a"),
            json!("mss2;e1;|x"),
        ] {
            assert_eq!(Snapshot::from_value(&bad), None, "{bad}");
        }
    }

    #[test]
    fn user_entries_hide_the_reserved_key() {
        let map = json!({"a": 1, TRACKING_KEY: {}, crate::user::USER_KEY: {}});
        let (entries, _) = split(map.as_object().unwrap());
        assert_eq!(entries.iter().count(), 1);
        assert!(!entries.contains(TRACKING_KEY));
        let stored = mongodb::bson::to_vec(&doc! {"a": 1}).unwrap().len();
        assert_eq!(entries.stored_size(false), stored);
    }
}
