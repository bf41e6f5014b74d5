//! What a save writes.
//!
//! A save never replaces the session wholesale when it can avoid it: given
//! the snapshot of what the request loaded, only keys whose value changed are
//! `$set` and only keys the request removed are `$unset`. Two overlapping
//! requests that change different keys therefore both persist; two that
//! change the same key resolve last-writer-wins for that key alone.
//!
//! Where the stored value is opaque (a JSON string, a custom codec), single
//! keys cannot be updated in place. Then the save is a compare-and-swap on
//! the document's `version`: if another write came first, the store re-reads
//! the session, applies this request's changes to it, and tries again.
//!
//! An unchanged session is a touch (only `expires`/`lastModified`), and
//! inside `touch_after` of the last write not even that.

use std::{collections::HashMap, time::Duration};

use mongodb::{
    bson::{doc, Bson, DateTime, Document},
    options::UpdateModifications,
};
use serde_json::{Map, Value};

pub(crate) use crate::changes::Changes;
use crate::{
    error::Result,
    lifetime::{expires_expression, write_change, write_change_into, LifetimeChange, Stored},
    schema::{unset_user_fields, user_fields, Layout},
    snapshot::Snapshot,
    user::UserInfo,
};
pub(crate) use touch::{plan_touch, touch_update};

mod touch;

/// Inputs of a save decision that are not the session map itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) now: DateTime,
    /// Already capped at the absolute lifetime when the creation time is
    /// known; otherwise see `cap_on_server`.
    pub(crate) expires: DateTime,
    pub(crate) touch_after: Duration,
    /// With an absolute lifetime but no known creation time, the server
    /// caps the expiry from the stored creation time (a pipeline update).
    pub(crate) cap_on_server: Option<Duration>,
    /// Without the session's own lifetime known here (a touch by id), the
    /// server applies the stored one (a pipeline update).
    pub(crate) stored: Option<Stored>,
}

/// What a write does to the owner fields: `None` keeps them, `Some(None)`
/// removes them, `Some(Some(owner))` sets them.
pub(crate) type OwnerChange = Option<Option<UserInfo>>;

/// The update of the changed keys only, plus the stale keys' rewrite when
/// `rewrap` (call it only for a write guarded by the loaded version).
/// `stale` maps keys to the field names they are stored under, which a
/// write or removal of the key must clear.
pub(crate) fn per_key_update(
    layout: &Layout,
    stored_id: &str,
    changes: &Changes<'_>,
    stale: &HashMap<String, String>,
    rewrap: bool,
    clock: Clock,
) -> Document {
    let mut set = Document::new();
    let mut unset = Document::new();
    let rewrites = if rewrap { &changes.rewrap[..] } else { &[] };
    // Every other name of a key goes with a write or a removal of it: the
    // value may have moved since the load (another instance's write, a
    // rewrap), and a key stored under two names reads back as either.
    let others = |key: &str, path: &str| {
        let stale = stale.get(key).map(|f| layout.stored_path(f));
        let path = path.to_string();
        layout
            .other_paths(key)
            .into_iter()
            .chain(stale)
            .filter(move |old| *old != path)
    };
    for (key, value) in changes.set.iter().chain(rewrites) {
        let path = layout.data_path(key);
        for old in others(key, &path) {
            unset.insert(old, "");
        }
        set.insert(path, layout.encode_value(stored_id, key, value));
    }
    for key in &changes.unset {
        let path = layout.data_path(key);
        for old in others(key, &path) {
            unset.insert(old, "");
        }
        unset.insert(path, "");
    }
    write_change(
        &changes.lifetime,
        layout.lifetime_limit,
        &mut set,
        &mut unset,
    );
    set.extend(layout.stamps(clock.expires, clock.now));
    let mut update = Document::new();
    match &changes.user {
        Some(Some(user)) => set.extend(user_fields(user)),
        Some(None) => unset.extend(unset_user_fields()),
        None => {}
    }
    update.insert("$set", set);
    if !unset.is_empty() {
        update.insert("$unset", unset);
    }
    bump_version(layout, &mut update);
    update
}

