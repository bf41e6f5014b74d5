//! Moving connect-mongo sessions to the native layout without logging
//! anyone out.

use std::time::{Duration, SystemTime};

use mongodb::bson::{doc, DateTime, Document};
use mongodb_session_store::{
    express::migrate::{MigrateOptions, MigrationReport},
    express::ExpressLayout,
    AutoRemove, ConflictPolicy, MongoSessionStore, ReadCache,
};
use serde_json::json;
use testkit::{CommandLog, TestDb};

const SESSIONS: usize = 10_000;

/// A document as connect-mongo 5 writes it (`stringify: true`).
fn connect_mongo_document(i: usize, expires: DateTime) -> Document {
    let session = json!({
        "cookie": {"originalMaxAge": 86_400_000, "expires": "2030-01-01T00:00:00.000Z", "httpOnly": true, "path": "/"},
        "user": format!("user{i}"),
        "n": i,
    });
    doc! { "_id": format!("sid-{i:05}-abcdefghijklmnopqrstuv"), "session": session.to_string(), "expires": expires }
}

async fn seed(db: &TestDb, collection: &str, count: usize) {
    let expires = DateTime::from_system_time(SystemTime::now() + Duration::from_secs(86_400));
    let documents: Vec<Document> = (0..count)
        .map(|i| connect_mongo_document(i, expires))
        .collect();
    for chunk in documents.chunks(1000) {
        db.collection(collection)
            .insert_many(chunk.to_vec())
            .await
            .unwrap();
    }
}

