//! What a save will send, decided in one pure function from what the
//! request loaded, what it holds now, the options and the clock. The store
//! only carries the plan out (see `store/save.rs`): change detection, the
//! reserved-key and size checks, the expiry cap (in [`Clock`]), per-key
//! versus whole versus compare-and-swap, the owner fields and the session's
//! own lifetime are all decided here, where they are unit-tested without a
//! server.

use mongodb::{bson::Document, options::UpdateModifications};
use serde_json::{Map, Value};

use crate::{
    error::Result,
    lifetime::AsLoaded,
    outcome::SaveOutcome,
    schema::Layout,
    snapshot::{Snapshot, UserEntries},
    user::UserInfo,
    write::{per_key_update, plan_touch, whole_update, Changes, Clock},
};

/// What a save is given.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SaveInput<'a> {
    pub(crate) layout: &'a Layout,
    pub(crate) stored_id: &'a str,
    /// The session map, without the store's tracking entry.
    pub(crate) entries: UserEntries<'a>,
    /// What the request loaded, when the map carries it.
    pub(crate) snapshot: Option<&'a Snapshot>,
    /// The values as the layout's rules rewrote them (the Express
    /// layouts), written whole instead of `entries`.
    pub(crate) ruled: Option<&'a Map<String, Value>>,
    pub(crate) clock: Clock,
    /// `ConflictPolicy::Fail`.
    pub(crate) strict: bool,
    pub(crate) max_session_bytes: usize,
}

/// What a save sends.
#[derive(Debug)]
pub(crate) enum SavePlan<'a> {
    /// Nothing: unchanged, and no touch is due.
    Nothing,
    /// Updates of the live session: `guarded`, if any, first and only while
    /// the document's version is the one loaded (it also rewrites values
    /// stored the old way, which must never overwrite another request's
    /// change); otherwise `then`, if any. Either succeeding is `outcome`.
    /// With `as_loaded`, `then`'s expiry was computed from the lifetime the
    /// session had when loaded, and is only written while it still has it.
    Write {
        guarded: Option<Document>,
        then: Option<UpdateModifications>,
        outcome: SaveOutcome,
        as_loaded: Option<AsLoaded>,
    },
    /// A compare-and-swap on the version, merged onto what another request
    /// wrote if one came first (opaque codecs, `ConflictPolicy::Fail`).
    Swap {
        changes: Changes<'a>,
        loaded: &'a Snapshot,
    },
}

/// Plans a save.
///
/// # Errors
///
/// A reserved key the store's API did not put there, a session over the
/// size limit or nested too deep, a codec failure, a lifetime of its own
/// this store cannot store (see `Layout::may_store_lifetime`).
pub(crate) fn plan_save<'a>(input: &SaveInput<'a>) -> Result<SavePlan<'a>> {
    let SaveInput {
        layout,
        stored_id,
        entries,
        clock,
        ..
    } = *input;
    entries.check_reserved()?;
    let whole = |values: &Map<String, Value>| -> Result<SavePlan<'a>> {
        entries.check_size(input.max_session_bytes, layout.encryption.is_some())?;
        // The map is the whole truth, the owner and the lifetime included.
        let owner = Some(entries.user_entry().and_then(UserInfo::from_value));
        let lifetime = Some(entries.lifetime());
        if let Some(Some(own)) = lifetime {
            layout.may_store_lifetime(own, input.snapshot.map(|s| s.format))?;
        }
        let update = whole_update(layout, stored_id, values, (&owner, &lifetime), clock)?;
        Ok(SavePlan::Write {
            guarded: None,
            then: Some(update),
            outcome: SaveOutcome::Updated,
            as_loaded: None,
        })
    };
    let Some(snapshot) = input.snapshot else {
        return match input.ruled {
            Some(values) => whole(values),
            None => whole(&entries.to_map()),
        };
    };
    let changes = Changes::between(snapshot, entries);
    if let Some(Some(own)) = changes.lifetime {
        layout.may_store_lifetime(own, Some(snapshot.format))?;
    }
    if changes.is_empty() {
        return Ok(unchanged(input, snapshot, &changes));
    }
    if let Some(values) = input.ruled {
        return whole(values);
    }
    entries.check_size(input.max_session_bytes, layout.encryption.is_some())?;
    if !layout.per_key() || input.strict {
        return Ok(SavePlan::Swap {
            changes,
            loaded: snapshot,
        });
    }
    let stale = &snapshot.stale;
    Ok(SavePlan::Write {
        guarded: (!changes.rewrap.is_empty())
            .then(|| per_key_update(layout, stored_id, &changes, stale, true, clock)),
        then: Some(per_key_update(layout, stored_id, &changes, stale, false, clock).into()),
        outcome: SaveOutcome::Updated,
        as_loaded: changes
            .lifetime
            .is_none()
            .then_some(AsLoaded(snapshot.lifetime)),
    })
}

