//! The crate's one error type.
//!
//! Callers branch on what went wrong with predicates (`is_decode`,
//! `is_unreachable`, …) rather than matching variants, so the representation
//! can grow without breaking anyone.

use std::{fmt, time::Duration};

mod driver;

pub(crate) use driver::{command_code, is_duplicate_key};
use driver::{is_too_large, is_transient_driver_error};

/// Everything that can go wrong in the store.
///
/// The `Display` text says what happened and, where there is one, what to do
/// about it. It never contains a session id.
pub struct Error(Box<Repr>);

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
enum Repr {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(
        "MongoDB server not reachable within {bound:?} ({reason}). Check the URI's host and \
         port, that the server is running, and network access/credentials"
    )]
    Unreachable {
        bound: Duration,
        reason: String,
        #[source]
        source: Option<mongodb::error::Error>,
    },
    #[error(
        "connection to the MongoDB server failed during `{operation}` ({source}). Check that \
         the server is running and that the URI's host and port are right"
    )]
    ConnectionFailed {
        operation: &'static str,
        #[source]
        source: mongodb::error::Error,
    },
    #[error("MongoDB operation `{operation}` did not finish within {bound:?}")]
    Timeout {
        operation: &'static str,
        bound: Duration,
    },
    #[error("MongoDB operation `{operation}` failed: {source}")]
    Database {
        operation: &'static str,
        #[source]
        source: mongodb::error::Error,
    },
    #[error("session document field `{field}` cannot be decoded: {reason}")]
    Decode { field: String, reason: String },
    #[error("session cannot be encoded: {0}")]
    Encode(String),
    #[error(
        "session key {0:?} is in the store's reserved namespace (keys starting with \
         `__mongodb_session_store`): choose another name, or set the owner with `set_user`"
    )]
    ReservedKey(String),
    #[error("{0}")]
    IndexConflict(String),
    #[error("could not find a free session id after {0} attempts")]
    IdExhausted(u32),
    #[error("another request changed the session meanwhile (keys: {0}); nothing was saved")]
    Conflict(String),
    #[error("the session was changed by other requests {0} times while saving; nothing was saved")]
    Contended(u32),
    #[error(
        "the session was ended (a logout, a revocation, or a later regeneration of it) while \
         its id was being regenerated; nothing was stored"
    )]
    Ended,
    #[error(
        "the session was written by a newer mongodb-session-store (format {found}); this version \
         reads formats up to {reads}. Finish the rolling deploy: see the README, Upgrades and the \
         document format"
    )]
    NewerFormat { found: i64, reads: i64 },
    #[error(
        "the user already has the most sessions allowed ({0}); the session was not given its \
         owner"
    )]
    SessionLimit(u32),
}

