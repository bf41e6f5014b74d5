//! Index reconciliation against the server's real answers: a TTL index with
//! another `expireAfterSeconds` is changed in place (`collMod`, never a
//! drop); what `collMod` cannot change (a partial filter) or what the
//! server refuses to change is dropped and recreated only when the caller
//! allows it; every change is logged; two instances starting together end
//! with one agreed index.

use std::time::Duration;

use mongodb::{
    bson::{doc, Document},
    options::ClientOptions,
};
use mongodb_session_store::{
    admin::IndexAction, admin::IndexPurpose, IndexRepair, MongoSessionStore, StoreBuilder,
};
use testkit::{
    fault::{FailPoint, Times},
    CommandLog, TestDb,
};

use crate::common::{capture::Capture, expire_after_seconds as seconds, indexes_on, Build};

/// Where the store logs what it does to indexes.
const INDEX_EVENTS: &str = "mongodb_session_store::index";

/// Options for a client named `app` on the test server, and the log of the
/// commands it sends.
async fn recorded(app: &str) -> (ClientOptions, CommandLog) {
    CommandLog::options(&testkit::mongodb_uri(), Some(app)).await
}

/// How many commands named `name` went to the server.
fn sent(commands: &CommandLog, name: &str) -> usize {
    commands.commands(name).len()
}

/// The `action` of every index event about the sessions collection (not
/// its endings record's), in order.
fn actions(capture: &Capture) -> Vec<String> {
    let events = capture.events(INDEX_EVENTS);
    let of_sessions = events.into_iter().filter(|e| {
        let collection = e.get("collection");
        collection.is_none_or(|c| !c.ends_with(".endings"))
    });
    of_sessions
        .filter_map(|e| e.get("action").cloned())
        .collect()
}

fn builder(db: &TestDb, options: ClientOptions) -> StoreBuilder {
    MongoSessionStore::from_client_options(options).database(&db.name)
}

/// Creates an index on `sessions` from its raw specification.
async fn create(db: &TestDb, spec: Document) {
    db.database()
        .run_command(doc! {"createIndexes": "sessions", "indexes": [spec]})
        .await
        .unwrap();
}

/// A TTL index `expires_1` with `delay` (seconds), made by hand.
async fn ttl_index(db: &TestDb, delay: i32) {
    let spec = doc! {"key": {"expires": 1}, "name": "expires_1", "expireAfterSeconds": delay};
    create(db, spec).await;
}

/// A TTL index `expires_1` with no delay, on documents of one kind only.
async fn partial_ttl_index(db: &TestDb) {
    let partial = doc! {"kind": "web"};
    let spec = doc! {"key": {"expires": 1}, "name": "expires_1", "expireAfterSeconds": 0,
    "partialFilterExpression": partial};
    create(db, spec).await;
}

/// The index on `{expires: 1}` as the server lists it.
async fn expires_index(db: &TestDb) -> Option<Document> {
    let mut on_expires = indexes_on(db, "expires").await.into_iter();
    let index = on_expires.next();
    assert!(on_expires.next().is_none(), "one index on expires");
    index
}

/// The `expireAfterSeconds` of the index on `{expires: 1}`.
async fn expires_delay(db: &TestDb) -> Option<i64> {
    seconds(&expires_index(db).await.unwrap())
}

#[tokio::test]
async fn build_changes_another_ttl_in_place_with_coll_mod_and_logs_it() {
    let (capture, _guard) = Capture::install();
    let db = TestDb::new("ttlinplace").await;
    ttl_index(&db, 3600).await;
    let (options, commands) = recorded("ttlinplace").await;
    builder(&db, options).built().await;
    let index = expires_index(&db).await.unwrap();
    assert_eq!(seconds(&index), Some(0), "{index}");
    assert_eq!(sent(&commands, "collMod"), 1);
    assert_eq!(sent(&commands, "dropIndexes"), 0, "in place: never dropped");
    let events = capture.events(INDEX_EVENTS);
    let changed = events
        .iter()
        .find(|e| e.get("action").map(String::as_str) == Some("change-in-place"))
        .unwrap_or_else(|| panic!("no change-in-place event: {events:?}"));
    assert_eq!(changed["level"], "WARN");
    assert_eq!(changed["index"], "expires_1");
    assert!(changed["before"].contains("3600"), "{changed:?}");
    assert!(changed["message"].contains("collMod"), "{changed:?}");
}

