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
    schema::{unset_user_fields, user_fields, Layout},
    snapshot::Snapshot,
    user::UserInfo,
};

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
/// owner as `owner` says.
pub(crate) fn whole_update(
    layout: &Layout,
    stored_id: &str,
    values: &Map<String, Value>,
    owner: &OwnerChange,
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
    update.insert("$set", set);
    bump_version(layout, &mut update);
    Ok(finish(layout, update, clock))
}

/// `update` as sent: as is, or, when the server must cap the expiry, the
/// same update as a pipeline whose expiry is the earlier of the asked one
/// and the stored creation time plus the absolute lifetime.
pub(crate) fn finish(layout: &Layout, update: Document, clock: Clock) -> UpdateModifications {
    let (Some(lifetime), Some(created_at)) = (clock.cap_on_server, &layout.fields.created_at)
    else {
        return UpdateModifications::Document(update);
    };
    let lifetime_ms = i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX);
    let mut set = Document::new();
    let mut unset = Vec::new();
    for (operator, fields) in update {
        let Bson::Document(fields) = fields else {
            continue;
        };
        for (name, value) in fields {
            match operator.as_str() {
                "$set" if name == layout.fields.expires => {
                    // Date arithmetic through milliseconds: `$add` on a date is
                    // not understood by every MongoDB-wire server.
                    let born = doc! { "$toLong": format!("${created_at}") };
                    let cap = doc! { "$toDate": { "$add": [born, lifetime_ms] } };
                    set.insert(name, doc! { "$min": [value, cap] });
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

/// The touch of an unchanged session, or `None` if it is not due.
pub(crate) fn plan_touch(
    layout: &Layout,
    snapshot: &Snapshot,
    clock: Clock,
) -> Option<UpdateModifications> {
    let expires = clock.expires.timestamp_millis();
    let shortened = expires < snapshot.expires;
    if !shortened && (expires == snapshot.expires || within_touch_after(snapshot, clock)) {
        return None;
    }
    Some(touch_update(layout, clock))
}

/// Moves only the expiry and the modification time.
pub(crate) fn touch_update(layout: &Layout, clock: Clock) -> UpdateModifications {
    finish(
        layout,
        doc! { "$set": layout.stamps(clock.expires, clock.now) },
        clock,
    )
}

fn within_touch_after(snapshot: &Snapshot, clock: Clock) -> bool {
    let window = i64::try_from(clock.touch_after.as_millis()).unwrap_or(i64::MAX);
    match snapshot.last_modified {
        Some(last) if window > 0 => clock.now.timestamp_millis().saturating_sub(last) < window,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{codec::Codec, snapshot::split};

    fn clock(now: i64, expires: i64, touch_after_secs: u64) -> Clock {
        Clock {
            now: DateTime::from_millis(now),
            expires: DateTime::from_millis(expires),
            touch_after: Duration::from_secs(touch_after_secs),
            cap_on_server: None,
        }
    }

    fn document(update: UpdateModifications) -> Document {
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
        let update =
            document(whole_update(&layout, "id", &values, &None, clock(2_000, 10_000, 0)).unwrap());
        let data = update.get_document("$set").unwrap().get("data").unwrap();
        assert_eq!(data, &Bson::String(r#"{"a":5,"b":2}"#.into()));
    }

    #[test]
    fn unchanged_sessions_touch_only_outside_touch_after() {
        let layout = Layout::default();
        let snapshot = Snapshot::loaded_at(&json!({"a": 1}), 10_000, 1_000);
        // 30 s after the last write, with touch_after = 60 s: no write.
        assert!(plan_touch(&layout, &snapshot, clock(31_000, 90_000, 60)).is_none());
        // 61 s after: a touch that sets only the stamps.
        let update = document(plan_touch(&layout, &snapshot, clock(62_000, 90_000, 60)).unwrap());
        let set = update.get_document("$set").unwrap();
        assert!(!set.contains_key("data") && !update.contains_key("$inc"));
        // touch_after = 0: every request with a later expiry touches.
        assert!(plan_touch(&layout, &snapshot, clock(2_000, 10_001, 0)).is_some());
        // The same expiry: nothing to do.
        assert!(plan_touch(&layout, &snapshot, clock(2_000, 10_000, 0)).is_none());
        // A shorter expiry is always written, even inside touch_after.
        assert!(plan_touch(&layout, &snapshot, clock(2_000, 5_000, 60)).is_some());
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
            whole_update(&layout, "id", &values, &owner, at).unwrap()
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
        assert_eq!(guarded.get_document("$set").unwrap().len(), 2 + 2);
    }
}
