//! Faults the fault suite found breaking a promise, kept as regressions: a
//! save on the compare-and-swap path (a codec other than Bson, or
//! ConflictPolicy::Fail) whose round trips are each slow but under the
//! bound must still answer within operation_timeout; a read that meets a
//! state-change error is transient, like a write.

use std::time::{Duration, Instant};

use mongodb::bson::doc;
use mongodb_session_store::{Codec, MongoSessionStore, StoreBuilder};
use serde_json::json;
use testkit::{
    fault::{self, FailPoint, Times},
    TestDb,
};

use crate::common::{instance, loaded, named, new_session, Build};

const BOUND: Duration = Duration::from_millis(1500);

/// A store bounded by [`BOUND`] on a client of its own named `app` (so a
/// failpoint can single it out).
async fn bounded(db: &TestDb, app: &str) -> StoreBuilder {
    let options = named(&db.uri(), app).await;
    MongoSessionStore::from_client_options(options).operation_timeout(BOUND)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contended_save_with_slow_round_trips_answers_within_the_bound() {
    let db = TestDb::new("slowcas").await;
    if let Err(reason) = fault::test_commands(&db.client).await {
        return eprintln!("{reason}");
    }
    let app = format!("slowcas-{}", db.name);
    let store = bounded(&db, &app)
        .await
        .codec(Codec::JsonString)
        .built()
        .await;
    let other = instance(&db).codec(Codec::JsonString);
    let other = other.operation_timeout(BOUND).built().await;
    let id = new_session(&store, json!({"n": 0}), None).await;
    let mut tracked = loaded(&store, &id).await;
    // Another instance writes meanwhile: our save must re-read and retry.
    let mut theirs = loaded(&other, &id).await;
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
    let store = bounded(&db, &app).await.built().await;
    let id = new_session(&store, json!({"n": 0}), None).await;
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
}
