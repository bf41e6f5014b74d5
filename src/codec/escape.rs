//! Reversible escaping of session keys into MongoDB field names.
//!
//! The write path updates single keys with `$set: {"data.<key>": …}`. A key
//! containing `.` would be read as a path, one starting with `$` as an
//! operator, and an empty key cannot be addressed at all; BSON field names
//! cannot contain NUL. Escaping those characters (and `%`, the escape
//! character itself) percent-style keeps every ordinary key byte-for-byte
//! the same, so documents stay readable and queryable, and works on every
//! server version (unlike `$setField`, which needs MongoDB 5.0).
//!
//! The empty key is stored as a lone `%`: every `%` an escape produces is
//! followed by two hex digits, so a lone `%` cannot come from any other key.

use std::borrow::Cow;

const EMPTY_KEY: &str = "%";

/// The field name under which `key` is stored.
pub(crate) fn escape_key(key: &str) -> Cow<'_, str> {
    if key.is_empty() {
        return Cow::Borrowed(EMPTY_KEY);
    }
    if !key.bytes().any(needs_escape) {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len() + 6);
    for ch in key.chars() {
        match ch {
            '%' => out.push_str("%25"),
            '.' => out.push_str("%2E"),
            '$' => out.push_str("%24"),
            '\0' => out.push_str("%00"),
            other => out.push(other),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(byte: u8) -> bool {
    matches!(byte, b'%' | b'.' | b'$' | b'\0')
}

/// The session key stored under `field`, or `None` if `field` is not
/// something [`escape_key`] produces.
pub(crate) fn unescape_key(field: &str) -> Option<Cow<'_, str>> {
    if field == EMPTY_KEY {
        return Some(Cow::Borrowed(""));
    }
    if !field.contains('%') {
        return (!field.bytes().any(needs_escape)).then_some(Cow::Borrowed(field));
    }
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let decoded = match rest.get(at + 1..at + 3)? {
            "25" => '%',
            "2E" => '.',
            "24" => '$',
            "00" => '\0',
            _ => return None,
        };
        out.push(decoded);
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_keys_are_unchanged() {
        for key in ["user", "cart_items", "Ünïcode", "a-b:c"] {
            assert!(matches!(escape_key(key), Cow::Borrowed(k) if k == key));
            assert_eq!(unescape_key(key).unwrap(), key);
        }
    }

    #[test]
    fn special_keys_round_trip_and_are_safe_field_names() {
        let long = "k".repeat(1000);
        for key in [
            "a.b",
            "$x",
            "",
            "%",
            "%25",
            "50%.$",
            "\0",
            "a%2Eb",
            long.as_str(),
        ] {
            let field = escape_key(key);
            assert!(!field.contains('.') && !field.starts_with('$') && !field.is_empty());
            assert!(!field.contains('\0'));
            assert_eq!(unescape_key(&field).as_deref(), Some(key), "{key:?}");
        }
    }

    #[test]
    fn foreign_field_names_are_rejected() {
        for field in ["a.b", "$x", "%zz", "%2", "bad%"] {
            assert_eq!(unescape_key(field), None, "{field:?}");
        }
    }
}
