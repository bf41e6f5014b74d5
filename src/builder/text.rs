//! The store's options by name, set from text: the one definition the
//! operations CLI derives its flags and environment variables from, and
//! that configuration read from files or the environment can use. Each
//! entry names the [`StoreBuilder`] method it calls, which validates as
//! always (at `build`).

use std::time::Duration;

use super::StoreBuilder;
use crate::{
    codec::Codec,
    crypto::KeyRing,
    error::{Error, Result},
};

/// One store option as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOption {
    /// Its name, as a CLI flag without the dashes.
    pub name: &'static str,
    /// What its value looks like (`DURATION`, `NAME`, …); `None` for a
    /// flag, which takes no value.
    pub value: Option<&'static str>,
    /// One line on what it sets, naming the builder method.
    pub help: &'static str,
    /// The environment variable the CLI also reads it from.
    pub env: Option<&'static str>,
    /// Whether the value is a secret (never shown, not even its
    /// environment variable's value).
    pub secret: bool,
}

macro_rules! store_options {
    ($(
        $name:literal, $value:expr, $env:expr, $secret:expr, $help:literal =>
            |$builder:ident, $text:ident| $apply:expr;
    )*) => {
        /// Every option [`StoreBuilder::set`] takes, in the order the CLI
        /// lists them.
        pub const STORE_OPTIONS: &[StoreOption] = &[$(
            StoreOption { name: $name, value: $value, help: $help, env: $env, secret: $secret },
        )*];

        impl StoreBuilder {
            /// Sets the option `name` (one of [`STORE_OPTIONS`]) from
            /// `value` as text: durations as `500ms`, `10s`, `2m`, `12h`,
            /// `7d` (or a bare number of seconds), booleans as `true` or
            /// `false`, a key ring as `id:base64` pairs separated by commas,
            /// the primary first.
            ///
            /// # Errors
            ///
            /// [`Error::is_config`]: an unknown option or a value that does
            /// not parse (the message names it).
            pub fn set(self, name: &str, value: &str) -> Result<Self> {
                match name {
                    $($name => {
                        let ($builder, $text) = (self, value);
                        $apply
                    })*
                    other => Err(Error::config(format!("unknown store option `{other}`"))),
                }
            }
        }
    };
}

store_options! {
    "database", Some("NAME"), None, false,
        "The database, if not in the URI (`database`)" =>
        |b, v| Ok(b.database(v));
    "collection", Some("NAME"), None, false,
        "The sessions collection (`collection`) [default: sessions]" =>
        |b, v| Ok(b.collection(v));
    "layout", Some("LAYOUT"), None, false,
        "The document layout: native, or a Node store's (`express_layout`): connect-mongo, \
         connect-mongo-object, connect-mongodb-session" =>
        |b, v| layout(b, v);
    "id-hash-key", Some("SECRET"), Some("SESSION_ID_HASH_KEY"), true,
        "The secret for the keyed hashes of session ids and handles (`id_hash_key`; its UTF-8 \
         bytes); without it, the built-in public key" =>
        |b, v| Ok(b.id_hash_key(v));
    "hash-ids", Some("BOOL"), None, false,
        "Whether the id field holds a keyed hash of the session id (`hash_ids`)" =>
        |b, v| Ok(b.hash_ids(parse_bool("hash-ids", v)?));
    "encryption-keys", Some("ID:BASE64,..."), Some("SESSION_ENCRYPTION_KEYS"), true,
        "The key ring (`encryption`): `id:base64` pairs separated by commas, the primary first \
         (it encrypts; every key decrypts)" =>
        |b, v| Ok(b.encryption(parse_key_ring(v.split(','))?));
    "codec", Some("CODEC"), None, false,
        "How the data field is stored (`codec`): bson or json-string" =>
        |b, v| Ok(b.codec(match v {
            "bson" => Codec::Bson,
            "json-string" => Codec::JsonString,
            other => return Err(invalid("codec", other, "bson or json-string")),
        }));
    "id-field", Some("FIELD"), None, false,
        "The id field (`id_field`) [default: _id]" =>
        |b, v| Ok(b.id_field(v));
    "data-field", Some("FIELD"), None, false,
        "The data field (`data_field`) [default: data]" =>
        |b, v| Ok(b.data_field(v));
    "expires-field", Some("FIELD"), None, false,
        "The expiry field (`expires_field`) [default: expires]" =>
        |b, v| Ok(b.expires_field(v));
    "created-at-field", Some("FIELD"), None, false,
        "The creation time field (`timestamp_fields`) [default: createdAt]" =>
        |b, v| Ok(b.created_at_field(v));
    "last-modified-field", Some("FIELD"), None, false,
        "The modification time field (`timestamp_fields`) [default: lastModified]" =>
        |b, v| Ok(b.last_modified_field(v));
    "no-timestamps", None, None, false,
        "The service writes no timestamps (`timestamps(false)`)" =>
        |b, v| Ok(b.timestamps(!parse_bool("no-timestamps", v)?));
    "idle-timeout", Some("DURATION"), None, false,
        "A session unused this long expires, when the framework says nothing else \
         (`idle_timeout`) [default: 14d]" =>
        |b, v| Ok(b.idle_timeout(parse_duration(v).map_err(|e| invalid("idle-timeout", v, &e))?));
    "touch-after", Some("DURATION"), None, false,
        "An unchanged session is written at most once per window (`touch_after`)" =>
        |b, v| Ok(b.touch_after(parse_duration(v).map_err(|e| invalid("touch-after", v, &e))?));
    "absolute-timeout", Some("DURATION"), None, false,
        "The absolute lifetime (`absolute_timeout`, e.g. `12h`): a session older than that is no \
         longer live" =>
        |b, v| Ok(b.absolute_timeout(parse_duration(v).map_err(|e| invalid("absolute-timeout", v, &e))?));
    "lifetime-limit", Some("DURATION"), None, false,
        "The longest lifetime a session may be given of its own (`lifetime_limit`) \
         [default: the longer of idle-timeout and absolute-timeout]" =>
        |b, v| Ok(b.lifetime_limit(parse_duration(v).map_err(|e| invalid("lifetime-limit", v, &e))?));
    "document-format", Some("FORMAT"), None, false,
        "The document format written (`document_format`): 1 for the first step of a rolling \
         deploy [default: 2]" =>
        |b, v| match v.trim() {
            "1" => Ok(b.document_format(crate::DocumentFormat::V1)),
            "2" => Ok(b.document_format(crate::DocumentFormat::V2)),
            other => Err(invalid("document-format", other, "1 or 2")),
        };
    "operation-timeout", Some("DURATION"), None, false,
        "Bound on each database operation (`operation_timeout`) [default: 10s]" =>
        |b, v| Ok(b.operation_timeout(
            parse_duration(v).map_err(|e| invalid("operation-timeout", v, &e))?,
        ));
    "connect-timeout", Some("DURATION"), None, false,
        "How long to wait for the server at start (`connect_timeout`) [default: 10s]" =>
        |b, v| Ok(b.connect_timeout(
            parse_duration(v).map_err(|e| invalid("connect-timeout", v, &e))?,
        ));
}

