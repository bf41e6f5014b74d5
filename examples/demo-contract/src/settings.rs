use std::time::Duration;

/// The demo's configuration, read from environment variables (or, in tests,
/// from any lookup function with the same names).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `MONGODB_URI` (required).
    pub mongodb_uri: String,
    /// `HOST` (default `127.0.0.1`).
    pub host: String,
    /// `PORT` (default 3000).
    pub port: u16,
    /// `SESSION_DATABASE` (default `demo`).
    pub database: String,
    /// `SESSION_COLLECTION` (default `sessions`).
    pub collection: String,
    /// `COOKIE_SECURE` (default false, so the demo works over plain http).
    pub cookie_secure: bool,
    /// `SESSION_TTL_SECS`: idle lifetime of a session (default 14 days).
    pub ttl: Duration,
    /// `SESSION_TOUCH_AFTER_SECS`: an unchanged session is written at most
    /// once per this window (default 0: every request moves its expiry).
    pub touch_after: Duration,
    /// `SESSION_CODEC`: how values are stored (default `bson`).
    pub codec: CodecName,
    /// `SESSION_ENCRYPTION_KEY`: base64 of 32 bytes; encrypts session
    /// values at rest (default: off).
    pub encryption_key: Option<String>,
    /// `SESSION_MAX_LIFETIME_SECS`: absolute timeout since creation
    /// (default: none).
    pub absolute_timeout: Option<Duration>,
    /// `SESSION_CACHE`: the read-through cache, `off` (default), `on`
    /// (kept coherent by change streams where the server has them) or
    /// `bound` (the staleness bound alone).
    pub cache: CacheSetting,
    /// `SESSION_CACHE_STALENESS_MS`: the cache's staleness bound (default 1000).
    pub cache_staleness: Duration,
    /// `SESSION_MAX_BYTES`: the largest session stored (default: the
    /// store's, 1 MiB); a write past it is answered 413.
    pub max_session_bytes: Option<usize>,
    /// `SESSION_MAX_PER_USER`: at most this many signed-in devices per user
    /// (default: no limit).
    pub max_sessions_per_user: Option<u32>,
    /// `SESSION_LIMIT_POLICY`: past the limit, `end` the least recently
    /// active device (default) or `refuse` the new login (409).
    pub over_limit: mongodb_session_store::OverLimit,
}

/// `SESSION_CACHE`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSetting {
    /// `off`: every load reads the database.
    Off,
    /// `on`: coherent through change streams where available.
    On,
    /// `bound`: entries live at most the staleness bound.
    Bound,
}

/// `SESSION_CODEC`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecName {
    /// `bson`: a queryable sub-document, saved per key.
    Bson,
    /// `json`: a JSON string, as connect-mongo stores it.
    Json,
}

impl Settings {
    /// Applies the store-side settings to a builder.
    ///
    /// # Errors
    ///
    /// An invalid encryption key.
    pub fn configure(
        &self,
        builder: mongodb_session_store::StoreBuilder,
    ) -> Result<mongodb_session_store::StoreBuilder, mongodb_session_store::Error> {
        let codec = match self.codec {
            CodecName::Bson => mongodb_session_store::Codec::Bson,
            CodecName::Json => mongodb_session_store::Codec::JsonString,
        };
        let mut builder = builder
            .database(&self.database)
            .collection(&self.collection)
            .idle_timeout(self.ttl)
            .touch_after(self.touch_after)
            .codec(codec);
        if let Some(key) = &self.encryption_key {
            builder = builder.encryption(mongodb_session_store::KeyRing::from_base64(1, key)?);
        }
        if let Some(lifetime) = self.absolute_timeout {
            builder = builder.absolute_timeout(lifetime);
        }
        if let Some(limit) = self.max_session_bytes {
            builder = builder.max_session_bytes(limit);
        }
        if let Some(max) = self.max_sessions_per_user {
            builder = builder.max_sessions_per_user(max, self.over_limit);
        }
        if self.cache != CacheSetting::Off {
            let cache = mongodb_session_store::ReadCache::new()
                .staleness_bound(self.cache_staleness)
                .change_streams(self.cache == CacheSetting::On);
            builder = builder.cache(cache);
        }
        Ok(builder)
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (a variable name to its value).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mongodb_uri = lookup("MONGODB_URI").ok_or(
            "MONGODB_URI is not set: point it at a MongoDB server, or start the demo with \
             scripts/demo, which starts a local one",
        )?;
        let text = |name: &str, default: &str| lookup(name).unwrap_or_else(|| default.into());
        Ok(Self {
            mongodb_uri,
            host: text("HOST", "127.0.0.1"),
            port: parse(&lookup, "PORT", 3000)?,
            database: text("SESSION_DATABASE", "demo"),
            collection: text("SESSION_COLLECTION", "sessions"),
            cookie_secure: parse_bool(&lookup, "COOKIE_SECURE")?,
            ttl: Duration::from_secs(parse(&lookup, "SESSION_TTL_SECS", 14 * 24 * 3600)?),
            touch_after: Duration::from_secs(parse(&lookup, "SESSION_TOUCH_AFTER_SECS", 0)?),
            codec: match lookup("SESSION_CODEC").as_deref().map(str::trim) {
                None | Some("") | Some("bson") => CodecName::Bson,
                Some("json") => CodecName::Json,
                Some(other) => return Err(format!("SESSION_CODEC={other:?} must be bson or json")),
            },
            encryption_key: lookup("SESSION_ENCRYPTION_KEY").filter(|k| !k.trim().is_empty()),
            absolute_timeout: match lookup("SESSION_MAX_LIFETIME_SECS") {
                None => None,
                Some(_) => Some(Duration::from_secs(parse(
                    &lookup,
                    "SESSION_MAX_LIFETIME_SECS",
                    0,
                )?)),
            },
            cache: match lookup("SESSION_CACHE").as_deref().map(str::trim) {
                None | Some("") | Some("off") => CacheSetting::Off,
                Some("on") => CacheSetting::On,
                Some("bound") => CacheSetting::Bound,
                Some(other) => {
                    return Err(format!("SESSION_CACHE={other:?} must be off, on or bound"))
                }
            },
            cache_staleness: Duration::from_millis(parse(
                &lookup,
                "SESSION_CACHE_STALENESS_MS",
                1000,
            )?),
            max_session_bytes: match lookup("SESSION_MAX_BYTES") {
                None => None,
                Some(_) => Some(parse(&lookup, "SESSION_MAX_BYTES", 0)?),
            },
            max_sessions_per_user: match lookup("SESSION_MAX_PER_USER") {
                None => None,
                Some(_) => Some(parse(&lookup, "SESSION_MAX_PER_USER", 0)?),
            },
            over_limit: match lookup("SESSION_LIMIT_POLICY").as_deref().map(str::trim) {
                None | Some("") | Some("end") => {
                    mongodb_session_store::OverLimit::EndLeastRecentlyActive
                }
                Some("refuse") => mongodb_session_store::OverLimit::RefuseNewLogin,
                Some(other) => {
                    return Err(format!(
                        "SESSION_LIMIT_POLICY={other:?} must be end or refuse"
                    ))
                }
            },
        })
    }
}

fn parse<T: std::str::FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> Result<T, String> {
    match lookup(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|_| format!("{name}={raw:?} is not a valid number")),
    }
}

fn parse_bool(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Result<bool, String> {
    match lookup(name).as_deref().map(str::trim) {
        None | Some("") | Some("0") | Some("false") => Ok(false),
        Some("1") | Some("true") => Ok(true),
        Some(other) => Err(format!("{name}={other:?} must be true or false")),
    }
}