impl Error {
    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::from(Repr::Config(message.into()))
    }

    pub(crate) fn unreachable(bound: Duration, source: Option<mongodb::error::Error>) -> Self {
        let reason = source
            .as_ref()
            .map_or_else(|| "no answer".to_string(), |e| e.to_string());
        Self::from(Repr::Unreachable {
            bound,
            reason,
            source,
        })
    }

    pub(crate) fn timeout(operation: &'static str, bound: Duration) -> Self {
        Self::from(Repr::Timeout { operation, bound })
    }

    pub(crate) fn database(operation: &'static str, source: mongodb::error::Error) -> Self {
        Self::from(Repr::Database { operation, source })
    }

    /// The one place a driver error becomes this crate's: `operation` ran
    /// with `bound` as its limit.
    pub(crate) fn from_driver(
        operation: &'static str,
        bound: Duration,
        source: mongodb::error::Error,
    ) -> Self {
        use mongodb::error::ErrorKind;
        match &*source.kind {
            ErrorKind::ServerSelection { .. } | ErrorKind::DnsResolve { .. } => {
                Self::unreachable(bound, Some(source))
            }
            ErrorKind::Io(_) => Self::from(Repr::ConnectionFailed { operation, source }),
            _ if is_too_large(&source) => Self::encode(format!(
                "the session document would pass MongoDB's 16 MiB document limit ({source})"
            )),
            _ => Self::database(operation, source),
        }
    }

    pub(crate) fn decode(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::from(Repr::Decode {
            field: field.into(),
            reason: reason.into(),
        })
    }

    pub(crate) fn encode(message: impl Into<String>) -> Self {
        Self::from(Repr::Encode(message.into()))
    }

    pub(crate) fn reserved_key(key: &str) -> Self {
        let shown: String = key.chars().take(64).collect();
        Self::from(Repr::ReservedKey(shown))
    }

    pub(crate) fn index_conflict(message: impl Into<String>) -> Self {
        Self::from(Repr::IndexConflict(message.into()))
    }

    pub(crate) fn id_exhausted(attempts: u32) -> Self {
        Self::from(Repr::IdExhausted(attempts))
    }

    pub(crate) fn conflict(keys: &[&str]) -> Self {
        let mut listed: Vec<String> = keys.iter().take(5).map(|k| format!("{k:?}")).collect();
        if keys.len() > 5 {
            listed.push(format!("and {} more", keys.len() - 5));
        }
        Self::from(Repr::Conflict(listed.join(", ")))
    }

    pub(crate) fn ended() -> Self {
        Self::from(Repr::Ended)
    }

    pub(crate) fn newer_format(found: i64, reads: i64) -> Self {
        Self::from(Repr::NewerFormat { found, reads })
    }

    pub(crate) fn session_limit(max: u32) -> Self {
        Self::from(Repr::SessionLimit(max))
    }

    pub(crate) fn contended(attempts: u32) -> Self {
        Self::from(Repr::Contended(attempts))
    }

    /// A save lost a race it was told not to paper over
    /// ([`ConflictPolicy::Fail`](crate::ConflictPolicy::Fail)), or kept losing
    /// compare-and-swap races; nothing was written. Reload and retry.
    pub fn is_conflict(&self) -> bool {
        matches!(*self.0, Repr::Conflict(_) | Repr::Contended(_))
    }

    /// The builder was given options that cannot work together, or none that
    /// say which database to use.
    pub fn is_config(&self) -> bool {
        matches!(*self.0, Repr::Config(_))
    }

    /// The server could not be reached (at build time or later) within the
    /// configured bound.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            *self.0,
            Repr::Unreachable { .. } | Repr::ConnectionFailed { .. }
        )
    }

    /// An operation exceeded the configured operation timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(*self.0, Repr::Timeout { .. })
    }

    /// The server answered with an error (permissions, write concern, …).
    pub fn is_database(&self) -> bool {
        matches!(*self.0, Repr::Database { .. })
    }

    /// A stored document does not have the shape the store expects.
    pub fn is_decode(&self) -> bool {
        matches!(*self.0, Repr::Decode { .. })
    }

    /// Session data could not be turned into a document (too large, a
    /// codec failure, or a reserved key: see
    /// [`is_reserved_key`](Self::is_reserved_key)).
    pub fn is_encode(&self) -> bool {
        matches!(*self.0, Repr::Encode(_) | Repr::ReservedKey(_))
    }

    /// The session map holds a key of the store's reserved namespace that
    /// the store's API did not put there (or an owner entry that is not
    /// one); nothing was written.
    pub fn is_reserved_key(&self) -> bool {
        matches!(*self.0, Repr::ReservedKey(_))
    }

    /// An existing index on the expiry field disagrees with the configured
    /// one. The message names the fix.
    pub fn is_index_conflict(&self) -> bool {
        matches!(*self.0, Repr::IndexConflict(_))
    }

    /// `create` drew colliding ids more often than is plausible.
    pub fn is_id_exhausted(&self) -> bool {
        matches!(*self.0, Repr::IdExhausted(_))
    }

    /// A regeneration (`create` of a map loaded from the store: tower-sessions'
    /// `cycle_id`, actix-session's renew) found its session ended meanwhile,
    /// and stored nothing. The adapters answer it with an id that points at
    /// nothing, so the next request starts a fresh session.
    pub fn is_ended(&self) -> bool {
        matches!(*self.0, Repr::Ended)
    }

    /// The session's document is of a newer format than this release reads
    /// (written by a newer release of this crate): it was neither decoded
    /// nor written. A deployment upgraded as the README's *Upgrades and the
    /// document format* says never meets it; [`found_format`](Self::found_format)
    /// names the format.
    pub fn is_newer_format(&self) -> bool {
        matches!(*self.0, Repr::NewerFormat { .. })
    }

    /// The format of a document a newer release wrote (see
    /// [`is_newer_format`](Self::is_newer_format)).
    pub fn found_format(&self) -> Option<i64> {
        match &*self.0 {
            Repr::NewerFormat { found, .. } => Some(*found),
            _ => None,
        }
    }

    /// A login was refused: the user already has
    /// [`max_sessions_per_user`](crate::StoreBuilder::max_sessions_per_user)
    /// sessions and the policy is
    /// [`OverLimit::RefuseNewLogin`](crate::OverLimit::RefuseNewLogin).
    pub fn is_session_limit(&self) -> bool {
        matches!(*self.0, Repr::SessionLimit(_))
    }

    /// The document field a decode error is about, such as `expires` or
    /// `data.cart`.
    pub fn decode_field(&self) -> Option<&str> {
        match &*self.0 {
            Repr::Decode { field, .. } => Some(field),
            _ => None,
        }
    }

    /// What kind of failure this is, as spans and metrics label it: one
    /// stable word per kind, never the message (which may name keys).
    pub(crate) fn kind_label(&self) -> &'static str {
        match &*self.0 {
            Repr::Config(_) => "config",
            Repr::Unreachable { .. } => "unreachable",
            Repr::ConnectionFailed { .. } => "connection",
            Repr::Timeout { .. } => "timeout",
            Repr::Database { .. } => "database",
            Repr::Decode { .. } => "decode",
            Repr::Encode(_) => "encode",
            Repr::ReservedKey(_) => "reserved_key",
            Repr::IndexConflict(_) => "index_conflict",
            Repr::IdExhausted(_) => "id_exhausted",
            Repr::Conflict(_) => "conflict",
            Repr::Contended(_) => "contended",
            Repr::Ended => "ended",
            Repr::NewerFormat { .. } => "newer_format",
            Repr::SessionLimit(_) => "session_limit",
        }
    }

    /// The driver error behind a server failure.
    pub(crate) fn driver_error(&self) -> Option<&mongodb::error::Error> {
        match &*self.0 {
            Repr::Database { source, .. } => Some(source),
            Repr::Unreachable { source, .. } => source.as_ref(),
            Repr::ConnectionFailed { source, .. } => Some(source),
            _ => None,
        }
    }

    /// True for failures that retrying later may cure: the server was
    /// unreachable, slow, or answered with a transient error.
    pub fn is_transient(&self) -> bool {
        match &*self.0 {
            Repr::Unreachable { .. }
            | Repr::ConnectionFailed { .. }
            | Repr::Timeout { .. }
            | Repr::Contended(_) => true,
            Repr::Database { source, .. } => is_transient_driver_error(source),
            _ => false,
        }
    }
}

impl From<Repr> for Error {
    fn from(repr: Repr) -> Self {
        Self(Box::new(repr))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_match_their_constructor_only() {
        let decode = Error::decode("data.cart", "expected a document");
        assert!(decode.is_decode());
        assert!(!decode.is_config() && !decode.is_transient());
        assert_eq!(decode.decode_field(), Some("data.cart"));
        assert!(decode.to_string().contains("`data.cart`"));

        let timeout = Error::timeout("find", Duration::from_secs(1));
        assert!(timeout.is_timeout() && timeout.is_transient());
        assert_eq!(timeout.decode_field(), None);
        assert_eq!(
            (decode.kind_label(), timeout.kind_label()),
            ("decode", "timeout")
        );
    }

    #[test]
    fn a_broken_connection_is_not_reported_as_a_wait() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let error = Error::from_driver("find", Duration::from_secs(3), io.into());
        assert!(error.is_unreachable() && error.is_transient());
        let text = error.to_string();
        assert!(text.contains("connection to the MongoDB server failed during `find`"));
        assert!(!text.contains("within"), "{text}");
    }
}
