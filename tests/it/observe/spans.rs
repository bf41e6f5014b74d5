//! The spans of the store's own operations, captured on this thread.

use std::time::Duration;

use mongodb_session_store::{
    id::generate_id, id::RedactedId, session::USER_KEY, MongoSessionStore, UserInfo,
};
use serde_json::json;
use testkit::TestDb;

use super::{cached_store_and_uncached_session, strict_store_and_a_losing_save};
use crate::common::{builder, capture::Capture, map, new_session, Build};

async fn store(db: &TestDb, touch_after: Duration) -> MongoSessionStore {
    builder(db).touch_after(touch_after).built().await
}

/// (span name suffix, outcome, round trips) of every store span, in order.
fn summary(capture: &Capture) -> Vec<(String, String, String)> {
    capture
        .store_spans()
        .iter()
        .map(|span| {
            assert_eq!(
                span.name,
                format!("mongodb_session_store.{}", span.field("op").unwrap())
            );
            let field = |name| span.field(name).unwrap_or("-").to_string();
            let op = span.field("op").unwrap().to_string();
            (op, field("outcome"), field("round_trips"))
        })
        .collect()
}

fn expect(rows: &[(&str, &str, u32)]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|(op, outcome, trips)| (op.to_string(), outcome.to_string(), trips.to_string()))
        .collect()
}

/// Runs every kind of operation once or more, each answered as
/// [`EVERY_OPERATION`] lists; the ids of the sessions it made.
async fn every_operation(store: &MongoSessionStore) -> [String; 3] {
    let owned = map(json!({ USER_KEY: UserInfo::new("ada").to_value(), "n": 1 }));
    let id = store.create(&owned, None).await.unwrap();
    let loaded = store.load(&id).await.unwrap().expect("the session");
    let handle = loaded.handle.clone();
    let mut data = loaded.into_map();
    store.save(&id, &data, None).await.unwrap();
    data.insert("n".into(), json!(2));
    store.save(&id, &data, None).await.unwrap();
    assert!(!store.touch(&id, None).await.unwrap());
    assert!(store.load(&generate_id()).await.unwrap().is_none());
    assert!(store.load("").await.unwrap().is_none());
    store.user_sessions("ada", Some(&handle)).await.unwrap();
    assert!(!store.revoke("ada", "no-such-handle").await.unwrap());
    assert_eq!(store.revoke_others("ada", &handle).await.unwrap(), 0);
    assert_eq!(store.length().await.unwrap(), 1);
    drop(store.all().await.unwrap());
    assert!(store.rewrap().await.unwrap_err().is_config());
    assert!(store.revoke("ada", &handle).await.unwrap());
    assert!(!store.delete(&id).await.unwrap());
    let other = new_session(store, json!({"k": true}), None).await;
    assert!(store.delete(&other).await.unwrap());
    store.delete_expired().await.unwrap();
    // A regeneration: the old id's delete, then the create of what it held.
    let old = new_session(store, json!({"k": 1}), None).await;
    let carried = store.load(&old).await.unwrap().unwrap().into_map();
    assert!(store.delete(&old).await.unwrap());
    let new = store.create(&carried, None).await.unwrap();
    assert_eq!(store.clear().await.unwrap(), 1);
    [id, other, new]
}

/// The spans of [`every_operation`]: (op, outcome, round trips).
///
/// Listings count the query and the draining of its cursor. Loads and
/// saves cost what they always did; endings (see tests/it/endings.rs)
/// cost their record: a logout finds the session, records the ending,
/// deletes; a made-up id costs two reads; a revocation also reads the
/// user's recent endings; a regeneration's create claims its ending.
const EVERY_OPERATION: &[(&str, &str, u32)] = &[
    ("create", "created", 1),
    ("load", "miss", 1),
    ("save", "unchanged", 0),
    ("save", "updated", 1),
    ("touch", "unchanged", 0),
    ("load", "missing", 1),
    ("load", "missing", 0),
    ("user_sessions", "ok", 2),
    ("revoke", "missing", 4),
    ("revoke_others", "ok", 4),
    ("length", "ok", 1),
    ("all", "ok", 1),
    ("rewrap", "error", 0),
    ("revoke", "revoked", 6),
    ("delete", "missing", 2),
    ("create", "created", 1),
    ("delete", "deleted", 3),
    ("delete_expired", "ok", 1),
    ("create", "created", 1),
    ("load", "miss", 1),
    ("delete", "deleted", 3),
    ("create", "created", 2),
    ("clear", "ok", 1),
];