/// A plain index on the field becomes a TTL index the same way (MongoDB
/// 5.1+; an older server refuses, see the fallback test).
#[tokio::test]
async fn build_makes_a_plain_index_a_ttl_index_in_place() {
    let db = TestDb::new("plaininplace").await;
    create(&db, doc! {"key": {"expires": 1}, "name": "by_ops"}).await;
    let (options, commands) = recorded("plaininplace").await;
    builder(&db, options).built().await;
    let index = expires_index(&db).await.unwrap();
    assert_eq!(
        (index.get_str("name"), seconds(&index)),
        (Ok("by_ops"), Some(0))
    );
    assert_eq!(sent(&commands, "dropIndexes"), 0);
}

#[tokio::test]
async fn another_partial_filter_is_dropped_and_recreated_only_when_told() {
    let (capture, _guard) = Capture::install();
    let db = TestDb::new("ttlpartial").await;
    partial_ttl_index(&db).await;
    let (options, commands) = recorded("ttlpartial").await;
    let tool = builder(&db, options.clone()).manage_collection(false);
    let plan = tool.built().await.index_plan().await.unwrap();
    assert_eq!(plan.indexes[0].action, IndexAction::Replace, "{plan:?}");
    assert!(plan.replaces());

    let err = builder(&db, options.clone()).refused().await;
    assert!(err.is_index_conflict(), "{err}");
    let message = err.to_string();
    for names in [
        "partialFilterExpression",
        "IndexRepair::Recreate",
        "--recreate",
    ] {
        assert!(message.contains(names), "{message}");
    }
    let untouched = expires_index(&db).await.unwrap();
    assert!(untouched.contains_key("partialFilterExpression"));
    assert_eq!(sent(&commands, "dropIndexes"), 0);

    let recreate = builder(&db, options).index_repair(IndexRepair::Recreate);
    recreate.built().await;
    let index = expires_index(&db).await.unwrap();
    assert!(!index.contains_key("partialFilterExpression"), "{index}");
    assert_eq!(seconds(&index), Some(0));
    assert_eq!(sent(&commands, "dropIndexes"), 1);
    assert_eq!(actions(&capture), ["replace"]);
}

#[tokio::test]
async fn refuse_changes_nothing_and_the_error_names_the_fixes() {
    let db = TestDb::new("ttlrefuse").await;
    ttl_index(&db, 60).await;
    let (options, commands) = recorded("ttlrefuse").await;
    let refuse = builder(&db, options).index_repair(IndexRepair::Refuse);
    let err = refuse.refused().await;
    assert!(err.is_index_conflict(), "{err}");
    let message = err.to_string();
    assert!(message.contains("collMod: \"sessions\""), "{message}");
    assert!(message.contains("expireAfterSeconds: 60"), "{message}");
    assert_eq!(sent(&commands, "collMod"), 0);
    assert_eq!(expires_delay(&db).await, Some(60));
}

/// An Express app's Node store recreates `expires_1` with its own options on
/// every start (and fails every request if they differ): with the Express
/// layout the store leaves the shared index alone unless told.
#[cfg(feature = "express")]
#[tokio::test]
async fn with_the_express_layout_a_shared_ttl_index_is_left_alone_by_default() {
    use mongodb_session_store::express::ExpressLayout;
    let db = TestDb::new("ttlexpress").await;
    ttl_index(&db, 0).await;
    let (options, _) = recorded("ttlexpress").await;
    let express = || {
        builder(&db, options.clone())
            .express_layout(ExpressLayout::ConnectMongo)
            .expire_after(Duration::from_secs(30))
    };
    let err = express().refused().await;
    assert!(err.is_index_conflict(), "{err}");
    assert_eq!(expires_delay(&db).await, Some(0));
    express().index_repair(IndexRepair::InPlace).built().await;
    assert_eq!(expires_delay(&db).await, Some(30));
}