async fn express_store(db: &TestDb, collection: &str) -> MongoSessionStore {
    MongoSessionStore::from_client(db.client.clone())
        .database(&db.name)
        .collection(collection)
        .auto_remove(AutoRemove::Disabled)
        .express_layout(ExpressLayout::ConnectMongo)
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_sessions_migrate_stay_valid_and_a_rerun_is_a_no_op() {
    let db = TestDb::new("migrate10k").await;
    seed(&db, "sessions", SESSIONS).await;
    let expires = DateTime::from_system_time(SystemTime::now() + Duration::from_secs(3600));
    let broken = [
        doc! {"_id": "broken-json", "session": "{not json", "expires": expires},
        doc! {"_id": "broken-expiry", "session": "{}", "expires": "tomorrow"},
    ];
    db.collection("sessions").insert_many(broken).await.unwrap();
    let source = express_store(&db, "sessions").await;
    let (client, log) = CommandLog::client().await;
    let target = MongoSessionStore::from_client(client)
        .database(&db.name)
        .collection("sessions_native")
        .build()
        .await
        .unwrap();

    // A dry run reports everything and writes nothing.
    let dry = target
        .migrate_from(&source, MigrateOptions::default().dry_run(true), |_| {})
        .await
        .unwrap();
    assert_eq!(
        (dry.examined, dry.converted),
        (SESSIONS as u64 + 2, SESSIONS as u64)
    );
    assert_eq!(dry.failures.len(), 2, "{:?}", dry.failures);
    assert!(
        dry.failures.iter().any(|f| f.contains("`session`")),
        "{:?}",
        dry.failures
    );
    assert!(
        dry.failures.iter().all(|f| !f.contains("broken-")),
        "ids are redacted"
    );
    assert_eq!(target.length().await.unwrap(), 0);

    let mut ticks = Vec::new();
    let report = target
        .migrate_from(&source, MigrateOptions::default(), |r| {
            ticks.push(r.examined)
        })
        .await
        .unwrap();
    assert_eq!(report.converted, SESSIONS as u64);
    let batches: Vec<u64> = (1..=10)
        .map(|b| b * 1_000)
        .chain([10_002, 10_002])
        .collect();
    assert_eq!(ticks, batches, "progress after each batch, and the orphans");

    // Every session is still valid for its user, under its old cookie id.
    for i in 0..SESSIONS {
        let id = format!("sid-{i:05}-abcdefghijklmnopqrstuv");
        let loaded = target.load(&id).await.unwrap().expect("a migrated session");
        assert_eq!(
            loaded.data,
            json!({"user": format!("user{i}"), "n": i})
                .as_object()
                .unwrap()
                .clone()
        );
    }
    assert_eq!(
        db.documents("sessions").await.len(),
        SESSIONS + 2,
        "the source is kept"
    );

    // A rerun writes no session; it marks the ledger, once a batch.
    log.clear();
    let rerun = target
        .migrate_from(&source, MigrateOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!((rerun.converted, rerun.unchanged), (0, SESSIONS as u64));
    assert_eq!(session_writes(&log, "sessions_native"), 0);
    assert!(log.writes() <= 11, "at most one ledger update a batch");

    // A session changed at the source since is copied again, alone.
    let changed =
        json!({"cookie": {"originalMaxAge": 1}, "user": "user7", "n": "changed"}).to_string();
    db.collection("sessions")
        .update_one(
            doc! {"_id": "sid-00007-abcdefghijklmnopqrstuv"},
            doc! {"$set": {"session": changed}},
        )
        .await
        .unwrap();
    let again: MigrationReport = target
        .migrate_from(&source, MigrateOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(again.converted, 1);
    let seven = target
        .load("sid-00007-abcdefghijklmnopqrstuv")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seven.data["n"], "changed");
    db.cleanup().await;
}

#[tokio::test]
async fn in_place_migration_moves_every_session_and_then_has_nothing_to_do() {
    let db = TestDb::new("migrateinplace").await;
    seed(&db, "sessions", 100).await;
    let source = express_store(&db, "sessions").await;
    let target = MongoSessionStore::from_client(db.client.clone())
        .database(&db.name)
        .build()
        .await
        .unwrap();
    let report = target
        .migrate_from(&source, MigrateOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!((report.converted, report.deferred), (100, 0));
    let documents = db.documents("sessions").await;
    assert_eq!(documents.len(), 100);
    assert!(documents
        .iter()
        .all(|d| d.contains_key("data") && !d.contains_key("session")));
    assert_eq!(
        target
            .load("sid-00042-abcdefghijklmnopqrstuv")
            .await
            .unwrap()
            .unwrap()
            .data["n"],
        42
    );
    let rerun = target
        .migrate_from(&source, MigrateOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(rerun, MigrationReport::default());
    db.cleanup().await;
}

async fn native_store(db: &TestDb, collection: &str) -> MongoSessionStore {
    MongoSessionStore::from_client(db.client.clone())
        .database(&db.name)
        .collection(collection)
        .build()
        .await
        .unwrap()
}

fn sid(i: usize) -> String {
    format!("sid-{i:05}-abcdefghijklmnopqrstuv")
}

async fn migrate(target: &MongoSessionStore, source: &MongoSessionStore) -> MigrationReport {
    target
        .migrate_from(source, MigrateOptions::default(), |_| {})
        .await
        .unwrap()
}

/// The write commands `log` recorded on `collection`.
fn session_writes(log: &CommandLog, collection: &str) -> usize {
    ["insert", "update", "delete", "findAndModify"]
        .iter()
        .flat_map(|name| log.commands(name))
        .filter(|command| command.iter().next().and_then(|(_, v)| v.as_str()) == Some(collection))
        .count()
}

/// Runs `change` against the database from inside the (synchronous)
/// progress callback, so it lands between two documents of one run.
fn meanwhile(change: impl std::future::Future<Output = ()>) {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(change));
}

#[tokio::test]
async fn a_rerun_removes_copies_of_sessions_logged_out_at_the_source_and_only_those() {
    let db = TestDb::new("migratelogout").await;
    seed(&db, "sessions", 4).await;
    let source = express_store(&db, "sessions").await;
    let target = native_store(&db, "native").await;
    assert_eq!(migrate(&target, &source).await.converted, 4);
    let native_own = target
        .create(json!({"mine": true}).as_object().unwrap(), None)
        .await
        .unwrap();
    // Session 2 is used on the native side, then its Express twin logs out.
    let mut two = target.load(&sid(2)).await.unwrap().unwrap().data;
    two.insert("cart".into(), json!(["book"]));
    target.save(&sid(2), &two, None).await.unwrap();

    let sessions = db.collection("sessions");
    for i in [1, 2] {
        sessions.delete_one(doc! {"_id": sid(i)}).await.unwrap();
    }
    let dry = target
        .migrate_from(&source, MigrateOptions::default().dry_run(true), |_| {})
        .await
        .unwrap();
    assert_eq!(dry.removed, 1, "{dry:?}");
    assert!(target.load(&sid(1)).await.unwrap().is_some(), "dry run");
    let rerun = migrate(&target, &source).await;
    assert_eq!((rerun.removed, rerun.unchanged), (1, 2), "{rerun:?}");
    assert!(target.load(&sid(1)).await.unwrap().is_none(), "logged out");
    assert!(
        target.load(&sid(2)).await.unwrap().is_some(),
        "changed on the native side since: the native side's now"
    );
    assert!(target.load(&sid(0)).await.unwrap().is_some());
    assert!(target.load(&native_own).await.unwrap().is_some());
    assert_eq!(migrate(&target, &source).await.removed, 0);
    db.cleanup().await;
}

#[tokio::test]
async fn a_rerun_does_not_bring_back_a_session_logged_out_on_the_native_side() {
    let db = TestDb::new("migratenativelogout").await;
    seed(&db, "sessions", 3).await;
    let source = express_store(&db, "sessions").await;
    let target = native_store(&db, "native").await;
    migrate(&target, &source).await;
    assert!(target.delete(&sid(0)).await.unwrap());

    let rerun = migrate(&target, &source).await;
    assert_eq!(
        (rerun.converted, rerun.kept_native, rerun.unchanged),
        (0, 1, 2)
    );
    assert!(target.load(&sid(0)).await.unwrap().is_none());

    // Decided: a source that changed since (the user still active on
    // Express) is copied again; the source is authoritative until cut-over.
    let changed = json!({"cookie": {"originalMaxAge": 1}, "n": "again"}).to_string();
    db.collection("sessions")
        .update_one(doc! {"_id": sid(0)}, doc! {"$set": {"session": changed}})
        .await
        .unwrap();
    assert_eq!(migrate(&target, &source).await.converted, 1);
    assert_eq!(
        target.load(&sid(0)).await.unwrap().unwrap().data["n"],
        "again"
    );
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_a_source_changed_or_logged_out_while_moving_leaves_no_native_copy() {
    let db = TestDb::new("migratedeferred").await;
    seed(&db, "sessions", 3).await;
    let source = express_store(&db, "sessions").await;
    let target = native_store(&db, "sessions").await;
    let sessions = db.collection("sessions");
    let changed = json!({"cookie": {"originalMaxAge": 1}, "n": "changed"}).to_string();
    // One at a time, so the change lands between two sessions' moves.
    let one_by_one = MigrateOptions::default().batch_size(1);
    let report = target
        .migrate_from(&source, one_by_one, |report| {
            if report.examined == 1 {
                // The cursor already holds 1 and 2 as they were.
                meanwhile(async {
                    sessions
                        .update_one(doc! {"_id": sid(1)}, doc! {"$set": {"session": &changed}})
                        .await
                        .unwrap();
                    sessions.delete_one(doc! {"_id": sid(2)}).await.unwrap();
                });
            }
        })
        .await
        .unwrap();
    assert_eq!((report.converted, report.deferred), (1, 2), "{report:?}");
    assert!(target.load(&sid(0)).await.unwrap().is_some());
    assert!(
        target.load(&sid(1)).await.unwrap().is_none(),
        "no stale copy beside the changed source"
    );
    assert!(
        target.load(&sid(2)).await.unwrap().is_none(),
        "a logout while moving stays a logout"
    );
    assert_eq!(db.documents("sessions").await.len(), 2);

    let rerun = migrate(&target, &source).await;
    assert_eq!(rerun.converted, 1);
    assert_eq!(
        target.load(&sid(1)).await.unwrap().unwrap().data["n"],
        "changed"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_session_without_a_creation_time_keeps_its_absolute_lifetime() {
    let db = TestDb::new("migratecreated").await;
    let now = DateTime::now().timestamp_millis();
    let minute = 60_000;
    let at = |offset: i64| DateTime::from_millis(now + offset);
    // connect-mongodb-session documents: no createdAt. The cookie was last
    // set 10 minutes ago for an hour, so the session is at least that old.
    let cookie = |max_age: Option<i64>| json!({"originalMaxAge": max_age, "path": "/"});
    let documents = [
        doc! {"_id": sid(0), "session": {"cookie": mongodb::bson::to_bson(&cookie(Some(60 * minute))).unwrap(), "n": 0}, "expires": at(50 * minute)},
        // A browser-session cookie: nothing to infer from but the migration time.
        doc! {"_id": sid(1), "session": {"cookie": mongodb::bson::to_bson(&cookie(None)).unwrap(), "n": 1}, "expires": at(60 * minute)},
        // lastModified tells more than the cookie here.
        doc! {"_id": sid(2), "session": {"cookie": mongodb::bson::to_bson(&cookie(Some(60 * minute))).unwrap(), "n": 2}, "expires": at(59 * minute), "lastModified": at(-3 * minute)},
    ];
    db.collection("sessions")
        .insert_many(documents)
        .await
        .unwrap();
    let source = MongoSessionStore::from_client(db.client.clone())
        .database(&db.name)
        .auto_remove(AutoRemove::Disabled)
        .express_layout(ExpressLayout::ConnectMongodbSession)
        .build()
        .await
        .unwrap();
    let lifetime = Duration::from_secs(5 * 60);
    let target = MongoSessionStore::from_client(db.client.clone())
        .database(&db.name)
        .collection("native")
        .absolute_timeout(lifetime)
        .build()
        .await
        .unwrap();
    let before = DateTime::now();
    assert_eq!(migrate(&target, &source).await.converted, 3);
    let after = DateTime::now();

    let stored = |i: usize| {
        let collection = db.collection("native");
        let key = target.stored_id(&sid(i));
        async move {
            collection
                .find_one(doc! {"_id": key})
                .await
                .unwrap()
                .unwrap()
        }
    };
    let zero = stored(0).await;
    assert_eq!(zero.get_datetime("createdAt").unwrap(), &at(-10 * minute));
    assert!(
        target.load(&sid(0)).await.unwrap().is_none(),
        "created at least 10 minutes ago: past a 5-minute lifetime"
    );
    let one = stored(1).await;
    let created = *one.get_datetime("createdAt").unwrap();
    assert!(before <= created && created <= after, "{created}");
    let cap = created.timestamp_millis() + lifetime.as_millis() as i64;
    assert!(
        one.get_datetime("expires").unwrap().timestamp_millis() <= cap,
        "the stored expiry is within the lifetime"
    );
    assert!(target.load(&sid(1)).await.unwrap().is_some());
    assert_eq!(
        stored(2).await.get_datetime("createdAt").unwrap(),
        &at(-3 * minute)
    );
    assert!(target.load(&sid(2)).await.unwrap().is_some());
    db.cleanup().await;
}

#[tokio::test]
async fn every_migration_operation_is_bounded_by_the_operation_timeout() {
    let proxy = match testkit::Proxy::start().await {
        Ok(proxy) => proxy,
        Err(reason) => {
            eprintln!("skipped: no proxy in front of this server ({reason})");
            return;
        }
    };
    let db = TestDb::new("migratetimeout").await;
    seed(&db, "sessions", 3).await;
    let source = express_store(&db, "sessions").await;
    let bound = Duration::from_secs(1);
    let target = MongoSessionStore::from_uri(proxy.uri(&db.name))
        .collection("native")
        .connect_timeout(Duration::from_secs(30))
        .operation_timeout(bound)
        .build()
        .await
        .unwrap();
    proxy.cut();
    let started = std::time::Instant::now();
    let err = target
        .migrate_from(&source, MigrateOptions::default(), |_| {})
        .await
        .unwrap_err()
        .error;
    assert!(err.is_timeout() || err.is_unreachable(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    proxy.restore();
    db.cleanup().await;
}

#[tokio::test]
async fn with_encryption_a_rerun_rewrites_only_what_changed_at_the_source() {
    let db = TestDb::new("migrateencrypted").await;
    seed(&db, "sessions", 5).await;
    let source = express_store(&db, "sessions").await;
    let (client, log) = CommandLog::client().await;
    let key = [7u8; 32];
    let target = MongoSessionStore::from_client(client)
        .database(&db.name)
        .collection("native")
        .encryption(mongodb_session_store::KeyRing::new(1, key).unwrap())
        .build()
        .await
        .unwrap();
    assert_eq!(migrate(&target, &source).await.converted, 5);
    log.clear();
    let rerun = migrate(&target, &source).await;
    assert_eq!((rerun.converted, rerun.unchanged), (0, 5));
    assert_eq!(
        session_writes(&log, "native"),
        0,
        "ciphertexts differ, yet nothing is rewritten"
    );
    db.collection("sessions")
        .update_one(
            doc! {"_id": sid(3)},
            doc! {"$set": {"session": json!({"n": "changed"}).to_string()}},
        )
        .await
        .unwrap();
    assert_eq!(migrate(&target, &source).await.converted, 1);
    assert_eq!(
        target.load(&sid(3)).await.unwrap().unwrap().data["n"],
        "changed"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_copy_interrupted_before_it_was_written_is_made_by_the_next_run() {
    let db = TestDb::new("migratepending").await;
    seed(&db, "sessions", 2).await;
    let source = express_store(&db, "sessions").await;
    let target = native_store(&db, "native").await;
    migrate(&target, &source).await;
    // As if the run had stopped between recording the copy and writing it.
    let key = target.stored_id(&sid(1));
    db.collection("native")
        .delete_one(doc! {"_id": &key})
        .await
        .unwrap();
    db.collection("native.migration")
        .update_one(doc! {"_id": &key}, doc! {"$set": {"pending": true}})
        .await
        .unwrap();

    let rerun = migrate(&target, &source).await;
    assert_eq!((rerun.converted, rerun.kept_native), (1, 0), "{rerun:?}");
    assert!(target.load(&sid(1)).await.unwrap().is_some());
    db.cleanup().await;
}

/// Issue #20, case 5: a re-copy continues the stored version, so requests
/// on two other instances that loaded the earlier copy see the change.
#[tokio::test]
async fn a_re_copy_moves_the_version_on_for_requests_holding_the_earlier_copy() {
    let db = TestDb::new("migrateversion").await;
    seed(&db, "sessions", 2).await;
    let source = express_store(&db, "sessions").await;
    let target = native_store(&db, "native").await;
    assert_eq!(migrate(&target, &source).await.converted, 2);
    // Two app instances: a write-through cache (no change stream, so only
    // versions tell it), and a store that must not lose an update.
    let instance = |client: mongodb::Client| {
        MongoSessionStore::from_client(client)
            .database(&db.name)
            .collection("native")
    };
    let other = || mongodb::Client::with_uri_str(db.uri());
    let cached = instance(other().await.unwrap())
        .cache(ReadCache::new().change_streams(false))
        .build()
        .await
        .unwrap();
    let strict = instance(other().await.unwrap())
        .on_conflict(ConflictPolicy::Fail)
        .build()
        .await
        .unwrap();
    let on_cached = cached.load(&sid(0)).await.unwrap().unwrap();
    let on_strict = strict.load(&sid(1)).await.unwrap().unwrap();

    for i in [0, 1] {
        let changed = json!({"cookie": {"originalMaxAge": 1}, "user": "u", "n": "changed"});
        db.collection("sessions")
            .update_one(
                doc! {"_id": sid(i)},
                doc! {"$set": {"session": changed.to_string()}},
            )
            .await
            .unwrap();
    }
    assert_eq!(migrate(&target, &source).await.converted, 2);
    let key = target.stored_id(&sid(0));
    let stored = db
        .collection("native")
        .find_one(doc! {"_id": &key})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.get_i64("version").unwrap(),
        1,
        "continued, not reset to 0"
    );

    // The cached instance's request adds a key: its cache must not keep
    // the map it loaded before the re-copy as if it were stored.
    let mut data = on_cached.into_map();
    data.insert("m".into(), json!(1));
    cached.save(&sid(0), &data, None).await.unwrap();
    let served = cached.load(&sid(0)).await.unwrap().unwrap();
    assert_eq!(served.data["n"], "changed", "a map that was never stored");
    assert_eq!(
        served.data,
        target.load(&sid(0)).await.unwrap().unwrap().data
    );

    // The strict instance's request loaded n = 1 and changes n: a conflict,
    // not a silent overwrite of the re-copy.
    let mut data = on_strict.into_map();
    data.insert("n".into(), json!(2));
    let lost = strict.save(&sid(1), &data, None).await;
    assert!(
        lost.is_err_and(|e| e.is_conflict()),
        "the re-copy would be lost"
    );
    cached.close().await;
    strict.close().await;
    db.cleanup().await;
}

/// A copy the native side deleted and the migration makes again (its
/// source changed) gets a version past any the deleted one reached.
#[tokio::test]
async fn a_copy_made_again_after_a_native_logout_does_not_reuse_a_version() {
    let db = TestDb::new("migrateversionagain").await;
    seed(&db, "sessions", 1).await;
    let source = express_store(&db, "sessions").await;
    let target = native_store(&db, "native").await;
    migrate(&target, &source).await;
    let mut data = target.load(&sid(0)).await.unwrap().unwrap().into_map();
    for n in 0..3 {
        data.insert("k".into(), json!(n));
        target.save(&sid(0), &data, None).await.unwrap();
    }
    let key = target.stored_id(&sid(0));
    let native = db.collection("native");
    let reached = native.find_one(doc! {"_id": &key}).await.unwrap().unwrap();
    let reached = reached.get_i64("version").unwrap();
    assert!(target.delete(&sid(0)).await.unwrap());
    let changed = json!({"cookie": {"originalMaxAge": 1}, "n": "again"}).to_string();
    db.collection("sessions")
        .update_one(doc! {"_id": sid(0)}, doc! {"$set": {"session": changed}})
        .await
        .unwrap();
    assert_eq!(migrate(&target, &source).await.converted, 1);
    let again = native.find_one(doc! {"_id": &key}).await.unwrap().unwrap();
    assert!(again.get_i64("version").unwrap() > reached, "{again}");
    db.cleanup().await;
}
