//! Encryption at rest and keyed hashing.
//!
//! Values are sealed with AES-256-GCM under the key ring's primary key and
//! opened with whichever key sealed them: each ciphertext starts with a
//! format byte and the 32-bit id of its key. Keys are used as given — no
//! per-operation key derivation (connect-mongo's kruptein ran PBKDF2 on
//! every get and set).
//!
//! Nonces are a random 96-bit start per process, counted up per value, so
//! they never repeat within a process and almost surely not across
//! processes; still, rotate keys now and then (add a new primary, then
//! [`rewrap`]), as every key ring should.
//!
//! [`rewrap`]: crate::MongoSessionStore::rewrap

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        OnceLock,
    },
};

use aes_gcm::{
    aead::{Aead, KeyInit, Payload},
    Aes256Gcm, Nonce,
};
use base64::{engine::general_purpose, Engine as _};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

const FORMAT: u8 = 1;
const HEADER: usize = 1 + 4 + 12;

/// The keys that encrypt session data.
///
/// ```
/// use mongodb_session_store::KeyRing;
///
/// # fn main() -> Result<(), mongodb_session_store::Error> {
/// let old = [7u8; 32];
/// let new = "S2V5IG51bWJlciB0d286IDMyIGJ5dGVzIGxvbmcuLi4="; // base64 of 32 bytes
/// // Key 2 encrypts from now on; key 1 still decrypts older sessions.
/// let ring = KeyRing::new(1, old)?.with_primary_base64(2, new)?;
/// assert_eq!(ring.primary_id(), 2);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KeyRing {
    primary: u32,
    keys: Vec<RingKey>,
}

#[derive(Clone)]
struct RingKey {
    id: u32,
    cipher: Aes256Gcm,
    /// Names encrypted fields. Derived from the key itself, so only someone
    /// holding the key can tell which names a dump's fields stand for.
    field_names: Hasher,
}

impl RingKey {
    fn new(id: u32, key: &[u8]) -> Result<Self> {
        let cipher = cipher(key)?;
        let derived = Hasher::new(key).hash("field-name-key", "", 32);
        Ok(Self {
            id,
            cipher,
            field_names: Hasher::new(derived.as_bytes()),
        })
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<u32> = self.keys.iter().map(|k| k.id).collect();
        f.debug_struct("KeyRing")
            .field("primary", &self.primary)
            .field("ids", &ids)
            .finish()
    }
}

impl KeyRing {
    /// A ring with one key (32 raw bytes), which is the primary.
    ///
    /// # Errors
    ///
    /// [`Error::is_config`] if the key is not 32 bytes.
    pub fn new(id: u32, key: impl AsRef<[u8]>) -> Result<Self> {
        Ok(Self {
            primary: id,
            keys: vec![RingKey::new(id, key.as_ref())?],
        })
    }

    /// A ring with one key given as base64 (standard or URL-safe, padded or
    /// not).
    ///
    /// # Errors
    ///
    /// [`Error::is_config`] if it is not base64 of 32 bytes.
    pub fn from_base64(id: u32, key: &str) -> Result<Self> {
        Self::new(id, decode_base64(key)?)
    }

    /// Adds a key that only decrypts (an older key still needed for
    /// sessions written before a rotation).
    ///
    /// # Errors
    ///
    /// [`Error::is_config`] for a bad key or a duplicate id.
    pub fn with_key(mut self, id: u32, key: impl AsRef<[u8]>) -> Result<Self> {
        if self.keys.iter().any(|existing| existing.id == id) {
            return Err(Error::config(format!("key id {id} is already in the ring")));
        }
        self.keys.push(RingKey::new(id, key.as_ref())?);
        Ok(self)
    }

    /// Adds a key and makes it the primary: new writes use it, every key
    /// still decrypts. This is a rotation.
    ///
    /// # Errors
    ///
    /// As [`with_key`](Self::with_key).
    pub fn with_primary(self, id: u32, key: impl AsRef<[u8]>) -> Result<Self> {
        let mut ring = self.with_key(id, key)?;
        ring.primary = id;
        Ok(ring)
    }

