//! The fingerprint of each key's value as loaded, kept in the text the
//! tracking entry carries them in (see `entry.rs`): two allocations
//! whatever the number of keys, where a map cost one per key.

use serde_json::Value;

use super::{
    entry::{push_name, push_print, take_name, take_print},
    fingerprint,
};

/// Per-key fingerprints, looked up by binary search over an index sorted
/// by key (a session of thousands of keys stays O(n log n) to compare).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Prints {
    /// Per key: its fingerprint as 16 hexadecimal digits, then `<len>:<key>`.
    text: String,
    /// Per key: where its name is in `text`, its length, its fingerprint.
    index: Vec<(usize, usize, u64)>,
}

impl Prints {
    /// Fingerprints every entry.
    pub(crate) fn of<'a>(entries: impl ExactSizeIterator<Item = (&'a String, &'a Value)>) -> Self {
        let mut prints = Self {
            // Per key: 16 digits, a length, a colon and the key (most are short).
            text: String::with_capacity(entries.len() * 32),
            index: Vec::with_capacity(entries.len()),
        };
        for (key, value) in entries {
            let print = fingerprint(value);
            push_print(&mut prints.text, print);
            push_name(&mut prints.text, key);
            let start = prints.text.len() - key.len();
            prints.index.push((start, key.len(), print));
        }
        prints.sort();
        prints
    }

    /// Reads the records at the start of `text` (up to a `/`, a `~` or the end);
    /// the prints and what follows them. `None` if they are malformed.
    pub(crate) fn parse(text: &str) -> Option<(Self, &str)> {
        // A record starts with hexadecimal digits, so a `/` or `~` there
        // is the end (a key may hold one: it is read by its length).
        let mut index = Vec::new();
        let mut rest = text;
        while !rest.is_empty() && !rest.starts_with(['/', '~']) {
            let (print, after) = take_print(rest)?;
            let (name, after) = take_name(after)?;
            let start = text.len() - after.len() - name.len();
            index.push((start, name.len(), print));
            rest = after;
        }
        let end = text.len() - rest.len();
        let mut prints = Self {
            text: text[..end].to_string(),
            index,
        };
        prints.sort();
        Some((prints, rest))
    }

    fn sort(&mut self) {
        let Self { text, index } = self;
        index.sort_unstable_by(|a, b| name(text, a).cmp(name(text, b)));
    }

    /// The records, as the tracking entry carries them.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The fingerprint of `key`'s value as loaded; `None`: it was absent.
    pub(crate) fn get(&self, key: &str) -> Option<u64> {
        let at = self
            .index
            .binary_search_by(|entry| name(&self.text, entry).cmp(key))
            .ok()?;
        Some(self.index[at].2)
    }

    /// The keys as loaded.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.index.iter().map(|entry| name(&self.text, entry))
    }
}

fn name<'t>(text: &'t str, &(start, len, _): &(usize, usize, u64)) -> &'t str {
    &text[start..start + len]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn prints_read_back_as_written_and_are_found_by_key() {
        let data = json!({"b": 1, "a": [true], "": null, "x:1|/;": "v", "é": {"k": 2}});
        let map = data.as_object().unwrap();
        let prints = Prints::of(map.iter());
        let mut text = prints.text().to_string();
        text.push_str("/tail");
        let (back, rest) = Prints::parse(&text).unwrap();
        assert_eq!(back, prints);
        assert_eq!(rest, "/tail");
        assert_eq!(back.keys().count(), 5);
        for (key, value) in map {
            assert_eq!(back.get(key), Some(fingerprint(value)), "{key:?}");
        }
        assert_eq!(back.get("c"), None);
        let mut keys: Vec<_> = back.keys().collect();
        keys.sort_unstable();
        assert_eq!(keys, ["", "a", "b", "x:1|/;", "é"]);
    }

    #[test]
    fn malformed_records_are_refused() {
        for bad in [
            "00",
            "0000000000000001",
            "00000000000000011:",
            "0000000000000001x:a",
        ] {
            assert_eq!(Prints::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Prints::parse("").map(|(p, _)| p.keys().count()), Some(0));
    }
}