fn invalid(option: &str, value: &str, expected: &str) -> Error {
    Error::config(format!("{option}: {value:?} is not valid: {expected}"))
}

fn parse_bool(option: &str, text: &str) -> Result<bool> {
    match text.trim() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(invalid(option, other, "true or false")),
    }
}

fn layout(builder: StoreBuilder, name: &str) -> Result<StoreBuilder> {
    match name {
        "native" => Ok(builder),
        #[cfg(feature = "express")]
        other => {
            let layout = other
                .parse::<crate::express::ExpressLayout>()
                .map_err(|e| Error::config(format!("layout: {e}")))?;
            Ok(builder.express_layout(layout))
        }
        #[cfg(not(feature = "express"))]
        other => Err(invalid(
            "layout",
            other,
            "native (the Node layouts need the `express` feature)",
        )),
    }
}

/// A key ring from `id:base64` entries, the primary first.
///
/// # Errors
///
/// [`Error::is_config`]: an entry that is not `id:base64` with a 32-byte
/// key, a duplicate id, or no entry at all.
pub fn parse_key_ring<'a>(entries: impl Iterator<Item = &'a str>) -> Result<KeyRing> {
    let mut keys = Vec::new();
    for entry in entries {
        let (id, key) = entry
            .trim()
            .split_once(':')
            .ok_or_else(|| Error::config("a key ring entry is `id:base64`"))?;
        let id: u32 = id
            .trim()
            .parse()
            .map_err(|_| Error::config("a key ring entry's id is a number"))?;
        keys.push((id, key.trim()));
    }
    // Built from the last: each earlier key becomes the primary in turn, so
    // the first given ends up encrypting and all of them decrypt.
    let mut keys = keys.into_iter().rev();
    let (id, key) = keys
        .next()
        .ok_or_else(|| Error::config("the key ring is empty"))?;
    let mut ring = KeyRing::from_base64(id, key)?;
    for (id, key) in keys {
        ring = ring.with_primary_base64(id, key)?;
    }
    Ok(ring)
}

/// `500ms`, `10s`, `2m`, `12h`, `7d`, or a bare number of seconds; above
/// zero.
///
/// # Errors
///
/// A text that is not such a duration, with what was expected.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s, 500ms, 2m, 12h or 7d"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "d" => Duration::from_secs(n.saturating_mul(86_400)),
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}: ms, s, m, h or d"
            ))
        }
    };
    if duration.is_zero() {
        return Err("a duration must be above zero".into());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_or_mean_seconds() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "0s", "ten", "5w", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_key_ring_lists_the_primary_first() {
        let a = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let b = "S2V5IG51bWJlciB0d286IDMyIGJ5dGVzIGxvbmcuLi4=";
        let entries = [format!("2:{b}"), format!(" 1 : {a}")];
        let ring = parse_key_ring(entries.iter().map(String::as_str)).unwrap();
        assert_eq!(ring.primary_id(), 2);
        assert!(parse_key_ring(["2:x"].into_iter()).is_err());
        let twice = [format!("1:{a}"), format!("1:{b}")];
        assert!(
            parse_key_ring(twice.iter().map(String::as_str)).is_err(),
            "a duplicate id"
        );
        assert!(parse_key_ring(std::iter::empty()).is_err());
    }

    #[test]
    fn every_option_is_set_by_its_name_and_nothing_else_is() {
        let values = |option: &StoreOption| match (option.name, option.value) {
            ("layout", _) => "native",
            ("codec", _) => "json-string",
            ("encryption-keys", _) => "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            ("document-format", _) => "1",
            (_, Some("DURATION")) => "10s",
            (_, Some("BOOL")) | (_, None) => "true",
            _ => "text",
        };
        for option in STORE_OPTIONS {
            let builder = StoreBuilder::from_uri("mongodb://localhost/db");
            let set = builder.set(option.name, values(option));
            assert!(set.is_ok(), "{}: {:?}", option.name, set.err());
        }
        let builder = StoreBuilder::from_uri("mongodb://localhost/db");
        assert!(builder.set("no-such-option", "1").unwrap_err().is_config());
        let builder = StoreBuilder::from_uri("mongodb://localhost/db");
        assert!(builder.set("idle-timeout", "soon").unwrap_err().is_config());
    }
}
