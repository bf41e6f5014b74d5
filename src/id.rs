//! Session ids: generation, validation and redaction — [`RedactedId`], the
//! form an id takes in logs, and [`SessionId`], an id held so that it only
//! ever prints redacted.

use std::{
    collections::hash_map::RandomState,
    fmt,
    hash::{BuildHasher, Hasher},
    sync::{Arc, OnceLock},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};

/// Longest id the store will look up; anything longer cannot be ours and is
/// treated as "no session" without a round trip.
pub(crate) const MAX_ID_LEN: usize = 256;

/// A fresh id: 256 bits from the operating system's CSPRNG, URL-safe base64
/// (43 characters).
pub fn generate_id() -> String {
    let mut bytes = [0u8; 32];
    // The OS RNG only fails on platforms where nothing would work anyway.
    getrandom::fill(&mut bytes).expect("operating system random number generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `id` is worth a round trip at all.
pub(crate) fn is_plausible(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && !id.contains('\0')
}

/// A session id as it may appear in logs, events and errors: a per-process
/// keyed hash, stable within the process (so log lines can be correlated)
/// but useless as a cookie.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RedactedId(u32);

impl RedactedId {
    /// Redacts `id`.
    pub fn new(id: &str) -> Self {
        static KEYS: OnceLock<RandomState> = OnceLock::new();
        let mut hasher = KEYS.get_or_init(RandomState::new).build_hasher();
        hasher.write(id.as_bytes());
        // Any 32 bits of the hash will do: it only tells log lines apart.
        let [a, b, c, d, ..] = hasher.finish().to_le_bytes();
        Self(u32::from_le_bytes([a, b, c, d]))
    }
}

impl fmt::Display for RedactedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sid#{:08x}", self.0)
    }
}

impl fmt::Debug for RedactedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A session id that is redacted wherever it is printed.
///
/// `Debug` and `Display` show a [`RedactedId`]; the id itself is only
/// reachable through [`expose`](Self::expose), so it cannot end up in a log
/// by accident.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(Arc<str>);

impl SessionId {
    pub(crate) fn new(id: &str) -> Self {
        Self(id.into())
    }

    /// The id itself. Handle it like a password.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&RedactedId::new(&self.0), f)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&RedactedId::new(&self.0), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_long_unique_and_cookie_safe() {
        let (a, b) = (generate_id(), generate_id());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn redaction_hides_the_id_but_is_stable() {
        let id = generate_id();
        let shown = RedactedId::new(&id).to_string();
        assert!(!shown.contains(&id[..8]));
        assert_eq!(shown, format!("{:?}", RedactedId::new(&id)));
    }
}
