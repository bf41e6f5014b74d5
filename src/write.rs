//! What a save writes.
//!
//! A save never replaces the session wholesale when it can avoid it: given
//! the snapshot of what the request loaded, only keys whose value changed are
//! `$set` and only keys the request removed are `$unset`. Two overlapping
//! requests that change different keys therefore both persist; two that
//! change the same key resolve last-writer-wins for that key alone.
//!
//! An unchanged session is a touch (only `expires`/`lastModified`), and
//! inside `touch_after` of the last write not even that.

use std::time::Duration;

use mongodb::bson::{doc, DateTime, Document};
use serde_json::{Map, Value};

use crate::{
    codec::value_to_bson,
    error::Result,
    schema::Layout,
    snapshot::{split, Snapshot, UserEntries},
};

/// The write a save needs.
#[derive(Debug, PartialEq)]
pub(crate) enum Plan {
    /// Some data changed: this update document.
    Update(Document),
    /// Only the expiry moves.
    Touch(Document),
    /// Nothing to write.
    Skip,
}

/// Inputs of a save decision that are not the session map itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) now: DateTime,
    pub(crate) expires: DateTime,
    pub(crate) touch_after: Duration,
}

pub(crate) fn plan_save(layout: &Layout, data: &Map<String, Value>, clock: Clock) -> Result<Plan> {
    let (entries, snapshot) = split(data);
    let Some(snapshot) = snapshot else {
        // No record of what was loaded: the caller's map is the whole truth.
        return whole(layout, entries, clock);
    };
    if !layout.codec.per_key() {
        return if snapshot.any_change(entries) {
            whole(layout, entries, clock)
        } else {
            Ok(plan_touch(layout, &snapshot, clock))
        };
    }
    let fields = &layout.fields;
    let mut set = Document::new();
    for (key, value) in entries.iter() {
        if snapshot.changed(key, value) {
            set.insert(fields.data_path(key), value_to_bson(value));
        }
    }
    let mut unset = Document::new();
    for key in snapshot.fingerprints.keys() {
        if !entries.contains(key) {
            unset.insert(fields.data_path(key), "");
        }
    }

    if set.is_empty() && unset.is_empty() {
        return Ok(plan_touch(layout, &snapshot, clock));
    }
    set.extend(layout.stamps(clock.expires, clock.now));
    let mut update = doc! { "$set": set };
    if !unset.is_empty() {
        update.insert("$unset", unset);
    }
    Ok(Plan::Update(update))
}

/// Replaces the stored values with `entries`.
fn whole(layout: &Layout, entries: UserEntries<'_>, clock: Clock) -> Result<Plan> {
    let mut set = layout.stamps(clock.expires, clock.now);
    set.insert(&layout.fields.data, layout.codec.encode(&entries.to_map())?);
    Ok(Plan::Update(doc! { "$set": set }))
}

/// The touch of an unchanged session, or nothing if it is not due.
fn plan_touch(layout: &Layout, snapshot: &Snapshot, clock: Clock) -> Plan {
    let expires = clock.expires.timestamp_millis();
    let shortened = expires < snapshot.expires;
    if !shortened && (expires == snapshot.expires || within_touch_after(snapshot, clock)) {
        return Plan::Skip;
    }
    Plan::Touch(doc! { "$set": layout.stamps(clock.expires, clock.now) })
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

    use mongodb::bson::Bson;

    use super::*;
    use crate::{codec::Codec, snapshot::RESERVED_KEY};

    fn clock(now: i64, expires: i64, touch_after_secs: u64) -> Clock {
        Clock {
            now: DateTime::from_millis(now),
            expires: DateTime::from_millis(expires),
            touch_after: Duration::from_secs(touch_after_secs),
        }
    }

    fn loaded(data: Value, expires: i64, last_modified: i64) -> Map<String, Value> {
        let mut snapshot = Snapshot::of(data.as_object().unwrap());
        snapshot.expires = expires;
        snapshot.last_modified = Some(last_modified);
        let mut map = data.as_object().unwrap().clone();
        map.insert(RESERVED_KEY.into(), snapshot.to_value());
        map
    }

    #[test]
    fn only_changed_and_removed_keys_are_written() {
        let mut map = loaded(json!({"keep": 1, "change": 2, "drop": 3}), 100, 0);
        map.insert("change".into(), json!(20));
        map.insert("add.dotted".into(), json!("x"));
        map.remove("drop");
        let Plan::Update(update) = plan_save(&Layout::default(), &map, clock(50, 200, 0)).unwrap()
        else {
            panic!("expected an update");
        };
        let set = update.get_document("$set").unwrap();
        assert_eq!(set.get("data.change"), Some(&Bson::Int32(20)));
        assert_eq!(
            set.get("data.add%2Edotted"),
            Some(&Bson::String("x".into()))
        );
        assert!(set.get("data.keep").is_none() && set.get(RESERVED_KEY).is_none());
        assert!(update
            .get_document("$unset")
            .unwrap()
            .contains_key("data.drop"));
    }

    #[test]
    fn without_a_snapshot_the_whole_session_is_replaced() {
        let map = json!({"a": 1}).as_object().unwrap().clone();
        let Plan::Update(update) = plan_save(&Layout::default(), &map, clock(0, 10, 0)).unwrap()
        else {
            panic!("expected an update");
        };
        assert_eq!(
            update
                .get_document("$set")
                .unwrap()
                .get_document("data")
                .unwrap(),
            &doc! {"a": 1}
        );
    }

    #[test]
    fn unchanged_sessions_touch_only_outside_touch_after() {
        let layout = Layout::default();
        let plan = |map: &Map<String, Value>, c| plan_save(&layout, map, c).unwrap();
        let map = loaded(json!({"a": 1}), 10_000, 1_000);
        // 30 s after the last write, with touch_after = 60 s: no write.
        assert_eq!(plan(&map, clock(31_000, 90_000, 60)), Plan::Skip);
        // 61 s after: a touch that sets only the stamps.
        let Plan::Touch(update) = plan(&map, clock(62_000, 90_000, 60)) else {
            panic!("expected a touch");
        };
        assert!(!update.get_document("$set").unwrap().contains_key("data"));
        // touch_after = 0: every request with a later expiry touches.
        assert!(matches!(
            plan(&map, clock(2_000, 10_001, 0)),
            Plan::Touch(_)
        ));
        // The same expiry: nothing to do.
        assert_eq!(plan(&map, clock(2_000, 10_000, 0)), Plan::Skip);
        // A shorter expiry is always written, even inside touch_after.
        assert!(matches!(
            plan(&map, clock(2_000, 5_000, 60)),
            Plan::Touch(_)
        ));
    }

    #[test]
    fn opaque_codecs_rewrite_the_whole_value_but_still_skip_unchanged_saves() {
        let layout = Layout {
            codec: Codec::JsonString,
            ..Layout::default()
        };
        let mut map = loaded(json!({"a": 1, "b": 2}), 10_000, 1_000);
        assert_eq!(
            plan_save(&layout, &map, clock(2_000, 10_000, 0)).unwrap(),
            Plan::Skip
        );
        map.insert("a".into(), json!(5));
        let Plan::Update(update) = plan_save(&layout, &map, clock(2_000, 10_000, 0)).unwrap()
        else {
            panic!("expected an update");
        };
        let data = update.get_document("$set").unwrap().get("data").unwrap();
        assert_eq!(data, &Bson::String(r#"{"a":5,"b":2}"#.into()));
    }
}