/// A server that refuses `collMod` (MongoDB before 5.1 making a plain index
/// a TTL index answers 72 InvalidOptions; a user without the `collMod`
/// privilege gets 13 Unauthorized): reported, and recreated only when told.
#[tokio::test]
async fn a_refused_coll_mod_becomes_a_recreate_only_when_told() {
    let db = TestDb::new("ttlrefused").await;
    ttl_index(&db, 3600).await;
    let app = "ttlrefused";
    let refuse = FailPoint::fail_command(
        &db.client,
        app,
        &["collMod"],
        Times::Always,
        doc! {"errorCode": 72},
    )
    .await;
    let refuse = match refuse {
        Ok(failpoint) => failpoint,
        Err(reason) => return eprintln!("{reason}"),
    };
    let (options, commands) = recorded(app).await;
    let err = builder(&db, options.clone()).refused().await;
    let message = err.to_string();
    assert!(err.is_index_conflict(), "{err}");
    assert!(
        message.contains("refused to change it in place"),
        "{message}"
    );
    assert!(message.contains("code 72"), "{message}");
    assert_eq!(expires_delay(&db).await, Some(3600));

    // The operator's calls: the plan says in place; ensuring it without
    // consent to recreate fails; with consent it reports the recreate.
    let tool = builder(&db, options).manage_collection(false).built().await;
    let plan = tool.index_plan().await.unwrap();
    assert_eq!(plan.indexes[0].action, IndexAction::ChangeInPlace);
    let without_consent = tool.ensure_indexes(false).await.unwrap_err();
    assert!(without_consent.is_index_conflict());
    let done = tool.ensure_indexes(true).await.unwrap();
    refuse.off().await;
    let expiry = &done.indexes[0];
    assert_eq!(
        (expiry.purpose, expiry.action),
        (IndexPurpose::Expiry, IndexAction::Replace)
    );
    assert_eq!(expires_delay(&db).await, Some(0));
    assert_eq!(sent(&commands, "dropIndexes"), 1);
}

/// Builds `INSTANCES` stores from `instance` at once; each must build.
async fn all_at_once(instance: impl Fn() -> StoreBuilder) {
    const INSTANCES: usize = 4;
    let builds = (0..INSTANCES).map(|_| instance().build());
    for store in futures_util::future::join_all(builds).await {
        store.unwrap();
    }
}

/// Instances of one configuration starting at once on a disagreeing index
/// all build, and the collection ends with the index they want (they race
/// to drop it: an index another one dropped first is as good).
#[tokio::test]
async fn instances_starting_together_end_with_the_one_index_they_want() {
    let db = TestDb::new("ttltwo").await;
    partial_ttl_index(&db).await;
    let (options, _) = recorded("ttltwo").await;
    all_at_once(|| {
        builder(&db, options.clone())
            .expire_after(Duration::from_secs(120))
            .index_repair(IndexRepair::Recreate)
    })
    .await;
    let index = expires_index(&db).await.unwrap();
    assert_eq!(seconds(&index), Some(120));
    assert!(!index.contains_key("partialFilterExpression"));

    all_at_once(|| builder(&db, options.clone()).expire_after(Duration::from_secs(300))).await;
    assert_eq!(expires_delay(&db).await, Some(300));
}

#[tokio::test]
async fn an_expire_after_past_what_mongodb_accepts_is_refused_before_connecting() {
    let too_long = Duration::from_secs(u64::from(u32::MAX));
    let store = MongoSessionStore::from_uri("mongodb://127.0.0.1:1/app");
    let err = store.expire_after(too_long).refused().await;
    assert!(err.is_config(), "{err}");
    assert!(err.to_string().contains("2147483647"), "{err}");
}
