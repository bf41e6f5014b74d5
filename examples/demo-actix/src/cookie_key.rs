//! actix-session always signs (or encrypts) its cookie, so every instance of
//! the demo must share one key — and it must not live beside the sessions:
//! whoever holds a copy of the database could then sign cookies. It comes
//! from the environment (`SESSION_SIGNING_KEY`, base64 of 64 bytes) or a
//! file (`SESSION_SIGNING_KEY_FILE`, holding that base64), as a real
//! service takes it from its secrets. Without either, the demo makes one up
//! at start and says so: its cookies then die with the process.

use actix_web::cookie::Key;
use base64::{engine::general_purpose::STANDARD, Engine as _};

/// The variable holding the key itself.
pub(crate) const KEY_VAR: &str = "SESSION_SIGNING_KEY";
/// The variable naming a file that holds the key.
pub(crate) const KEY_FILE_VAR: &str = "SESSION_SIGNING_KEY_FILE";
/// The key's length: actix's `Key` needs 64 bytes (signing and encryption
/// halves).
const KEY_BYTES: usize = 64;

/// The cookie-signing key from `lookup` (the environment's names).
///
/// # Errors
///
/// Both variables are set, the file cannot be read, or the key is not
/// base64 of 64 bytes. A bad key stops the demo rather than falling back,
/// so a typo cannot silently log every user out on each restart.
pub(crate) fn signing_key(lookup: impl Fn(&str) -> Option<String>) -> Result<Key, String> {
    let set = |name| lookup(name).filter(|v| !v.trim().is_empty());
    let encoded = match (set(KEY_VAR), set(KEY_FILE_VAR)) {
        (Some(_), Some(_)) => {
            return Err(format!("set {KEY_VAR} or {KEY_FILE_VAR}, not both"));
        }
        (Some(key), None) => key,
        (None, Some(path)) => std::fs::read_to_string(path.trim())
            .map_err(|e| format!("{KEY_FILE_VAR}={path:?}: {e}"))?,
        (None, None) => {
            tracing::warn!(
                "{KEY_VAR} is not set: signing cookies with a random key made at start, a \
                 development default. Sessions do not survive a restart and are not shared \
                 between instances; set {KEY_VAR} (base64 of {KEY_BYTES} bytes) or \
                 {KEY_FILE_VAR} in production"
            );
            return Ok(Key::generate());
        }
    };
    let bytes = STANDARD
        .decode(encoded.trim())
        .map_err(|e| format!("the signing key is not valid base64: {e}"))?;
    if bytes.len() != KEY_BYTES {
        return Err(format!(
            "the signing key is {} bytes; it must be {KEY_BYTES} (base64 of {KEY_BYTES} random \
             bytes, e.g. `head -c {KEY_BYTES} /dev/urandom | base64 -w0`)",
            bytes.len()
        ));
    }
    Ok(Key::from(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn a_key_from_the_environment_is_used_as_given() {
        let raw = [7u8; KEY_BYTES];
        let encoded = STANDARD.encode(raw);
        let key = signing_key(lookup(&[(KEY_VAR, &encoded)])).unwrap();
        assert_eq!(key.master(), &raw[..]);
    }

    #[test]
    fn a_key_file_is_read() {
        let raw = [9u8; KEY_BYTES];
        let path = std::env::temp_dir().join(format!("demo-actix-key-{}", std::process::id()));
        std::fs::write(&path, format!("{}\n", STANDARD.encode(raw))).unwrap();
        let key = signing_key(lookup(&[(KEY_FILE_VAR, path.to_str().unwrap())]));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(key.unwrap().master(), &raw[..]);
    }

    #[test]
    fn bad_keys_are_refused_not_replaced() {
        let short = STANDARD.encode([1u8; 32]);
        let long = STANDARD.encode([1u8; 64]);
        for vars in [
            vec![(KEY_VAR, short.as_str())],
            vec![(KEY_VAR, "not base64!")],
            vec![(KEY_FILE_VAR, "/nonexistent/key")],
            vec![(KEY_VAR, long.as_str()), (KEY_FILE_VAR, "/some/file")],
        ] {
            assert!(signing_key(lookup(&vars)).is_err(), "{vars:?}");
        }
    }

    #[test]
    fn without_a_key_each_start_makes_its_own() {
        let a = signing_key(lookup(&[])).unwrap();
        let b = signing_key(lookup(&[(KEY_VAR, " ")])).unwrap();
        assert_ne!(a.master(), b.master());
    }
}
