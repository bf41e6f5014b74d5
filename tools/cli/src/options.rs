//! The options every command shares: the connection, and every store option
//! that changes how documents are read. Each is named after the
//! `StoreBuilder` method it mirrors (the environment variables are those of
//! the former `mss-migrate`): give the tool the service's values, or it will
//! not find the service's sessions.

use std::{path::PathBuf, str::FromStr, time::Duration};

use anyhow::{bail, Context, Result};
use clap::Args;
use mongodb_session_store::{
    express::ExpressLayout, Codec, KeyRing, MongoSessionStore, StoreBuilder,
};

/// How the service's store is built.
#[derive(Debug, Clone, Args)]
pub(crate) struct StoreOptions {
    /// The MongoDB server (and, in its path, the database).
    #[arg(long, env = "MONGODB_URI", hide_env_values = true, global = true)]
    pub(crate) uri: Option<String>,
    /// The database, if not in the URI (`database`).
    #[arg(long, global = true)]
    pub(crate) database: Option<String>,
    /// The sessions collection (`collection`).
    #[arg(long, default_value = "sessions", global = true)]
    pub(crate) collection: String,
    /// The document layout: native, or a Node store's (`express_layout`):
    /// connect-mongo, connect-mongo-object, connect-mongodb-session.
    #[arg(long, global = true)]
    pub(crate) layout: Option<StoreLayout>,
    /// The secret for the keyed hashes of session ids and handles
    /// (`id_hash_key`; its UTF-8 bytes). Without it, the built-in public key.
    #[arg(
        long,
        env = "SESSION_ID_HASH_KEY",
        hide_env_values = true,
        global = true
    )]
    pub(crate) id_hash_key: Option<String>,
    /// Whether the id field holds a keyed hash of the session id (`hash_ids`).
    #[arg(long, global = true)]
    pub(crate) hash_ids: Option<bool>,
    /// One encryption key (`encryption`: base64 of 32 bytes). For a key
    /// ring, use --encryption-keys or --encryption-keys-file.
    #[arg(
        long,
        env = "SESSION_ENCRYPTION_KEY",
        hide_env_values = true,
        global = true
    )]
    pub(crate) encryption_key: Option<String>,
    /// The id of that key in the service's key ring [default: 1].
    #[arg(long, global = true)]
    pub(crate) encryption_key_id: Option<u32>,
    /// The key ring (`encryption`): `id:base64` pairs separated by commas,
    /// the primary first (it encrypts; every key decrypts).
    #[arg(
        long,
        env = "SESSION_ENCRYPTION_KEYS",
        hide_env_values = true,
        global = true
    )]
    pub(crate) encryption_keys: Option<String>,
    /// A file holding the key ring: one `id:base64` per line, the primary
    /// first; blank lines and lines starting with # are skipped.
    #[arg(
        long,
        env = "SESSION_ENCRYPTION_KEYS_FILE",
        hide_env_values = true,
        global = true
    )]
    pub(crate) encryption_keys_file: Option<PathBuf>,
    /// How the data field is stored (`codec`): bson or json-string.
    #[arg(long, global = true)]
    pub(crate) codec: Option<CodecName>,
    /// The id field (`id_field`) [default: _id].
    #[arg(long, global = true)]
    pub(crate) id_field: Option<String>,
    /// The data field (`data_field`) [default: data].
    #[arg(long, global = true)]
    pub(crate) data_field: Option<String>,
    /// The expiry field (`expires_field`) [default: expires].
    #[arg(long, global = true)]
    pub(crate) expires_field: Option<String>,
    /// The creation time field (`timestamp_fields`) [default: createdAt].
    #[arg(long, global = true)]
    pub(crate) created_at_field: Option<String>,
    /// The modification time field (`timestamp_fields`) [default: lastModified].
    #[arg(long, global = true)]
    pub(crate) last_modified_field: Option<String>,
    /// The service writes no timestamps (`timestamps(false)`).
    #[arg(long, global = true)]
    pub(crate) no_timestamps: bool,
    /// The service's absolute lifetime (`max_lifetime`, e.g. `12h`): a
    /// session older than that is no longer live.
    #[arg(long, value_parser = parse_duration, global = true)]
    pub(crate) max_lifetime: Option<Duration>,
    /// Bound on each database operation (`operation_timeout`, e.g. `10s`, `500ms`).
    #[arg(long, value_parser = parse_duration, default_value = "10s", global = true)]
    pub(crate) operation_timeout: Duration,
    /// How long to wait for the server at start (`connect_timeout`).
    #[arg(long, value_parser = parse_duration, default_value = "10s", global = true)]
    pub(crate) connect_timeout: Duration,
}

/// The store's document layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreLayout {
    Native,
    Express(ExpressLayout),
}

impl FromStr for StoreLayout {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "native" => Ok(Self::Native),
            other => other.parse().map(Self::Express).map_err(|_| {
                format!(
                    "unknown layout {other:?}: native, connect-mongo, connect-mongo-object or \
                     connect-mongodb-session"
                )
            }),
        }
    }
}

/// `--codec`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CodecName {
    Bson,
    JsonString,
}

impl StoreOptions {
    /// The URI, from `--uri` or `MONGODB_URI`.
    pub(crate) fn uri(&self) -> Result<&str> {
        self.uri
            .as_deref()
            .context("no server: give --uri or set MONGODB_URI")
    }

