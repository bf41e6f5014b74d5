//! actix-session's values as JSON text: per key loaded, the fingerprint of
//! the text the load handed actix-session and the bytes the value takes as
//! stored. An update then parses only the values whose text changed: an
//! unchanged text is an unchanged value, and its size is known without it.
//!
//! The section follows the tracking entry's other sections after a `~`
//! (see `entry.rs`); per key: the fingerprint as 16 hexadecimal digits, the
//! size in decimal and a comma, then `<len>:<key>`.

use std::{
    collections::hash_map::RandomState,
    fmt::Write,
    hash::{BuildHasher, Hasher},
    sync::OnceLock,
};

use super::entry::{push_name, push_print, take_name, take_print};

/// Per-key text fingerprints and stored sizes, found by binary search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Texts {
    text: String,
    /// Per key: where its name is in `text`, its length, the text's
    /// fingerprint, the value's stored size.
    index: Vec<(usize, usize, u64, usize)>,
}

// Written and read by the actix-session adapter only; parsed by every save.
#[cfg_attr(not(feature = "actix-session"), allow(dead_code))]
impl Texts {
    /// Appends the record of `key`, whose value's text is `text` and takes
    /// `size` bytes as stored, to an entry's texts section.
    pub(crate) fn push(out: &mut String, key: &str, text: &str, size: usize) {
        push_print(out, text_fingerprint(text));
        let _ = write!(out, "{size},");
        push_name(out, key);
    }

    /// Reads a texts section (all of `text`); `None` if it is malformed.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let mut index = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let (print, after) = take_print(rest)?;
            let (size, after) = after.split_once(',')?;
            if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let (name, after) = take_name(after)?;
            let start = text.len() - after.len() - name.len();
            index.push((start, name.len(), print, size.parse().ok()?));
            rest = after;
        }
        index.sort_unstable_by(|a, b| text[a.0..a.0 + a.1].cmp(&text[b.0..b.0 + b.1]));
        Some(Self {
            text: text.to_string(),
            index,
        })
    }

    /// The section as an entry carries it.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The stored size of `key`'s value if `text` is still the text it
    /// was loaded as; `None`: changed, or not loaded.
    pub(crate) fn unchanged(&self, key: &str, text: &str) -> Option<usize> {
        let at = self
            .index
            .binary_search_by(|&(start, len, ..)| self.text[start..start + len].cmp(key))
            .ok()?;
        let (.., print, size) = self.index[at];
        (print == text_fingerprint(text)).then_some(size)
    }
}

/// A keyed hash of a value's JSON text, keyed per process like the
/// values' fingerprints (see `snapshot::fingerprint`).
#[cfg_attr(not(feature = "actix-session"), allow(dead_code))]
fn text_fingerprint(text: &str) -> u64 {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    let mut hasher = KEYS.get_or_init(RandomState::new).build_hasher();
    hasher.write(text.as_bytes());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_text_gives_its_size_and_a_changed_one_nothing() {
        let mut section = String::new();
        Texts::push(&mut section, "b", "[1,2]", 30);
        Texts::push(&mut section, "a:~/,", "\"x\"", 12);
        let texts = Texts::parse(&section).unwrap();
        assert_eq!(texts.text(), section);
        assert_eq!(texts.unchanged("b", "[1,2]"), Some(30));
        assert_eq!(texts.unchanged("a:~/,", "\"x\""), Some(12));
        assert_eq!(texts.unchanged("b", "[1,3]"), None);
        assert_eq!(texts.unchanged("c", "[1,2]"), None);
        for bad in [
            "0000000000000001",
            "0000000000000001,1:a",
            "00000000000000011,1:",
        ] {
            assert_eq!(Texts::parse(bad), None, "{bad:?}");
        }
    }
}