/// The update replacing the stored values with `values`, and changing the
/// owner and the session's own lifetime as `owner` and `lifetime` say.
pub(crate) fn whole_update(
    layout: &Layout,
    stored_id: &str,
    values: &Map<String, Value>,
    (owner, lifetime): (&OwnerChange, &LifetimeChange),
    clock: Clock,
) -> Result<UpdateModifications> {
    let mut set = layout.stamps(clock.expires, clock.now);
    set.insert(
        &layout.fields.data,
        layout.encode_values(stored_id, values)?,
    );
    let mut update = doc! {};
    match owner {
        Some(Some(user)) => set.extend(user_fields(user)),
        Some(None) => {
            update.insert("$unset", unset_user_fields());
        }
        None => {}
    }
    write_change_into(lifetime, layout.lifetime_limit, &mut set, &mut update);
    update.insert("$set", set);
    bump_version(layout, &mut update);
    Ok(finish(layout, update, clock))
}

/// `update` as sent: as is, or, when the server must cap the expiry or
/// apply the session's stored lifetime, the same update as a pipeline whose
/// expiry the server derives (see `lifetime::expires_expression`).
pub(crate) fn finish(layout: &Layout, update: Document, clock: Clock) -> UpdateModifications {
    let created_at = layout.fields.created_at.as_deref();
    let capped = clock.cap_on_server.is_some() && created_at.is_some();
    if !capped && clock.stored.is_none() {
        return UpdateModifications::Document(update);
    }
    let mut set = Document::new();
    let mut unset = Vec::new();
    for (operator, fields) in update {
        let Bson::Document(fields) = fields else {
            continue;
        };
        for (name, value) in fields {
            match operator.as_str() {
                "$set" if name == layout.fields.expires => {
                    let (cap, stored) = (clock.cap_on_server, clock.stored);
                    let expires = expires_expression(value, clock.now, created_at, cap, stored);
                    set.insert(name, expires);
                }
                "$set" => {
                    set.insert(name, doc! { "$literal": value });
                }
                "$unset" => unset.push(Bson::String(name)),
                "$inc" => {
                    let current = doc! { "$ifNull": [format!("${name}"), 0_i64] };
                    set.insert(name, doc! { "$add": [current, value] });
                }
                _ => {}
            }
        }
    }
    let mut pipeline = vec![doc! { "$set": set }];
    if !unset.is_empty() {
        pipeline.push(doc! { "$unset": unset });
    }
    UpdateModifications::Pipeline(pipeline)
}