#[tokio::test]
async fn every_operation_opens_its_span_with_outcome_and_round_trips() {
    let db = TestDb::new("observe_ops").await;
    let store = store(&db, Duration::from_secs(3600)).await;
    let (capture, _guard) = Capture::install();
    let [id, other, new] = every_operation(&store).await;
    assert_eq!(summary(&capture), expect(EVERY_OPERATION));

    let spans = capture.store_spans();
    let redacted = RedactedId::new(&id).to_string();
    for span in spans.iter().take(5) {
        assert_eq!(span.field("id"), Some(redacted.as_str()), "{span:?}");
    }
    assert_eq!(
        spans[6].field("id"),
        Some(RedactedId::new("").to_string().as_str())
    );
    assert_eq!(spans[7].field("id"), None, "user_sessions names no session");
    assert_eq!(spans[12].field("error"), Some("config"));
    assert_eq!(spans[1].field("error"), None);
    assert!(
        spans.iter().all(|s| s.ancestors.is_empty()),
        "no request span here"
    );
    capture.assert_never_mentions(&id);
    capture.assert_never_mentions(&other);
    capture.assert_never_mentions(&new);
    store.close().await;
}

#[tokio::test]
async fn a_cache_hit_costs_no_round_trip() {
    let db = TestDb::new("observe_cache").await;
    let (store, id) = cached_store_and_uncached_session(&db).await;
    let (capture, _guard) = Capture::install();
    store.load(&id).await.unwrap().expect("the session");
    store.load(&id).await.unwrap().expect("the session");
    assert_eq!(
        summary(&capture),
        expect(&[("load", "miss", 1), ("load", "hit", 0)])
    );
    capture.assert_never_mentions(&id);
    store.close().await;
}

#[tokio::test]
async fn a_save_that_loses_a_strict_race_ends_in_conflict() {
    let db = TestDb::new("observe_conflict").await;
    let (store, id, losing) = strict_store_and_a_losing_save(&db).await;

    let (capture, _guard) = Capture::install();
    let conflict = store.save(&id, &losing, None).await.unwrap_err();
    assert!(conflict.is_conflict());
    let spans = capture.store_spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].field("outcome"), Some("conflict"));
    assert_eq!(spans[0].field("error"), Some("conflict"));
    // The guarded write that matched nothing, and the re-read that found
    // the other request's change.
    assert_eq!(spans[0].field("round_trips"), Some("2"));
    capture.assert_never_mentions(&id);
}

#[tokio::test]
async fn the_raw_id_reaches_neither_a_span_nor_an_event() {
    let db = TestDb::new("observe_redacted").await;
    let store = store(&db, Duration::ZERO).await;
    let taken = new_session(&store, json!({"n": 1}), None).await;
    let fresh = generate_id();

    let (capture, _guard) = Capture::install();
    let mut ids = [taken.clone(), fresh.clone()].into_iter();
    let n2 = map(json!({"n": 2}));
    let created = store.create_with_ids(|| ids.next().unwrap(), &n2, None);
    assert_eq!(created.await.unwrap(), fresh);
    assert!(capture.event_count() > 0, "the collision is logged");
    let spans = capture.store_spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].field("round_trips"), Some("2"));
    assert_eq!(
        spans[0].field("id"),
        Some(RedactedId::new(&fresh).to_string().as_str())
    );
    capture.assert_never_mentions(&taken);
    capture.assert_never_mentions(&fresh);
}

/// A walk over the collection counts a round trip per batch, not per
/// document: `stats` of 5 sessions is one `find`; a purge of 5 in batches
/// of 2 is a `find`, two `getMore`s and three `deleteMany`s, and the `find`
/// that finds nothing left.
#[tokio::test]
async fn a_walk_over_the_collection_counts_a_round_trip_per_batch() {
    use mongodb::bson::{doc, DateTime};
    use mongodb_session_store::admin::BatchOptions;
    let db = TestDb::new("observe_batches").await;
    let store = store(&db, Duration::ZERO).await;
    for n in 0..5 {
        new_session(&store, json!({ "n": n }), None).await;
    }
    let (capture, _guard) = Capture::install();
    assert_eq!(store.stats().await.unwrap().documents, 5);
    let past = DateTime::from_millis(DateTime::now().timestamp_millis() - 60_000);
    let sessions = db.collection("sessions");
    let expire = doc! { "$set": { "expires": past } };
    sessions.update_many(doc! {}, expire).await.unwrap();
    let purge = store.delete_expired_with(BatchOptions::default().size(2), |_| {});
    assert_eq!(purge.await.unwrap(), 5);
    assert_eq!(
        summary(&capture),
        expect(&[("stats", "ok", 1), ("delete_expired", "ok", 7)])
    );
}
