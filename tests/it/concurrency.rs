//! No lost updates, no resurrection: concurrent saves of one session.

use std::{sync::Arc, time::Duration};

use mongodb::bson::doc;
use mongodb_session_store::{session::SaveOutcome, Codec, ConflictPolicy, MongoSessionStore};
use serde_json::{json, Map, Value};
use testkit::TestDb;

use crate::common::{
    builder, count, data, db_and_store, in_an_hour, loaded, new_session, store, Build,
};

/// `writers` tasks each load the session and set their own key, `rounds`
/// times; returns the final data.
async fn hammer(
    store: &MongoSessionStore,
    id: &str,
    writers: usize,
    rounds: i64,
) -> Map<String, Value> {
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let (store, id) = (store.clone(), id.to_string());
        tasks.push(tokio::spawn(async move {
            for round in 0..rounds {
                let mut tracked = loaded(&store, &id).await;
                tracked.insert(format!("k{writer}"), json!(round));
                let outcome = store.save(&id, &tracked, in_an_hour()).await.unwrap();
                assert_eq!(outcome, SaveOutcome::Updated);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    data(store, id).await
}

fn expected(writers: usize, last: i64) -> Map<String, Value> {
    (0..writers)
        .map(|w| (format!("k{w}"), json!(last)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_of_different_keys_all_persist_with_per_key_writes() {
    let (_db, store) = db_and_store("perkeyrace").await;
    let id = store.create(&Map::new(), in_an_hour()).await.unwrap();
    assert_eq!(hammer(&store, &id, 16, 20).await, expected(16, 19));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_merge_through_compare_and_swap_with_an_opaque_codec() {
    let db = TestDb::new("casrace").await;
    // This test is about merging, not timeouts: room for a slow machine.
    let opaque = builder(&db).codec(Codec::JsonString);
    let store = opaque
        .operation_timeout(Duration::from_secs(60))
        .built()
        .await;
    let id = store.create(&Map::new(), in_an_hour()).await.unwrap();
    assert_eq!(hammer(&store, &id, 8, 10).await, expected(8, 9));
}

#[tokio::test]
async fn same_key_conflicts_are_last_writer_wins_by_default() {
    let (_db, store) = db_and_store("lww").await;
    let id = new_session(&store, json!({"k": 0}), in_an_hour()).await;
    let mut first = loaded(&store, &id).await;
    let mut second = loaded(&store, &id).await;
    first.insert("k".into(), json!("first"));
    second.insert("k".into(), json!("second"));
    store.save(&id, &first, in_an_hour()).await.unwrap();
    store.save(&id, &second, in_an_hour()).await.unwrap();
    assert_eq!(data(&store, &id).await["k"], "second");
}

#[tokio::test]
async fn with_conflict_policy_fail_a_same_key_conflict_is_an_error_and_writes_nothing() {
    for codec in [Codec::Bson, Codec::JsonString] {
        let db = TestDb::new("failpolicy").await;
        let strict = builder(&db).codec(codec).on_conflict(ConflictPolicy::Fail);
        let store = strict.built().await;
        let id = new_session(&store, json!({"k": 0, "other": 0}), in_an_hour()).await;
        let mut first = loaded(&store, &id).await;
        let mut second = loaded(&store, &id).await;
        let mut third = loaded(&store, &id).await;
        first.insert("k".into(), json!("first"));
        second.insert("k".into(), json!("second"));
        third.insert("other".into(), json!("third"));

        store.save(&id, &first, in_an_hour()).await.unwrap();
        let err = store.save(&id, &second, in_an_hour()).await.unwrap_err();
        assert!(
            err.is_conflict() && err.to_string().contains("\"k\""),
            "{err}"
        );
        // A different key still merges.
        let merged = store.save(&id, &third, in_an_hour()).await.unwrap();
        assert_eq!(merged, SaveOutcome::Updated);

        let data = data(&store, &id).await;
        assert_eq!(data["k"], "first");
        assert_eq!(data["other"], "third");
    }
}

#[tokio::test]
async fn delete_wins_over_a_late_compare_and_swap_save() {
    let db = TestDb::new("casdelete").await;
    let store = builder(&db).codec(Codec::JsonString).built().await;
    let id = new_session(&store, json!({"k": 0}), in_an_hour()).await;
    let mut late = loaded(&store, &id).await;
    // Someone else writes (so the swap must retry), then the session is deleted.
    let mut other = loaded(&store, &id).await;
    other.insert("x".into(), json!(1));
    store.save(&id, &other, in_an_hour()).await.unwrap();
    store.delete(&id).await.unwrap();

    late.insert("k".into(), json!(1));
    let outcome = store.save(&id, &late, in_an_hour()).await.unwrap();
    assert_eq!(outcome, SaveOutcome::Missing);
    assert_eq!(count(&db).await, 0);
}

/// One round: eight requests load `id`, then one deletes it while the
/// others save their change; the delete must win.
async fn a_delete_racing_eight_saves(store: &Arc<MongoSessionStore>, id: &str) {
    let loads = futures_util::future::join_all((0..8).map(|_| store.load(id))).await;
    let deleter = {
        let (store, id) = (store.clone(), id.to_string());
        tokio::spawn(async move { store.delete(&id).await.unwrap() })
    };
    let savers: Vec<_> = loads
        .into_iter()
        .enumerate()
        .map(|(i, loaded)| {
            let (store, id) = (store.clone(), id.to_string());
            let mut tracked = loaded.unwrap().unwrap().into_map();
            tracked.insert(format!("k{i}"), json!(i));
            tokio::spawn(async move { store.save(&id, &tracked, in_an_hour()).await.unwrap() })
        })
        .collect();
    deleter.await.unwrap();
    for saver in savers {
        saver.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_racing_many_saves_always_wins() {
    let db = TestDb::new("deleterace").await;
    let store = Arc::new(store(&db).await);
    let sessions = db.collection("sessions");
    for _ in 0..20 {
        let id = new_session(&store, json!({"n": 0}), in_an_hour()).await;
        a_delete_racing_eight_saves(&store, &id).await;
        assert!(store.load(&id).await.unwrap().is_none());
        let left = sessions.count_documents(doc! {"_id": store.stored_id(&id)});
        assert_eq!(left.await.unwrap(), 0);
    }
}
