//! Faults the fault suite found breaking a promise, kept as regressions: a
//! save on the compare-and-swap path (a codec other than Bson, or
//! ConflictPolicy::Fail) whose round trips are each slow but under the
//! bound must still answer within operation_timeout; a read that meets a
//! state-change error is transient, like a write.

use std::time::{Duration, Instant};

use mongodb::{bson::doc, options::ClientOptions};
use mongodb_session_store::{Codec, MongoSessionStore};
use serde_json::{json, Map, Value};
use testkit::{
    fault::{self, FailPoint, Times},
    TestDb,
};

const BOUND: Duration = Duration::from_millis(1500);

fn map(value: Value) -> Map<String, Value> {
    value.as_object().expect("an object").clone()
}

async fn json_store(db: &TestDb, app: Option<&str>) -> MongoSessionStore {
    let mut options = ClientOptions::parse(db.uri()).await.unwrap();
    options.app_name = app.map(str::to_string);
    MongoSessionStore::from_client_options(options)
        .codec(Codec::JsonString)
        .operation_timeout(BOUND)
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contended_save_with_slow_round_trips_answers_within_the_bound() {
    let db = TestDb::new("slowcas").await;
    if let Err(reason) = fault::test_commands(&db.client).await {
        return eprintln!("{reason}");
    }
    let app = format!("slowcas-{}", db.name);
    let store = json_store(&db, Some(&app)).await;
    let other = json_store(&db, None).await;
    let id = store.create(&map(json!({"n": 0})), None).await.unwrap();
    let mut tracked = store.load(&id).await.unwrap().unwrap().into_map();
    // Another instance writes meanwhile: our save must re-read and retry.
    let mut theirs = other.load(&id).await.unwrap().unwrap().into_map();
    theirs.insert("m".into(), json!(1));
    other.save(&id, &theirs, None).await.unwrap();

    // Every round trip of ours takes 90% of the bound: none times out.
    let slow = i64::try_from((BOUND * 9 / 10).as_millis()).unwrap();
    let point = FailPoint::fail_command(
        &db.client,
        &app,
        &["update", "find"],
        Times::Always,
        doc! { "blockConnection": true, "blockTimeMS": slow },
    )
    .await
    .unwrap();
    tracked.insert("n".into(), json!(1));
    let started = Instant::now();
    let saved = store.save(&id, &tracked, None).await;
    let took = started.elapsed();
    point.off().await;
    eprintln!("save answered {saved:?} after {took:?}");
    assert!(
        took < BOUND + Duration::from_millis(750),
        "save answered after {took:?}, bound {BOUND:?}"
    );
    db.cleanup().await;
}

/// A load that meets a persistent state-change error (the primary
/// stepped down / is shutting down) answers an error for which
/// `is_transient()` is false, although the same fault on a write is
/// transient (the driver labels retryable write errors, not read ones).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_change_error_on_a_load_is_transient() {
    let db = TestDb::new("transientload").await;
    if let Err(reason) = fault::test_commands(&db.client).await {
        return eprintln!("{reason}");
    }
    let app = format!("transientload-{}", db.name);
    let mut options = ClientOptions::parse(db.uri()).await.unwrap();
    options.app_name = Some(app.clone());
    let store = MongoSessionStore::from_client_options(options)
        .operation_timeout(BOUND)
        .build()
        .await
        .unwrap();
    let id = store.create(&map(json!({"n": 0})), None).await.unwrap();
    for code in [91, 189, 10107, 11600] {
        let point = FailPoint::fail_command(
            &db.client,
            &app,
            &["find"],
            Times::Always,
            doc! { "errorCode": code },
        )
        .await
        .unwrap();
        let error = store.load(&id).await.unwrap_err();
        point.off().await;
        assert!(error.is_transient(), "{code}: {error}");
    }
    db.cleanup().await;
}
