//! The touch of an unchanged session: only the expiry and the
//! modification time move, and inside `touch_after` of its last write
//! nothing at all.

use mongodb::{bson::doc, options::UpdateModifications};

use super::{finish, Clock, Layout, Snapshot};

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
    use crate::write::tests::{clock, document};

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
}
