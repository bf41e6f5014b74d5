//! What a request changed relative to what it loaded: the keys to set and
//! remove, the owner, the session's own lifetime, and the values stored the old way worth rewriting.

use serde_json::{Map, Value};

use crate::{
    lifetime::LifetimeChange,
    snapshot::{Snapshot, UserEntries},
    user::UserInfo,
    write::OwnerChange,
};

/// What a request changed relative to what it loaded.
#[derive(Debug, Default)]
pub(crate) struct Changes<'a> {
    pub(crate) set: Vec<(&'a String, &'a Value)>,
    pub(crate) unset: Vec<&'a str>,
    /// `Some` when the owner entry changed: the new owner, or none.
    pub(crate) user: OwnerChange,
    /// `Some` when the session's own lifetime changed: the new one, or none.
    pub(crate) lifetime: LifetimeChange,
    /// Keys the request left alone that are stored as an older version
    /// stored them: worth rewriting, but only where that cannot overwrite
    /// another request's change.
    pub(crate) rewrap: Vec<(&'a String, &'a Value)>,
}

impl<'a> Changes<'a> {
    pub(crate) fn between(snapshot: &'a Snapshot, entries: UserEntries<'a>) -> Self {
        let set = entries
            .iter()
            .filter(|(key, value)| snapshot.changed(key, value))
            .collect();
        let unset = snapshot
            .fingerprints
            .keys()
            .filter(|key| !entries.contains(key))
            .collect();
        let entry = entries.user_entry();
        let user = snapshot
            .user_changed(entry)
            .then(|| entry.and_then(UserInfo::from_value));
        let lifetime = entries.lifetime();
        let lifetime = (lifetime != snapshot.lifetime).then_some(lifetime);
        let rewrap = entries
            .iter()
            .filter(|(key, value)| {
                snapshot.stale.contains_key(key.as_str()) && !snapshot.changed(key, value)
            })
            .collect();
        Self {
            set,
            unset,
            user,
            lifetime,
            rewrap,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.unset.is_empty()
            && self.user.is_none()
            && self.lifetime.is_none()
    }

    /// The keys this request wrote or removed.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.set
            .iter()
            .map(|(k, _)| k.as_str())
            .chain(self.unset.iter().copied())
    }

    /// `current` with these changes applied.
    pub(crate) fn apply_to(&self, mut current: Map<String, Value>) -> Map<String, Value> {
        for (key, value) in &self.set {
            current.insert((*key).clone(), (*value).clone());
        }
        for key in &self.unset {
            current.remove(*key);
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::snapshot::split;

    #[test]
    fn changes_merge_onto_what_another_request_wrote() {
        let loaded = json!({"a": 1, "b": 1, "gone": 1});
        let snapshot = Snapshot::loaded_at(&loaded, 100, 0);
        let mut map = loaded.as_object().unwrap().clone();
        map.insert("a".into(), json!(2));
        map.remove("gone");
        let changes = Changes::between(&snapshot, split(&map).0);
        let theirs = json!({"a": 1, "b": 5, "gone": 1, "new": 7});
        let merged = changes.apply_to(theirs.as_object().unwrap().clone());
        assert_eq!(Value::Object(merged), json!({"a": 2, "b": 5, "new": 7}));
        assert_eq!(changes.keys().count(), 2);
    }
}