fn bump_version(layout: &Layout, update: &mut Document) {
    if let Some(version) = &layout.fields.version {
        update.insert("$inc", doc! { version: 1_i64 });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{codec::Codec, snapshot::split};

    pub(super) fn clock(now: i64, expires: i64, touch_after_secs: u64) -> Clock {
        Clock {
            now: DateTime::from_millis(now),
            expires: DateTime::from_millis(expires),
            touch_after: Duration::from_secs(touch_after_secs),
            cap_on_server: None,
            stored: None,
        }
    }

    pub(super) fn document(update: UpdateModifications) -> Document {
        match update {
            UpdateModifications::Document(document) => document,
            other => panic!("not an operator update: {other:?}"),
        }
    }

    #[test]
    fn only_changed_and_removed_keys_are_written() {
        let loaded = json!({"keep": 1, "change": 2, "drop": 3});
        let snapshot = Snapshot::loaded_at(&loaded, 100, 0);
        let mut map = loaded.as_object().unwrap().clone();
        map.insert("change".into(), json!(20));
        map.insert("add.dotted".into(), json!("x"));
        map.remove("drop");
        let (entries, _) = split(&map);
        let changes = Changes::between(&snapshot, entries);
        let layout = Layout {
            hash_ids: false,
            ..Layout::default()
        };
        let update = per_key_update(
            &layout,
            "id",
            &changes,
            &HashMap::new(),
            false,
            clock(50, 200, 0),
        );
        let set = update.get_document("$set").unwrap();
        assert_eq!(set.get("data.change"), Some(&Bson::Int32(20)));
        assert_eq!(
            set.get("data.add%2Edotted"),
            Some(&Bson::String("x".into()))
        );
        assert!(set.get("data.keep").is_none());
        assert!(update
            .get_document("$unset")
            .unwrap()
            .contains_key("data.drop"));
        assert_eq!(
            update.get_document("$inc").unwrap(),
            &doc! {"version": 1_i64}
        );
    }

    #[test]
    fn opaque_codecs_rewrite_the_whole_value() {
        let layout = Layout {
            codec: Codec::JsonString,
            ..Layout::default()
        };
        let values = json!({"a": 5, "b": 2}).as_object().unwrap().clone();
        let update = document(
            whole_update(
                &layout,
                "id",
                &values,
                (&None, &None),
                clock(2_000, 10_000, 0),
            )
            .unwrap(),
        );
        let data = update.get_document("$set").unwrap().get("data").unwrap();
        assert_eq!(data, &Bson::String(r#"{"a":5,"b":2}"#.into()));
    }

    #[test]
    fn without_a_known_creation_time_the_server_caps_the_expiry() {
        let layout = Layout::default();
        let mut at = clock(2_000, 10_000, 0);
        at.cap_on_server = Some(Duration::from_secs(60));
        let UpdateModifications::Pipeline(stages) = touch_update(&layout, at) else {
            panic!("a pipeline")
        };
        let set = stages[0].get_document("$set").unwrap();
        assert_eq!(
            set.get_document("expires").unwrap(),
            &doc! {"$min": [
                DateTime::from_millis(10_000),
                {"$toDate": {"$add": [{"$toLong": "$createdAt"}, 60_000_i64]}},
            ]}
        );
        let owner = Some(None);
        let values = Map::new();
        let UpdateModifications::Pipeline(stages) =
            whole_update(&layout, "id", &values, (&owner, &None), at).unwrap()
        else {
            panic!("a pipeline")
        };
        assert_eq!(
            stages[1],
            doc! {"$unset": ["user", "userAgent", "ip"]},
            "the owner goes too"
        );
        let set = stages[0].get_document("$set").unwrap();
        assert_eq!(
            set.get_document("version").unwrap(),
            &doc! {"$add": [{"$ifNull": ["$version", 0_i64]}, 1_i64]}
        );
    }

    #[test]
    fn a_write_of_a_key_stored_under_an_older_name_removes_that_name() {
        let layout = Layout {
            encryption: Some(crate::KeyRing::new(1, [1u8; 32]).unwrap()),
            ..Layout::default()
        };
        let loaded = json!({"a": 1, "b": 2, "c": 3});
        let mut snapshot = Snapshot::loaded_at(&loaded, 100, 0);
        for key in ["a", "b", "c"] {
            snapshot.stale.insert(key.into(), format!("old-{key}"));
        }
        let mut map = loaded.as_object().unwrap().clone();
        map.insert("a".into(), json!(10));
        map.remove("b");
        let changes = Changes::between(&snapshot, split(&map).0);
        assert_eq!(changes.rewrap.len(), 1, "c is untouched but stale");
        let plain = per_key_update(
            &layout,
            "id",
            &changes,
            &snapshot.stale,
            false,
            clock(1, 2, 0),
        );
        let unset = plain.get_document("$unset").unwrap();
        assert!(unset.contains_key("data.old-a") && unset.contains_key("data.old-b"));
        assert!(
            !unset.contains_key("data.old-c"),
            "only a guarded write rewraps"
        );
        let guarded = per_key_update(
            &layout,
            "id",
            &changes,
            &snapshot.stale,
            true,
            clock(1, 2, 0),
        );
        assert!(guarded
            .get_document("$unset")
            .unwrap()
            .contains_key("data.old-c"));
        // Two values, the expiry, the modification time, the format.
        assert_eq!(guarded.get_document("$set").unwrap().len(), 2 + 3);
    }
}
