//! The tracking entry as one string: written once per load with a single
//! allocation, read back by the save without one allocation per key.
//!
//! ```text
//! mss2;e<expires>;m<modified>;c<created>;n<version>;f<format>;i<idle ms>;a<absolute ms>;
//!     u<owner fingerprint>;h<len>:<handle>;l<len>:<lineage>;|<keys>[/<stale keys>]
//! ```
//!
//! Numbers are decimal, the owner's fingerprint hexadecimal; fields other
//! than `e` are left out when absent. `<keys>` is, per loaded key, its
//! value's fingerprint as 16 hexadecimal digits and `<len>:<key>`; the
//! optional stale section is, per key stored the old way, `<len>:<key>` and
//! `<len>:<field name>`. Texts are length-prefixed (in bytes), so a key may
//! hold any character, including the separators.
//!
//! Why a string and not a JSON object: the object cost one allocation per
//! key and per field on every load (31 for a 12-key session), and as many
//! again to read it back on every save; a string is one allocation each
//! way, and the fingerprints are read where they are.

use std::{fmt::Write, time::Duration};

use crate::lifetime::SessionLifetime;

const MAGIC: &str = "mss2;";

/// Everything a load records besides the per-key fingerprints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Head<'a> {
    pub(crate) expires: i64,
    pub(crate) last_modified: Option<i64>,
    pub(crate) created_at: Option<i64>,
    pub(crate) version: Option<i64>,
    pub(crate) format: i64,
    pub(crate) lifetime: Option<SessionLifetime>,
    pub(crate) user: Option<u64>,
    pub(crate) handle: Option<&'a str>,
    pub(crate) lineage: Option<&'a str>,
}

/// Writes `head` and the `|` that ends it; the caller appends the keys.
pub(crate) fn write_head(out: &mut String, head: &Head<'_>) {
    out.push_str(MAGIC);
    let numbers = [
        ('e', Some(head.expires)),
        ('m', head.last_modified),
        ('c', head.created_at),
        ('n', head.version),
        ('f', (head.format != 1).then_some(head.format)),
    ];
    for (tag, value) in numbers {
        if let Some(value) = value {
            let _ = write!(out, "{tag}{value};");
        }
    }
    if let Some(lifetime) = head.lifetime {
        for (tag, duration) in [
            ('i', lifetime.idle_timeout),
            ('a', lifetime.absolute_timeout),
        ] {
            if let Some(duration) = duration {
                let _ = write!(out, "{tag}{};", duration.as_millis());
            }
        }
    }
    if let Some(user) = head.user {
        let _ = write!(out, "u{user:x};");
    }
    for (tag, text) in [('h', head.handle), ('l', head.lineage)] {
        if let Some(text) = text {
            out.push(tag);
            push_name(out, text);
            out.push(';');
        }
    }
    out.push('|');
}

/// Reads an entry's head; the head and the text after its `|`. `None` for
/// anything that is not an entry.
pub(crate) fn read_head(entry: &str) -> Option<(Head<'_>, &str)> {
    let mut rest = entry.strip_prefix(MAGIC)?;
    let mut head = Head {
        format: 1,
        ..Head::default()
    };
    let mut expires = None;
    let mut lifetime = SessionLifetime::default();
    loop {
        let mut chars = rest.chars();
        let tag = chars.next()?;
        rest = chars.as_str();
        if tag == '|' {
            break;
        }
        if let 'h' | 'l' = tag {
            let (text, after) = take_name(rest)?;
            rest = after.strip_prefix(';')?;
            *(if tag == 'h' {
                &mut head.handle
            } else {
                &mut head.lineage
            }) = Some(text);
            continue;
        }
        let (value, after) = rest.split_once(';')?;
        rest = after;
        let number = || value.parse::<i64>().ok();
        let millis = || value.parse::<u64>().ok().map(Duration::from_millis);
        match tag {
            'e' => expires = Some(number()?),
            'm' => head.last_modified = Some(number()?),
            'c' => head.created_at = Some(number()?),
            'n' => head.version = Some(number()?),
            'f' => head.format = number()?,
            'i' => lifetime.idle_timeout = Some(millis()?),
            'a' => lifetime.absolute_timeout = Some(millis()?),
            'u' => head.user = Some(u64::from_str_radix(value, 16).ok()?),
            _ => return None,
        }
    }
    head.expires = expires?;
    head.lifetime = (!lifetime.is_empty()).then_some(lifetime);
    Some((head, rest))
}

/// Appends `<len>:<name>`.
pub(crate) fn push_name(out: &mut String, name: &str) {
    let _ = write!(out, "{}:", name.len());
    out.push_str(name);
}

/// A length-prefixed name (`<len>:<name>`) at the start of `text`, and the
/// rest.
pub(crate) fn take_name(text: &str) -> Option<(&str, &str)> {
    let (len, rest) = text.split_once(':')?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: usize = len.parse().ok()?;
    let name = rest.get(..len)?;
    Some((name, &rest[len..]))
}

/// Appends a fingerprint as 16 hexadecimal digits.
pub(crate) fn push_print(out: &mut String, print: u64) {
    let _ = write!(out, "{print:016x}");
}

/// A 16-digit hexadecimal fingerprint at the start of `text`, and the rest.
pub(crate) fn take_print(text: &str) -> Option<(u64, &str)> {
    let digits = text.get(..16)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((u64::from_str_radix(digits, 16).ok()?, &text[16..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_reads_back_as_written() {
        let full = Head {
            expires: 10,
            last_modified: Some(5),
            created_at: Some(-3),
            version: Some(7),
            format: 2,
            lifetime: Some(SessionLifetime::new().idle_timeout(Duration::from_secs(9))),
            user: Some(u64::MAX),
            handle: Some("a;b|c:"),
            lineage: Some("l"),
        };
        let bare = Head {
            format: 1,
            ..Head::default()
        };
        for head in [full, bare] {
            let mut entry = String::new();
            write_head(&mut entry, &head);
            entry.push_str("rest");
            assert_eq!(read_head(&entry), Some((head, "rest")));
        }
    }

    #[test]
    fn anything_else_is_no_entry() {
        for bad in [
            "",
            "mss2;",
            "mss2;|",
            "mss2;m1;|",
            "mss1;e1;|",
            "mss2;e1;z1;|",
            "mss2;ex;|",
            "mss2;e1;h9:ab;|",
            "mss2;e1;h+1:a;|",
        ] {
            assert_eq!(read_head(bad), None, "{bad:?}");
        }
        assert_eq!(take_name("3:ab"), None);
        assert_eq!(take_name("2:ab-"), Some(("ab", "-")));
        assert_eq!(take_print("000000000000000g"), None);
        assert_eq!(take_print("00000000000000ffx"), Some((255, "x")));
    }
}