/// An unchanged session: values stored the old way are rewritten if no
/// other request wrote meanwhile; otherwise only the expiry moves, and only
/// when due.
fn unchanged<'a>(
    input: &SaveInput<'_>,
    snapshot: &Snapshot,
    changes: &Changes<'_>,
) -> SavePlan<'a> {
    let layout = input.layout;
    let guarded = (!changes.rewrap.is_empty() && input.ruled.is_none()).then(|| {
        per_key_update(
            layout,
            input.stored_id,
            changes,
            &snapshot.stale,
            true,
            input.clock,
        )
    });
    let then = plan_touch(layout, snapshot, input.clock);
    if guarded.is_none() && then.is_none() {
        return SavePlan::Nothing;
    }
    SavePlan::Write {
        guarded,
        then,
        outcome: SaveOutcome::Touched,
        as_loaded: Some(AsLoaded(snapshot.lifetime)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mongodb::bson::{doc, Bson, DateTime};
    use serde_json::json;

    use super::*;
    use crate::{codec::Codec, snapshot::split, user::USER_KEY};

    fn clock(now: i64, expires: i64) -> Clock {
        Clock {
            now: DateTime::from_millis(now),
            expires: DateTime::from_millis(expires),
            touch_after: Duration::from_secs(60),
            cap_on_server: None,
            stored: None,
        }
    }

    fn loaded(data: &Value) -> Snapshot {
        Snapshot::loaded_at(data, 100_000, 1_000)
    }

    fn input<'a>(
        layout: &'a Layout,
        map: &'a Map<String, Value>,
        snapshot: Option<&'a Snapshot>,
    ) -> SaveInput<'a> {
        SaveInput {
            layout,
            stored_id: "id",
            entries: split(map).0,
            snapshot,
            ruled: None,
            clock: clock(2_000, 100_000),
            strict: false,
            max_session_bytes: 1_000,
        }
    }

    fn operators(plan: SavePlan<'_>) -> (Option<Document>, Document, SaveOutcome) {
        match plan {
            SavePlan::Write {
                guarded,
                then: Some(UpdateModifications::Document(then)),
                outcome,
                ..
            } => (guarded, then, outcome),
            other => panic!("not a plain write: {other:?}"),
        }
    }

    #[test]
    fn without_a_snapshot_the_map_is_the_whole_truth_owner_included() {
        let layout = Layout::default();
        let map = json!({"a": 1}).as_object().unwrap().clone();
        let (guarded, update, outcome) = operators(plan_save(&input(&layout, &map, None)).unwrap());
        assert!(guarded.is_none());
        assert_eq!(outcome, SaveOutcome::Updated);
        assert_eq!(
            update.get_document("$set").unwrap().get("data"),
            Some(&Bson::Document(doc! {"a": 1}))
        );
        assert!(update.get_document("$unset").unwrap().contains_key("user"));
    }

    #[test]
    fn an_unchanged_session_inside_touch_after_is_nothing() {
        let layout = Layout::default();
        let data = json!({"a": 1});
        let snapshot = loaded(&data);
        let map = data.as_object().unwrap().clone();
        let plan = plan_save(&input(&layout, &map, Some(&snapshot))).unwrap();
        assert!(matches!(plan, SavePlan::Nothing), "{plan:?}");
    }

    #[test]
    fn an_unchanged_session_with_values_stored_the_old_way_rewrites_them_guarded() {
        let layout = Layout::default();
        let data = json!({"a": 1});
        let mut snapshot = loaded(&data);
        snapshot.stale.insert("a".into(), "old".into());
        let map = data.as_object().unwrap().clone();
        match plan_save(&input(&layout, &map, Some(&snapshot))).unwrap() {
            SavePlan::Write {
                guarded: Some(guarded),
                then: None,
                outcome: SaveOutcome::Touched,
                ..
            } => assert!(guarded
                .get_document("$unset")
                .unwrap()
                .contains_key("data.old")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_change_is_per_key_by_default_and_a_swap_when_strict_or_opaque() {
        let data = json!({"a": 1, "b": 2});
        let snapshot = loaded(&data);
        let mut map = data.as_object().unwrap().clone();
        map.insert("a".into(), json!(5));
        map.remove("b");
        let layout = Layout::default();
        let (_, update, _) = operators(plan_save(&input(&layout, &map, Some(&snapshot))).unwrap());
        assert_eq!(
            update.get_document("$set").unwrap().get_i32("data.a"),
            Ok(5)
        );
        assert!(update
            .get_document("$unset")
            .unwrap()
            .contains_key("data.b"));

        let strict = SaveInput {
            strict: true,
            ..input(&layout, &map, Some(&snapshot))
        };
        assert!(matches!(plan_save(&strict).unwrap(), SavePlan::Swap { .. }));
        let opaque = Layout {
            codec: Codec::JsonString,
            ..Layout::default()
        };
        let plan = plan_save(&input(&opaque, &map, Some(&snapshot))).unwrap();
        assert!(matches!(plan, SavePlan::Swap { changes, .. } if changes.keys().count() == 2));
    }

    #[test]
    fn reserved_keys_and_oversized_sessions_are_refused_before_any_plan() {
        let layout = Layout::default();
        let forged = json!({"__mongodb_session_store_x": 1});
        let map = forged.as_object().unwrap().clone();
        let error = plan_save(&input(&layout, &map, None)).unwrap_err();
        assert!(error.is_reserved_key());
        let forged_owner = json!({ USER_KEY: "not an owner" });
        let map = forged_owner.as_object().unwrap().clone();
        assert!(plan_save(&input(&layout, &map, None))
            .unwrap_err()
            .is_reserved_key());
        let big = json!({"blob": "x".repeat(2_000)});
        let map = big.as_object().unwrap().clone();
        let error = plan_save(&input(&layout, &map, None)).unwrap_err();
        assert!(error.is_encode() && !error.is_reserved_key());
    }

    #[test]
    fn ruled_values_are_written_whole_and_unchanged_ones_only_touch() {
        let layout = Layout::default();
        let data = json!({"a": 1});
        let snapshot = loaded(&data);
        let map = data.as_object().unwrap().clone();
        let ruled = json!({"a": 1, "cookie": {"expires": "later"}})
            .as_object()
            .unwrap()
            .clone();
        let unchanged = SaveInput {
            ruled: Some(&ruled),
            clock: clock(90_000, 150_000),
            ..input(&layout, &map, Some(&snapshot))
        };
        let (guarded, update, outcome) = operators(plan_save(&unchanged).unwrap());
        assert!(guarded.is_none() && outcome == SaveOutcome::Touched);
        assert!(!update.get_document("$set").unwrap().contains_key("data"));

        let mut changed_map = map.clone();
        changed_map.insert("a".into(), json!(2));
        let changed = SaveInput {
            ruled: Some(&ruled),
            ..input(&layout, &changed_map, Some(&snapshot))
        };
        let (_, update, _) = operators(plan_save(&changed).unwrap());
        let written = update.get_document("$set").unwrap().get_document("data");
        assert!(written.unwrap().contains_key("cookie"), "the ruled values");
    }
}