    /// [`with_primary`](Self::with_primary) with a base64 key.
    ///
    /// # Errors
    ///
    /// As [`with_key`](Self::with_key).
    pub fn with_primary_base64(self, id: u32, key: &str) -> Result<Self> {
        self.with_primary(id, decode_base64(key)?)
    }

    /// The id of the key that encrypts.
    pub fn primary_id(&self) -> u32 {
        self.primary
    }

    /// The stored name of session key `key` under the primary key: a keyed
    /// hash, so a dump does not show which keys a session has.
    pub(crate) fn field_name(&self, key: &str) -> String {
        self.key(self.primary)
            .expect("the primary key is in the ring")
            .field_names
            .hash("field", key, 16)
    }

    /// Every name `key` may be stored under: the primary key's first (where
    /// a write puts it), then the names under the ring's other keys and the
    /// one earlier versions used (a public hash key). A removal must reach
    /// them all: another instance's write or a `rewrap` may have moved the
    /// value since it was loaded.
    pub(crate) fn field_names(&self, key: &str) -> Vec<String> {
        let mut names = vec![self.field_name(key)];
        let others = self
            .keys
            .iter()
            .filter(|k| k.id != self.primary)
            .map(|k| k.field_names.hash("field", key, 16));
        names.extend(others);
        names.push(Hasher::default().hash("field", key, 16));
        names.dedup();
        names
    }

    /// Encrypts `plaintext`, bound to `aad`.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce = next_nonce();
        let cipher = self
            .cipher(self.primary)
            .expect("the primary key is in the ring");
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(HEADER + sealed.len());
        out.push(FORMAT);
        out.extend_from_slice(&self.primary.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts what [`seal`](Self::seal) made with the same `aad`; returns
    /// the plaintext and the id of the key that sealed it.
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<(Vec<u8>, u32), &'static str> {
        if sealed.len() < HEADER + 16 || sealed[0] != FORMAT {
            return Err("not a ciphertext of this store");
        }
        let id = u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]);
        let cipher = self
            .cipher(id)
            .ok_or("encrypted with a key that is not in the key ring")?;
        let nonce = Nonce::from_slice(&sealed[5..HEADER]);
        let plaintext = cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[HEADER..],
                    aad,
                },
            )
            .map_err(|_| "ciphertext was tampered with or moved from another session")?;
        Ok((plaintext, id))
    }

    fn cipher(&self, id: u32) -> Option<&Aes256Gcm> {
        self.key(id).map(|k| &k.cipher)
    }

    fn key(&self, id: u32) -> Option<&RingKey> {
        self.keys.iter().find(|k| k.id == id)
    }
}

/// The id of the key that sealed `sealed`, read from its header without
/// opening it (so it works for keys no longer in the ring), or `None` if it
/// is not a ciphertext of this store.
pub(crate) fn sealed_key_id(sealed: &[u8]) -> Option<u32> {
    if sealed.len() < HEADER + 16 || sealed[0] != FORMAT {
        return None;
    }
    Some(u32::from_be_bytes([
        sealed[1], sealed[2], sealed[3], sealed[4],
    ]))
}

/// A fresh nonce: 96 random bits drawn once per process, then counted up.
/// Unique within the process by construction (a syscall per value would
/// cost more than the encryption itself); two processes collide only if
/// their random starts fall within a few billion of each other out of 2^96.
fn next_nonce() -> [u8; 12] {
    static START: OnceLock<(u32, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (prefix, base) = *START.get_or_init(|| {
        let mut bytes = [0u8; 12];
        getrandom::fill(&mut bytes).expect("operating system random number generator failed");
        let prefix = u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes"));
        (
            prefix,
            u64::from_be_bytes(bytes[4..].try_into().expect("8 bytes")),
        )
    });
    let count = base.wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&prefix.to_be_bytes());
    nonce[4..].copy_from_slice(&count.to_be_bytes());
    nonce
}

fn cipher(key: &[u8]) -> Result<Aes256Gcm> {
    Aes256Gcm::new_from_slice(key).map_err(|_| {
        Error::config(format!(
            "an encryption key must be 32 bytes, not {}",
            key.len()
        ))
    })
}

