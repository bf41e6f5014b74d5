//! Moving connect-mongo sessions to the native layout without logging
//! anyone out.

use std::time::{Duration, SystemTime};

use mongodb::bson::{doc, DateTime, Document};
use mongodb_session_store::{
    express::migrate::{MigrateOptions, MigrationReport},
    express::ExpressLayout,
    AutoRemove, ConflictPolicy, MongoSessionStore, ReadCache,
};
use serde_json::{json, Value};
use testkit::{CommandLog, TestDb};

use crate::common::{builder, connect_mongo, data, instance, loaded, map, raw, Build};

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

/// A fresh database named after `test` with `count` connect-mongo sessions
/// in `sessions`, and a store that reads them: a migration's source.
async fn seeded(test: &str, count: usize) -> (TestDb, MongoSessionStore) {
    let db = TestDb::new(test).await;
    seed(&db, "sessions", count).await;
    let source = connect_mongo(&db, "sessions").await;
    (db, source)
}

/// A store of the native layout on `collection` of the test database.
async fn native_store(db: &TestDb, collection: &str) -> MongoSessionStore {
    builder(db).collection(collection).built().await
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

/// A dry run of the migration: what it would do.
async fn dry_run(target: &MongoSessionStore, source: &MongoSessionStore) -> MigrationReport {
    let dry = MigrateOptions::default().dry_run(true);
    target.migrate_from(source, dry, |_| {}).await.unwrap()
}

/// Replaces the connect-mongo session `i` at the source with `session`,
/// as the Express app would.
async fn change_at_source(db: &TestDb, i: usize, session: Value) {
    let change = doc! {"$set": {"session": session.to_string()}};
    let sessions = db.collection("sessions");
    sessions
        .update_one(doc! {"_id": sid(i)}, change)
        .await
        .unwrap();
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

/// `SESSIONS` connect-mongo sessions and two it cannot read (a session
/// that is no JSON, an expiry that is no date).
async fn seed_with_two_broken(db: &TestDb) {
    seed(db, "sessions", SESSIONS).await;
    let expires = DateTime::from_system_time(SystemTime::now() + Duration::from_secs(3600));
    let broken = [
        doc! {"_id": "broken-json", "session": "{not json", "expires": expires},
        doc! {"_id": "broken-expiry", "session": "{}", "expires": "tomorrow"},
    ];
    db.collection("sessions").insert_many(broken).await.unwrap();
}

/// A dry run reports everything (the broken two without their ids) and
/// writes nothing.
async fn a_dry_run_reports_and_writes_nothing(
    target: &MongoSessionStore,
    source: &MongoSessionStore,
) {
    let dry = dry_run(target, source).await;
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
}

/// Every session is still valid for its user, under its old cookie id.
async fn every_session_is_valid_under_its_old_id(target: &MongoSessionStore) {
    for i in 0..SESSIONS {
        let id = format!("sid-{i:05}-abcdefghijklmnopqrstuv");
        let loaded = target.load(&id).await.unwrap().expect("a migrated session");
        let expected = map(json!({"user": format!("user{i}"), "n": i}));
        assert_eq!(loaded.data, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_sessions_migrate_stay_valid_and_a_rerun_is_a_no_op() {
    let db = TestDb::new("migrate10k").await;
    seed_with_two_broken(&db).await;
    let source = connect_mongo(&db, "sessions").await;
    let (client, log) = CommandLog::client().await;
    let target = MongoSessionStore::from_client(client).database(&db.name);
    let target = target.collection("sessions_native").built().await;
    a_dry_run_reports_and_writes_nothing(&target, &source).await;

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
    every_session_is_valid_under_its_old_id(&target).await;
    let source_kept = db.documents("sessions").await.len();
    assert_eq!(source_kept, SESSIONS + 2, "the source is kept");

    // A rerun writes no session; it marks the ledger, once a batch.
    log.clear();
    let rerun = migrate(&target, &source).await;
    assert_eq!((rerun.converted, rerun.unchanged), (0, SESSIONS as u64));
    assert_eq!(session_writes(&log, "sessions_native"), 0);
    assert!(log.writes() <= 11, "at most one ledger update a batch");

    // A session changed at the source since is copied again, alone.
    let changed = json!({"cookie": {"originalMaxAge": 1}, "user": "user7", "n": "changed"});
    change_at_source(&db, 7, changed).await;
    let again: MigrationReport = migrate(&target, &source).await;
    assert_eq!(again.converted, 1);
    let seven = data(&target, "sid-00007-abcdefghijklmnopqrstuv").await;
    assert_eq!(seven["n"], "changed");
}

#[tokio::test]
async fn in_place_migration_moves_every_session_and_then_has_nothing_to_do() {
    let (db, source) = seeded("migrateinplace", 100).await;
    let target = builder(&db).built().await;
    let report = migrate(&target, &source).await;
    assert_eq!((report.converted, report.deferred), (100, 0));
    let documents = db.documents("sessions").await;
    assert_eq!(documents.len(), 100);
    assert!(documents
        .iter()
        .all(|d| d.contains_key("data") && !d.contains_key("session")));
    let forty_two = data(&target, "sid-00042-abcdefghijklmnopqrstuv").await;
    assert_eq!(forty_two["n"], 42);
    let rerun = migrate(&target, &source).await;
    assert_eq!(rerun, MigrationReport::default());
}

#[tokio::test]
async fn a_rerun_removes_copies_of_sessions_logged_out_at_the_source_and_only_those() {
    let (db, source) = seeded("migratelogout", 4).await;
    let target = native_store(&db, "native").await;
    assert_eq!(migrate(&target, &source).await.converted, 4);
    let native_own = target
        .create(json!({"mine": true}).as_object().unwrap(), None)
        .await
        .unwrap();
    // Session 2 is used on the native side, then its Express twin logs out.
    let mut two = data(&target, &sid(2)).await;
    two.insert("cart".into(), json!(["book"]));
    target.save(&sid(2), &two, None).await.unwrap();

    let sessions = db.collection("sessions");
    for i in [1, 2] {
        sessions.delete_one(doc! {"_id": sid(i)}).await.unwrap();
    }
    let dry = dry_run(&target, &source).await;
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
}

#[tokio::test]
async fn a_rerun_does_not_bring_back_a_session_logged_out_on_the_native_side() {
    let (db, source) = seeded("migratenativelogout", 3).await;
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
    let changed = json!({"cookie": {"originalMaxAge": 1}, "n": "again"});
    change_at_source(&db, 0, changed).await;
    assert_eq!(migrate(&target, &source).await.converted, 1);
    assert_eq!(data(&target, &sid(0)).await["n"], "again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_a_source_changed_or_logged_out_while_moving_leaves_no_native_copy() {
    let (db, source) = seeded("migratedeferred", 3).await;
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
    assert_eq!(data(&target, &sid(1)).await["n"], "changed");
}

/// Three connect-mongodb-session documents (no createdAt), dates relative
/// to `now` (ms): a cookie last set 10 minutes ago for an hour, a
/// browser-session cookie, and one whose lastModified says more.
async fn seed_without_creation_times(db: &TestDb, now: i64) {
    let minute = 60_000;
    let at = |offset: i64| DateTime::from_millis(now + offset);
    let cookie = |max_age: Option<i64>| {
        let cookie = json!({"originalMaxAge": max_age, "path": "/"});
        mongodb::bson::to_bson(&cookie).unwrap()
    };
    let documents = [
        doc! {"_id": sid(0), "session": {"cookie": cookie(Some(60 * minute)), "n": 0}, "expires": at(50 * minute)},
        // A browser-session cookie: nothing to infer from but the migration time.
        doc! {"_id": sid(1), "session": {"cookie": cookie(None), "n": 1}, "expires": at(60 * minute)},
        // lastModified tells more than the cookie here.
        doc! {"_id": sid(2), "session": {"cookie": cookie(Some(60 * minute)), "n": 2}, "expires": at(59 * minute), "lastModified": at(-3 * minute)},
    ];
    let sessions = db.collection("sessions");
    sessions.insert_many(documents).await.unwrap();
}

#[tokio::test]
async fn a_session_without_a_creation_time_keeps_its_absolute_lifetime() {
    let db = TestDb::new("migratecreated").await;
    let now = DateTime::now().timestamp_millis();
    let minute = 60_000;
    let at = |offset: i64| DateTime::from_millis(now + offset);
    // connect-mongodb-session documents: no createdAt. The cookie was last
    // set 10 minutes ago for an hour, so the session is at least that old.
    seed_without_creation_times(&db, now).await;
    let source = builder(&db).auto_remove(AutoRemove::Disabled);
    let layout = ExpressLayout::ConnectMongodbSession;
    let source = source.express_layout(layout).built().await;
    let lifetime = Duration::from_secs(5 * 60);
    let target = builder(&db).collection("native");
    let target = target.absolute_timeout(lifetime).built().await;
    let before = DateTime::now();
    assert_eq!(migrate(&target, &source).await.converted, 3);
    let after = DateTime::now();

    let zero = raw(&db, &target, &sid(0)).await;
    assert_eq!(zero.get_datetime("createdAt").unwrap(), &at(-10 * minute));
    assert!(
        target.load(&sid(0)).await.unwrap().is_none(),
        "created at least 10 minutes ago: past a 5-minute lifetime"
    );
    let one = raw(&db, &target, &sid(1)).await;
    let created = *one.get_datetime("createdAt").unwrap();
    assert!(before <= created && created <= after, "{created}");
    let cap = created.timestamp_millis() + lifetime.as_millis() as i64;
    assert!(
        one.get_datetime("expires").unwrap().timestamp_millis() <= cap,
        "the stored expiry is within the lifetime"
    );
    assert!(target.load(&sid(1)).await.unwrap().is_some());
    let two = raw(&db, &target, &sid(2)).await;
    assert_eq!(two.get_datetime("createdAt").unwrap(), &at(-3 * minute));
    assert!(target.load(&sid(2)).await.unwrap().is_some());
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
    let (db, source) = seeded("migratetimeout", 3).await;
    let bound = Duration::from_secs(1);
    let target = MongoSessionStore::from_uri(proxy.uri(&db.name)).collection("native");
    let target = target.connect_timeout(Duration::from_secs(30));
    let target = target.operation_timeout(bound).built().await;
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
}

#[tokio::test]
async fn with_encryption_a_rerun_rewrites_only_what_changed_at_the_source() {
    let (db, source) = seeded("migrateencrypted", 5).await;
    let (client, log) = CommandLog::client().await;
    let key = [7u8; 32];
    let ring = mongodb_session_store::KeyRing::new(1, key).unwrap();
    let target = MongoSessionStore::from_client(client).database(&db.name);
    let target = target.collection("native").encryption(ring).built().await;
    assert_eq!(migrate(&target, &source).await.converted, 5);
    log.clear();
    let rerun = migrate(&target, &source).await;
    assert_eq!((rerun.converted, rerun.unchanged), (0, 5));
    assert_eq!(
        session_writes(&log, "native"),
        0,
        "ciphertexts differ, yet nothing is rewritten"
    );
    change_at_source(&db, 3, json!({"n": "changed"})).await;
    assert_eq!(migrate(&target, &source).await.converted, 1);
    assert_eq!(data(&target, &sid(3)).await["n"], "changed");
}

#[tokio::test]
async fn a_copy_interrupted_before_it_was_written_is_made_by_the_next_run() {
    let (db, source) = seeded("migratepending", 2).await;
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
}

/// Two app instances on the migration's target, each with a client of its
/// own: a write-through cache (no change stream, so only versions tell it),
/// and a store that must not lose an update.
async fn cached_and_strict(db: &TestDb) -> (MongoSessionStore, MongoSessionStore) {
    let on_native = || instance(db).collection("native");
    let no_stream = ReadCache::new().change_streams(false);
    let cached = on_native().cache(no_stream).built().await;
    let strict = on_native().on_conflict(ConflictPolicy::Fail).built().await;
    (cached, strict)
}

/// Issue #20, case 5: a re-copy continues the stored version, so requests
/// on two other instances that loaded the earlier copy see the change.
#[tokio::test]
async fn a_re_copy_moves_the_version_on_for_requests_holding_the_earlier_copy() {
    let (db, source) = seeded("migrateversion", 2).await;
    let target = native_store(&db, "native").await;
    assert_eq!(migrate(&target, &source).await.converted, 2);
    let (cached, strict) = cached_and_strict(&db).await;
    let on_cached = loaded(&cached, &sid(0)).await;
    let on_strict = loaded(&strict, &sid(1)).await;

    for i in [0, 1] {
        let changed = json!({"cookie": {"originalMaxAge": 1}, "user": "u", "n": "changed"});
        change_at_source(&db, i, changed).await;
    }
    assert_eq!(migrate(&target, &source).await.converted, 2);
    let stored = raw(&db, &target, &sid(0)).await;
    let version = stored.get_i64("version").unwrap();
    assert_eq!(version, 1, "continued, not reset to 0");

    // The cached instance's request adds a key: its cache must not keep
    // the map it loaded before the re-copy as if it were stored.
    let mut added = on_cached;
    added.insert("m".into(), json!(1));
    cached.save(&sid(0), &added, None).await.unwrap();
    let served = cached.load(&sid(0)).await.unwrap().unwrap();
    assert_eq!(served.data["n"], "changed", "a map that was never stored");
    assert_eq!(served.data, data(&target, &sid(0)).await);

    // The strict instance's request loaded n = 1 and changes n: a conflict,
    // not a silent overwrite of the re-copy.
    let mut changed = on_strict;
    changed.insert("n".into(), json!(2));
    let lost = strict.save(&sid(1), &changed, None).await;
    assert!(
        lost.is_err_and(|e| e.is_conflict()),
        "the re-copy would be lost"
    );
    cached.close().await;
    strict.close().await;
}

/// A copy the native side deleted and the migration makes again (its
/// source changed) gets a version past any the deleted one reached.
#[tokio::test]
async fn a_copy_made_again_after_a_native_logout_does_not_reuse_a_version() {
    let (db, source) = seeded("migrateversionagain", 1).await;
    let target = native_store(&db, "native").await;
    migrate(&target, &source).await;
    let mut tracked = loaded(&target, &sid(0)).await;
    for n in 0..3 {
        tracked.insert("k".into(), json!(n));
        target.save(&sid(0), &tracked, None).await.unwrap();
    }
    let reached = raw(&db, &target, &sid(0)).await;
    let reached = reached.get_i64("version").unwrap();
    assert!(target.delete(&sid(0)).await.unwrap());
    let changed = json!({"cookie": {"originalMaxAge": 1}, "n": "again"});
    change_at_source(&db, 0, changed).await;
    assert_eq!(migrate(&target, &source).await.converted, 1);
    let again = raw(&db, &target, &sid(0)).await;
    assert!(again.get_i64("version").unwrap() > reached, "{again}");
}
