//! Operations over the whole collection in bounded batches: every round
//! trip handles at most a batch, a failure part way reports what was done,
//! and a rerun finishes the job. (How fast, at 10,000 to 1,000,000
//! sessions, is the scale benchmark's: `scripts/bench-scale`.)

use std::future::IntoFuture;

use mongodb::{
    bson::{doc, Bson, DateTime, Document},
    Client,
};
use mongodb_session_store::{
    admin::BatchOptions, express::migrate::MigrateOptions, AutoRemove, MongoSessionStore,
};
use testkit::{
    fault::{FailPoint, Times},
    CommandLog, TestDb,
};

use crate::common::{connect_mongo, count, Build};

/// `count` native documents expiring `in_ms` from now, ids `<prefix>00000…`.
async fn seed_native(db: &TestDb, prefix: &str, count: usize, in_ms: i64) {
    let now = DateTime::now();
    let expires = DateTime::from_millis(now.timestamp_millis() + in_ms);
    let documents: Vec<Document> = (0..count)
        .map(|i| {
            doc! {
                "_id": format!("{prefix}{i:05}"), "data": { "n": i as i64 },
                "expires": expires, "createdAt": now, "lastModified": now, "version": 0_i64,
            }
        })
        .collect();
    insert(db, documents).await;
}

/// Inserts `documents` into `sessions`, a thousand at a time.
async fn insert(db: &TestDb, documents: Vec<Document>) {
    for chunk in documents.chunks(1000) {
        let sessions = db.collection("sessions");
        sessions.insert_many(chunk.to_vec()).await.unwrap();
    }
}

/// A store on the test database, on `client`, that leaves expired sessions
/// for the test to purge.
async fn purging_store(db: &TestDb, client: Client) -> MongoSessionStore {
    let builder = MongoSessionStore::from_client(client).database(&db.name);
    builder.auto_remove(AutoRemove::Disabled).built().await
}

/// Makes every `command` of the client named `app` fail once `passing`
/// have passed; or says why the server will not.
async fn failing_after(
    db: &TestDb,
    app: &str,
    command: &str,
    passing: u32,
) -> Result<FailPoint, String> {
    let error = doc! { "errorCode": 2 };
    let times = Times::Skip(passing);
    FailPoint::fail_command(&db.client, app, &[command], times, error).await
}

/// Every round trip of a purge `log` recorded was bounded by the batch
/// (100): no unbounded deleteMany.
fn assert_purge_bounded(log: &CommandLog) {
    for delete in log.commands("delete") {
        let deletes = delete.get_array("deletes").unwrap();
        let filter = deletes[0].as_document().unwrap().get_document("q").unwrap();
        let clauses = filter.get_array("$and").unwrap();
        let ids = clauses[0].as_document().unwrap();
        let ids = ids.get_document("_id").unwrap().get_array("$in").unwrap();
        assert!(ids.len() <= 100, "{} ids in one deleteMany", ids.len());
    }
    // One cursor, read a batch per round trip.
    for read in [log.commands("find"), log.commands("getMore")].concat() {
        let batch = match read.get("batchSize") {
            Some(Bson::Int32(n)) => Some(i64::from(*n)),
            Some(Bson::Int64(n)) => Some(*n),
            _ => None,
        };
        assert_eq!(batch, Some(100), "{read}");
    }
}

#[tokio::test]
async fn a_purge_that_fails_in_a_middle_batch_reports_what_it_deleted_and_a_rerun_finishes() {
    let db = TestDb::new("scale_purge").await;
    seed_native(&db, "old-", 5_000, -60_000).await;
    seed_native(&db, "live-", 10, 3_600_000).await;
    let (client, log) = CommandLog::named_client("scale-purge").await;
    let store = purging_store(&db, client).await;
    let batches = BatchOptions::default().size(100);
    // The 21st deleteMany, and every one after it, fails.
    let fail = match failing_after(&db, "scale-purge", "delete", 20).await {
        Ok(fail) => fail,
        Err(skipped) => return eprintln!("{skipped}"),
    };
    let mut seen = Vec::new();
    let stopped = store
        .delete_expired_with(batches, |n| seen.push(n))
        .await
        .expect_err("the 21st batch fails");
    fail.off().await;
    assert_eq!(stopped.done, 2_000, "20 batches of 100: {}", stopped.error);
    assert!(stopped.error.is_database(), "{}", stopped.error);
    assert_eq!(seen.last(), Some(&2_000), "progress after each batch");
    assert_eq!(seen.len(), 20);
    assert_eq!(count(&db).await, 3_010);

    let rerun = store.delete_expired_with(batches, |_| {}).await;
    assert_eq!(rerun.unwrap(), 3_000);
    let sessions = db.collection("sessions");
    let left: Vec<Bson> = sessions.distinct("_id", doc! {}).await.unwrap();
    assert_eq!(left.len(), 10, "only the live sessions are left");
    assert!(left
        .iter()
        .all(|id| id.as_str().unwrap().starts_with("live-")));
    assert_purge_bounded(&log);
}