fn decode_base64(text: &str) -> Result<Vec<u8>> {
    let text = text.trim().trim_end_matches('=');
    general_purpose::STANDARD_NO_PAD
        .decode(text)
        .or_else(|_| general_purpose::URL_SAFE_NO_PAD.decode(text))
        .map_err(|_| Error::config("an encryption key must be base64"))
}

/// HMAC-SHA-256 under a secret: session ids, field names and handles are
/// stored through it, so nothing in the collection works as a cookie.
#[derive(Clone)]
pub(crate) struct Hasher(Hmac<Sha256>);

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hasher(..)")
    }
}

/// The key used when none is configured. Public, so hashing with it only
/// makes stored ids useless as cookies (ids are 256 random bits, so that is
/// enough against a leaked dump); a secret key also keeps someone holding
/// the database from checking a guessed id or key name.
const DEFAULT_HASH_KEY: &[u8] = b"mongodb-session-store/v1/default-hash-key";

impl Default for Hasher {
    fn default() -> Self {
        Self::new(DEFAULT_HASH_KEY)
    }
}

impl Hasher {
    pub(crate) fn new(key: &[u8]) -> Self {
        Self(<Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length"))
    }

    /// URL-safe base64 of the first `bytes` of HMAC(`domain` ‖ `input`).
    pub(crate) fn hash(&self, domain: &str, input: &str, bytes: usize) -> String {
        let mut mac = self.0.clone();
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(input.as_bytes());
        let digest = mac.finalize().into_bytes();
        general_purpose::URL_SAFE_NO_PAD.encode(&digest[..bytes.min(digest.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_binding() {
        let ring = KeyRing::new(1, [1u8; 32]).unwrap();
        let sealed = ring.seal(b"doc-a/field", b"secret");
        assert_eq!(
            ring.open(b"doc-a/field", &sealed).unwrap(),
            (b"secret".to_vec(), 1)
        );
        assert!(
            ring.open(b"doc-b/field", &sealed).is_err(),
            "moved to another document"
        );
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(
            ring.open(b"doc-a/field", &flipped).is_err(),
            "a flipped byte"
        );
        assert!(ring.open(b"doc-a/field", b"short").is_err());
    }

    #[test]
    fn the_sealing_key_id_is_read_without_the_key() {
        let ring = KeyRing::new(7, [1u8; 32]).unwrap();
        assert_eq!(sealed_key_id(&ring.seal(b"x", b"v")), Some(7));
        assert_eq!(sealed_key_id(b"short"), None);
    }

    #[test]
    fn rotation_encrypts_with_the_new_key_and_still_opens_old_values() {
        let old = KeyRing::new(1, [1u8; 32]).unwrap();
        let sealed_old = old.seal(b"x", b"v1");
        let ring = old.with_primary(2, [2u8; 32]).unwrap();
        assert_eq!(ring.open(b"x", &sealed_old).unwrap().1, 1);
        assert_eq!(ring.open(b"x", &ring.seal(b"x", b"v2")).unwrap().1, 2);
        let without_old = KeyRing::new(2, [2u8; 32]).unwrap();
        assert!(without_old.open(b"x", &sealed_old).is_err());
    }

    #[test]
    fn keys_must_be_32_bytes_and_base64_forms_agree() {
        assert!(KeyRing::new(1, [0u8; 16]).unwrap_err().is_config());
        let key = general_purpose::STANDARD.encode([9u8; 32]);
        let url = general_purpose::URL_SAFE_NO_PAD.encode([9u8; 32]);
        let a = KeyRing::from_base64(1, &key).unwrap();
        let b = KeyRing::from_base64(1, &url).unwrap();
        assert!(b.open(b"", &a.seal(b"", b"p")).is_ok());
        assert!(KeyRing::new(1, [0u8; 32])
            .unwrap()
            .with_key(1, [1u8; 32])
            .is_err());
    }

    #[test]
    fn hashes_are_keyed_and_domain_separated() {
        let (a, b) = (Hasher::default(), Hasher::new(b"secret"));
        assert_ne!(a.hash("id", "x", 32), b.hash("id", "x", 32));
        assert_ne!(a.hash("id", "x", 32), a.hash("field", "x", 32));
        assert_eq!(a.hash("id", "x", 32).len(), 43);
    }
}