    /// A builder on the server with the connection options only; it writes
    /// nothing at build (no index, no removal task).
    pub(crate) fn connection(&self) -> Result<StoreBuilder> {
        let builder = MongoSessionStore::from_uri(self.uri()?)
            .manage_collection(false)
            .operation_timeout(self.operation_timeout)
            .connect_timeout(self.connect_timeout);
        Ok(match &self.database {
            Some(database) => builder.database(database),
            None => builder,
        })
    }

    /// The service's store, as it builds it.
    pub(crate) fn store(&self) -> Result<StoreBuilder> {
        let builder = self.connection()?.collection(&self.collection);
        let builder = match self.layout {
            Some(StoreLayout::Express(layout)) => builder.express_layout(layout),
            _ => builder,
        };
        self.native_options(builder)
    }

    /// The options that shape the native layout (and, for the Node layouts,
    /// override their defaults).
    pub(crate) fn native_options(&self, mut builder: StoreBuilder) -> Result<StoreBuilder> {
        if let Some(secret) = &self.id_hash_key {
            builder = builder.id_hash_key(secret);
        }
        if let Some(on) = self.hash_ids {
            builder = builder.hash_ids(on);
        }
        if let Some(ring) = self.key_ring()? {
            builder = builder.encryption(ring);
        }
        builder = match self.codec {
            Some(CodecName::Bson) => builder.codec(Codec::Bson),
            Some(CodecName::JsonString) => builder.codec(Codec::JsonString),
            None => builder,
        };
        if let Some(name) = &self.id_field {
            builder = builder.id_field(name);
        }
        if let Some(name) = &self.data_field {
            builder = builder.data_field(name);
        }
        if let Some(name) = &self.expires_field {
            builder = builder.expires_field(name);
        }
        if self.created_at_field.is_some() || self.last_modified_field.is_some() {
            let created = self.created_at_field.as_deref().unwrap_or("createdAt");
            let modified = self
                .last_modified_field
                .as_deref()
                .unwrap_or("lastModified");
            builder = builder.timestamp_fields(created, modified);
        }
        if self.no_timestamps {
            builder = builder.timestamps(false);
        }
        if let Some(lifetime) = self.max_lifetime {
            builder = builder.max_lifetime(lifetime);
        }
        Ok(builder)
    }

    /// The key ring from whichever of the three forms was given.
    pub(crate) fn key_ring(&self) -> Result<Option<KeyRing>> {
        let given = [
            self.encryption_key.is_some(),
            self.encryption_keys.is_some(),
            self.encryption_keys_file.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            bail!(
                "give one of --encryption-key, --encryption-keys and --encryption-keys-file \
                 (or their environment variables)"
            );
        }
        if self.encryption_key_id.is_some() && self.encryption_key.is_none() {
            bail!("--encryption-key-id needs --encryption-key");
        }
        if let Some(key) = &self.encryption_key {
            let id = self.encryption_key_id.unwrap_or(1);
            return Ok(Some(
                KeyRing::from_base64(id, key).context("--encryption-key")?,
            ));
        }
        if let Some(list) = &self.encryption_keys {
            return parse_key_ring(list.split(','))
                .map(Some)
                .context("--encryption-keys");
        }
        if let Some(path) = &self.encryption_keys_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let lines = text
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'));
            return parse_key_ring(lines)
                .map(Some)
                .with_context(|| format!("the key ring in {}", path.display()));
        }
        Ok(None)
    }
}

/// `id:base64` entries, the primary first.
fn parse_key_ring<'a>(entries: impl Iterator<Item = &'a str>) -> Result<KeyRing> {
    let mut keys = Vec::new();
    for entry in entries {
        let (id, key) = entry
            .trim()
            .split_once(':')
            .context("each key is `id:base64`")?;
        let id: u32 = id.trim().parse().context("a key id is a number")?;
        keys.push((id, key.trim()));
    }
    // Built from the last: each earlier key becomes the primary in turn, so
    // the first given ends up encrypting and all of them decrypt.
    let mut keys = keys.into_iter().rev();
    let (id, key) = keys.next().context("the key ring is empty")?;
    let mut ring = KeyRing::from_base64(id, key)?;
    for (id, key) in keys {
        ring = ring.with_primary_base64(id, key)?;
    }
    Ok(ring)
}

/// `10s`, `500ms`, `2m`, `12h`, or a bare number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s, 500ms, 2m or 12h"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("unknown unit {unit:?} in {text:?}: ms, s, m or h")),
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
        for bad in ["", "0s", "ten", "5d", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_key_ring_lists_the_primary_first() {
        let a = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let b = "S2V5IG51bWJlciB0d286IDMyIGJ5dGVzIGxvbmcuLi4=";
        let ring = parse_key_ring(
            [format!("2:{b}"), format!(" 1 : {a}")]
                .iter()
                .map(|s| s.as_str()),
        )
        .unwrap();
        assert_eq!(ring.primary_id(), 2);
        assert!(parse_key_ring(["2:x"].into_iter()).is_err());
        assert!(
            parse_key_ring(
                [format!("1:{a}"), format!("1:{b}")]
                    .iter()
                    .map(|s| s.as_str())
            )
            .is_err(),
            "a duplicate id"
        );
        assert!(parse_key_ring(std::iter::empty()).is_err());
    }
}
