//! No lost updates, no resurrection: concurrent saves of one session.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use mongodb::bson::doc;
use mongodb_session_store::{
    session::SaveOutcome, Codec, ConflictPolicy, MongoSessionStore, StoreBuilder,
};
use serde_json::{json, Map, Value};
use testkit::TestDb;

fn later() -> Option<SystemTime> {
    Some(SystemTime::now() + Duration::from_secs(3600))
}

fn builder(db: &TestDb) -> StoreBuilder {
    MongoSessionStore::from_client(db.client.clone()).database(&db.name)
}

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
                let mut data = store.load(&id).await.unwrap().unwrap().into_map();
                data.insert(format!("k{writer}"), json!(round));
                let outcome = store.save(&id, &data, later()).await.unwrap();
                assert_eq!(outcome, SaveOutcome::Updated);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    store.load(id).await.unwrap().unwrap().data
}

fn expected(writers: usize, last: i64) -> Map<String, Value> {
    (0..writers)
        .map(|w| (format!("k{w}"), json!(last)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_of_different_keys_all_persist_with_per_key_writes() {
    let db = TestDb::new("perkeyrace").await;
    let store = builder(&db).build().await.unwrap();
    let id = store.create(&Map::new(), later()).await.unwrap();
    assert_eq!(hammer(&store, &id, 16, 20).await, expected(16, 19));
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_merge_through_compare_and_swap_with_an_opaque_codec() {
    let db = TestDb::new("casrace").await;
    // This test is about merging, not timeouts: room for a slow machine.
    let store = builder(&db)
        .codec(Codec::JsonString)
        .operation_timeout(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let id = store.create(&Map::new(), later()).await.unwrap();
    assert_eq!(hammer(&store, &id, 8, 10).await, expected(8, 9));
    db.cleanup().await;
}

#[tokio::test]
async fn same_key_conflicts_are_last_writer_wins_by_default() {
    let db = TestDb::new("lww").await;
    let store = builder(&db).build().await.unwrap();
    let id = store
        .create(&Map::from_iter([("k".into(), json!(0))]), later())
        .await
        .unwrap();
    let mut first = store.load(&id).await.unwrap().unwrap().into_map();
    let mut second = store.load(&id).await.unwrap().unwrap().into_map();
    first.insert("k".into(), json!("first"));
    second.insert("k".into(), json!("second"));
    store.save(&id, &first, later()).await.unwrap();
    store.save(&id, &second, later()).await.unwrap();
    assert_eq!(store.load(&id).await.unwrap().unwrap().data["k"], "second");
    db.cleanup().await;
}

#[tokio::test]
async fn with_conflict_policy_fail_a_same_key_conflict_is_an_error_and_writes_nothing() {
    for codec in [Codec::Bson, Codec::JsonString] {
        let db = TestDb::new("failpolicy").await;
        let store = builder(&db)
            .codec(codec)
            .on_conflict(ConflictPolicy::Fail)
            .build()
            .await
            .unwrap();
        let start = Map::from_iter([("k".into(), json!(0)), ("other".into(), json!(0))]);
        let id = store.create(&start, later()).await.unwrap();
        let mut first = store.load(&id).await.unwrap().unwrap().into_map();
        let mut second = store.load(&id).await.unwrap().unwrap().into_map();
        let mut third = store.load(&id).await.unwrap().unwrap().into_map();
        first.insert("k".into(), json!("first"));
        second.insert("k".into(), json!("second"));
        third.insert("other".into(), json!("third"));

        store.save(&id, &first, later()).await.unwrap();
        let err = store.save(&id, &second, later()).await.unwrap_err();
        assert!(
            err.is_conflict() && err.to_string().contains("\"k\""),
            "{err}"
        );
        // A different key still merges.
        assert_eq!(
            store.save(&id, &third, later()).await.unwrap(),
            SaveOutcome::Updated
        );

        let data = store.load(&id).await.unwrap().unwrap().data;
        assert_eq!(data["k"], "first");
        assert_eq!(data["other"], "third");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn delete_wins_over_a_late_compare_and_swap_save() {
    let db = TestDb::new("casdelete").await;
    let store = builder(&db).codec(Codec::JsonString).build().await.unwrap();
    let id = store
        .create(&Map::from_iter([("k".into(), json!(0))]), later())
        .await
        .unwrap();
    let mut loaded = store.load(&id).await.unwrap().unwrap().into_map();
    // Someone else writes (so the swap must retry), then the session is deleted.
    let mut other = store.load(&id).await.unwrap().unwrap().into_map();
    other.insert("x".into(), json!(1));
    store.save(&id, &other, later()).await.unwrap();
    store.delete(&id).await.unwrap();

    loaded.insert("k".into(), json!(1));
    assert_eq!(
        store.save(&id, &loaded, later()).await.unwrap(),
        SaveOutcome::Missing
    );
    assert_eq!(
        db.collection("sessions")
            .count_documents(doc! {})
            .await
            .unwrap(),
        0
    );
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_racing_many_saves_always_wins() {
    let db = TestDb::new("deleterace").await;
    let store = Arc::new(builder(&db).build().await.unwrap());
    for _ in 0..20 {
        let id = store
            .create(&Map::from_iter([("n".into(), json!(0))]), later())
            .await
            .unwrap();
        let loads: Vec<_> = futures_util::future::join_all((0..8).map(|_| store.load(&id))).await;
        let deleter = {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move { store.delete(&id).await.unwrap() })
        };
        let savers: Vec<_> = loads
            .into_iter()
            .enumerate()
            .map(|(i, loaded)| {
                let (store, id) = (store.clone(), id.clone());
                let mut data = loaded.unwrap().unwrap().into_map();
                data.insert(format!("k{i}"), json!(i));
                tokio::spawn(async move { store.save(&id, &data, later()).await.unwrap() })
            })
            .collect();
        deleter.await.unwrap();
        for saver in savers {
            saver.await.unwrap();
        }
        assert!(store.load(&id).await.unwrap().is_none());
        assert_eq!(
            db.collection("sessions")
                .count_documents(doc! {"_id": store.stored_id(&id)})
                .await
                .unwrap(),
            0
        );
    }
    db.cleanup().await;
}
