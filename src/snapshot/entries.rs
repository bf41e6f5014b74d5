//! A framework's session map as a save reads it: the user's entries
//! (the store's own reserved entries hidden), read where the framework
//! holds them, and what they would take as stored.

use std::{collections::HashMap, io};

use serde_json::{Map, Value};

use super::{is_reserved, Snapshot, TRACKING_KEY};
use crate::codec::{escape_key, too_deep, MAX_VALUE_DEPTH};

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
pub(crate) fn split_map(data: &HashMap<String, Value>) -> (UserEntries<'_>, Option<Snapshot>) {
    split_any(SessionMap::Hashed(data))
}

fn split_any(data: SessionMap<'_>) -> (UserEntries<'_>, Option<Snapshot>) {
    let snapshot = data.get(TRACKING_KEY).and_then(Snapshot::from_value);
    let entries = UserEntries {
        map: data,
        kept: None,
    };
    (entries, snapshot)
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
pub(crate) struct UserEntries<'a> {
    map: SessionMap<'a>,
    kept: Option<Kept<'a>>,
}

/// The entries of a partial view whose values were not parsed because
/// their text is the one loaded (actix-session, see `texts.rs`).
#[derive(Debug, Clone, Copy)]
struct Kept<'a> {
    /// Every key the framework's map holds.
    present: &'a HashMap<String, String>,
    /// The stored size of the values left out.
    size: usize,
}

impl<'a> UserEntries<'a> {
    /// A partial view: `changed` holds the values parsed (the reserved
    /// entries and those whose text changed), `present` every key the
    /// framework holds, `kept_size` the stored size of the others, which
    /// are as loaded. Only a per-key save may read it: it never needs
    /// values that did not change (`to_map` gives the parsed ones only).
    #[cfg_attr(not(feature = "actix-session"), allow(dead_code))]
    pub(crate) fn partial(
        changed: &'a HashMap<String, Value>,
        present: &'a HashMap<String, String>,
        kept_size: usize,
    ) -> Self {
        Self {
            map: SessionMap::Hashed(changed),
            kept: Some(Kept {
                present,
                size: kept_size,
            }),
        }
    }

    /// The entries whose values the view holds (all of them but in a
    /// partial view).
    pub(crate) fn iter(self) -> impl Iterator<Item = (&'a String, &'a Value)> {
        self.map.iter().filter(|(k, _)| !is_reserved(k))
    }

    pub(crate) fn contains(self, key: &str) -> bool {
        !is_reserved(key)
            && (self.map.get(key).is_some()
                || self.kept.is_some_and(|kept| kept.present.contains_key(key)))
    }

    /// Refuses keys of the reserved namespace other than the ones the store
    /// itself puts there, and an owner or lifetime entry that is not one: they would
    /// otherwise be dropped silently, or forge an owner.
    pub(crate) fn check_reserved(self) -> crate::Result<()> {
        for (key, value) in self.map.iter() {
            let legitimate = match key.as_str() {
                TRACKING_KEY => true,
                crate::user::USER_KEY => crate::UserInfo::from_value(value).is_some(),
                crate::session::LIFETIME_KEY => crate::SessionLifetime::from_value(value).is_some(),
                other => !is_reserved(other),
            };
            if !legitimate {
                return Err(crate::Error::reserved_key(key));
            }
        }
        Ok(())
    }

    /// The owner entry ([`USER_KEY`](crate::session::USER_KEY)), if any.
    pub(crate) fn user_entry(self) -> Option<&'a Value> {
        self.map.get(crate::user::USER_KEY)
    }

    /// The session's own lifetime ([`LIFETIME_KEY`](crate::session::LIFETIME_KEY)),
    /// if the map gives it one.
    pub(crate) fn lifetime(self) -> Option<crate::SessionLifetime> {
        self.map
            .get(crate::session::LIFETIME_KEY)
            .and_then(crate::SessionLifetime::from_value)
            .filter(|lifetime| !lifetime.is_empty())
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
        let kept = self.kept.map_or(0, |kept| kept.size);
        self.iter()
            .map(|(key, value)| entry_size(key, value, encrypted))
            .sum::<usize>()
            + DOCUMENT_FRAME
            + kept
    }

    pub(crate) fn to_map(self) -> Map<String, Value> {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Bytes one entry takes in the stored `data` document: BSON as the native
/// codec writes it, or, with encryption, one ciphertext of `[key, value]`.
pub(crate) fn entry_size(key: &str, value: &Value, encrypted: bool) -> usize {
    if encrypted {
        // Type, a 22-character name and its NUL, the binary's length and
        // subtype, our header, the JSON plaintext, the GCM tag.
        let mut counter = ByteCounter(0);
        let _ = serde_json::to_writer(&mut counter, &(key, value));
        1 + 22 + 1 + 4 + 1 + 17 + counter.0 + 16
    } else {
        element_size(escape_key(key).len(), value)
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