/// Past 100 batches a purge reads through a new cursor (a server may
/// gather a whole cursor's results before its first batch): 250 expired
/// sessions in batches of 2 are three finds of at most 200, and every one
/// is deleted.
#[tokio::test]
async fn a_purge_longer_than_one_cursor_deletes_every_expired_session() {
    let db = TestDb::new("scale_purge_segments").await;
    seed_native(&db, "old-", 250, -60_000).await;
    seed_native(&db, "live-", 3, 3_600_000).await;
    let (client, log) = CommandLog::named_client("scale-segments").await;
    let store = purging_store(&db, client).await;
    let deleted = store.delete_expired_with(BatchOptions::default().size(2), |_| {});
    assert_eq!(deleted.await.unwrap(), 250);
    assert_eq!(count(&db).await, 3);
    let limits: Vec<Option<i64>> = log
        .commands("find")
        .iter()
        .filter(|find| find.get_str("find") == Ok("sessions"))
        .map(|find| find.get_i64("limit").ok())
        .collect();
    assert_eq!(limits, [Some(200); 3], "two full cursors and an empty one");
}

/// Two instances purge one collection at once (each app's interval
/// reaper): between them every expired session is deleted exactly once,
/// the live ones stay, and neither fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_purging_at_once_delete_each_expired_session_once() {
    let db = TestDb::new("scale_purge_two").await;
    seed_native(&db, "old-", 5_000, -60_000).await;
    seed_native(&db, "live-", 10, 3_600_000).await;
    let one = purging_store(&db, db.client.clone()).await;
    let two = purging_store(&db, db.client.clone()).await;
    let batches = BatchOptions::default().size(100);
    let (a, b) = tokio::join!(
        one.delete_expired_with(batches, |_| {}),
        two.delete_expired_with(batches, |_| {})
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a + b, 5_000, "{a} + {b}");
    assert_eq!(count(&db).await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_touched_while_a_purge_runs_is_not_deleted() {
    let db = TestDb::new("scale_purge_touch").await;
    seed_native(&db, "old-", 3, -60_000).await;
    let store = purging_store(&db, db.client.clone()).await;
    let sessions = db.collection("sessions");
    let later = DateTime::from_millis(DateTime::now().timestamp_millis() + 3_600_000);
    let deleted = store
        .delete_expired_with(BatchOptions::default().size(1), |n| {
            if n == 1 {
                // Between two batches, a request touches the last one.
                let touch = sessions.update_one(
                    doc! { "_id": "old-00002" },
                    doc! { "$set": { "expires": later } },
                );
                tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current()
                        .block_on(touch.into_future())
                        .unwrap()
                });
            }
        })
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    let left = db.documents("sessions").await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].get_str("_id").unwrap(), "old-00002");
}

/// `count` connect-mongo documents, ids `sid-00000…`.
async fn seed_connect_mongo(db: &TestDb, count: usize) {
    let expires = DateTime::from_millis(DateTime::now().timestamp_millis() + 3_600_000);
    let documents: Vec<Document> = (0..count)
        .map(|i| {
            let session = format!(r#"{{"cookie":{{"originalMaxAge":3600000}},"n":{i}}}"#);
            doc! { "_id": format!("sid-{i:05}"), "session": session, "expires": expires }
        })
        .collect();
    insert(db, documents).await;
}

/// Every round trip of a migration `log` recorded carried at most a batch
/// (100).
fn assert_migration_bounded(log: &CommandLog) {
    for insert in log.commands("insert") {
        assert!(insert.get_array("documents").unwrap().len() <= 100);
    }
    for find in log.commands("find") {
        if let Ok(filter) = find.get_document("filter") {
            let ids = filter
                .get_document("_id")
                .and_then(|id| id.get_array("$in"));
            assert!(ids.map_or(0, Vec::len) <= 100, "{find}");
        }
    }
}

#[tokio::test]
async fn a_migration_that_fails_in_a_middle_batch_reports_what_it_did_and_a_rerun_finishes() {
    let db = TestDb::new("scale_migrate").await;
    seed_connect_mongo(&db, 5_000).await;
    let source = connect_mongo(&db, "sessions").await;
    let (client, log) = CommandLog::named_client("scale-migrate").await;
    let target = MongoSessionStore::from_client(client).database(&db.name);
    let target = target.collection("native").built().await;
    let options = MigrateOptions::default().batch_size(100);
    // A first copy inserts three times a batch: its record, its ledger
    // entries, its copies. The 21st batch's copies fail, after its entries
    // were recorded as pending.
    let fail = match failing_after(&db, "scale-migrate", "insert", 3 * 20 + 2).await {
        Ok(fail) => fail,
        Err(skipped) => return eprintln!("{skipped}"),
    };
    let stopped = target
        .migrate_from(&source, options, |_| {})
        .await
        .expect_err("the 21st batch fails");
    fail.off().await;
    let done = &stopped.done;
    let copied = (done.examined, done.converted);
    assert_eq!(copied, (2_000, 2_000), "{}", stopped.error);
    assert!(stopped.error.is_database(), "{}", stopped.error);
    let native = db.collection("native");
    assert_eq!(native.count_documents(doc! {}).await.unwrap(), 2_000);
    assert_migration_bounded(&log);

    let rerun = target.migrate_from(&source, options, |_| {}).await.unwrap();
    assert_eq!(
        (rerun.examined, rerun.converted, rerun.unchanged),
        (5_000, 3_000, 2_000),
        "the pending batch is copied too: {rerun:?}"
    );
    assert_eq!(native.count_documents(doc! {}).await.unwrap(), 5_000);
    for i in [0, 2_050, 4_999] {
        let loaded = target.load(&format!("sid-{i:05}")).await.unwrap();
        assert_eq!(loaded.expect("migrated").data["n"], i as i64);
    }
    let again = target.migrate_from(&source, options, |_| {}).await.unwrap();
    assert_eq!((again.converted, again.unchanged), (0, 5_000));
}
