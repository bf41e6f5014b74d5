//! Operations over the whole collection in bounded batches: every round
//! trip handles at most a batch, a failure part way reports what was done,
//! and a rerun finishes the job. (How fast, at 10,000 to 1,000,000
//! sessions, is the scale benchmark's: `scripts/bench-scale`.)

use std::{
    future::IntoFuture,
    sync::{Arc, Mutex},
};

use mongodb::{
    bson::{doc, Bson, DateTime, Document},
    event::{command::CommandEvent, EventHandler},
    options::ClientOptions,
    Client,
};
use mongodb_session_store::{
    admin::BatchOptions,
    express::{migrate::MigrateOptions, ExpressLayout},
    AutoRemove, MongoSessionStore,
};
use testkit::{
    fault::{FailPoint, Times},
    TestDb,
};

/// The commands a client sent, by name, with their bodies.
type Sent = Arc<Mutex<Vec<(String, Document)>>>;

/// A client named `app` (for failpoints) whose commands are recorded.
pub(crate) async fn named_client(app: &str) -> (Client, Sent) {
    let mut options = ClientOptions::parse(testkit::mongodb_uri()).await.unwrap();
    options.app_name = Some(app.into());
    let sent = Sent::default();
    let sink = Arc::clone(&sent);
    options.command_event_handler = Some(EventHandler::callback(move |event| {
        if let CommandEvent::Started(started) = event {
            let entry = (started.command_name, started.command);
            sink.lock().unwrap().push(entry);
        }
    }));
    (Client::with_options(options).unwrap(), sent)
}

pub(crate) fn sent(log: &Sent, name: &str) -> Vec<Document> {
    let log = log.lock().unwrap();
    let named = log.iter().filter(|(n, _)| n == name);
    named.map(|(_, command)| command.clone()).collect()
}

/// `count` native documents expiring `in_ms` from now, ids `<prefix>00000…`.
pub(crate) async fn seed_native(db: &TestDb, prefix: &str, count: usize, in_ms: i64) {
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
    for chunk in documents.chunks(1000) {
        db.collection("sessions")
            .insert_many(chunk.to_vec())
            .await
            .unwrap();
    }
}

async fn purging_store(db: &TestDb, client: Client) -> MongoSessionStore {
    MongoSessionStore::from_client(client)
        .database(&db.name)
        .auto_remove(AutoRemove::Disabled)
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_purge_that_fails_in_a_middle_batch_reports_what_it_deleted_and_a_rerun_finishes() {
    let db = TestDb::new("scale_purge").await;
    seed_native(&db, "old-", 5_000, -60_000).await;
    seed_native(&db, "live-", 10, 3_600_000).await;
    let (client, log) = named_client("scale-purge").await;
    let store = purging_store(&db, client).await;
    let batches = BatchOptions::default().size(100);
    // The 21st deleteMany, and every one after it, fails.
    let fail = FailPoint::fail_command(
        &db.client,
        "scale-purge",
        &["delete"],
        Times::Skip(20),
        doc! { "errorCode": 2 },
    )
    .await;
    let fail = match fail {
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
    let sessions = db.collection("sessions");
    assert_eq!(sessions.count_documents(doc! {}).await.unwrap(), 3_010);

    assert_eq!(
        store.delete_expired_with(batches, |_| {}).await.unwrap(),
        3_000
    );
    let left: Vec<Bson> = sessions
        .distinct("_id", doc! {})
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(left.len(), 10, "only the live sessions are left");
    assert!(left
        .iter()
        .all(|id| id.as_str().unwrap().starts_with("live-")));

    // Every round trip was bounded by the batch: no unbounded deleteMany.
    for delete in sent(&log, "delete") {
        let deletes = delete.get_array("deletes").unwrap();
        let filter = deletes[0].as_document().unwrap().get_document("q").unwrap();
        let ids = filter
            .get_document("_id")
            .unwrap()
            .get_array("$in")
            .unwrap();
        assert!(ids.len() <= 100, "{} ids in one deleteMany", ids.len());
    }
    for find in sent(&log, "find") {
        assert_eq!(find.get_i64("limit").ok(), Some(100), "{find}");
    }
    db.cleanup().await;
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
    db.cleanup().await;
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
    for chunk in documents.chunks(1000) {
        db.collection("sessions")
            .insert_many(chunk.to_vec())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_migration_that_fails_in_a_middle_batch_reports_what_it_did_and_a_rerun_finishes() {
    let db = TestDb::new("scale_migrate").await;
    seed_connect_mongo(&db, 5_000).await;
    let source = MongoSessionStore::from_client(db.client.clone())
        .database(&db.name)
        .auto_remove(AutoRemove::Disabled)
        .express_layout(ExpressLayout::ConnectMongo)
        .build()
        .await
        .unwrap();
    let (client, log) = named_client("scale-migrate").await;
    let target = MongoSessionStore::from_client(client)
        .database(&db.name)
        .collection("native")
        .build()
        .await
        .unwrap();
    let options = MigrateOptions::default().batch_size(100);
    // A first copy inserts three times a batch: its record, its ledger
    // entries, its copies. The 21st batch's copies fail, after its entries
    // were recorded as pending.
    let fail = FailPoint::fail_command(
        &db.client,
        "scale-migrate",
        &["insert"],
        Times::Skip(3 * 20 + 2),
        doc! { "errorCode": 2 },
    )
    .await;
    let fail = match fail {
        Ok(fail) => fail,
        Err(skipped) => return eprintln!("{skipped}"),
    };
    let stopped = target
        .migrate_from(&source, options, |_| {})
        .await
        .expect_err("the 21st batch fails");
    fail.off().await;
    let done = &stopped.done;
    assert_eq!(
        (done.examined, done.converted),
        (2_000, 2_000),
        "{}",
        stopped.error
    );
    assert!(stopped.error.is_database(), "{}", stopped.error);
    let native = db.collection("native");
    assert_eq!(native.count_documents(doc! {}).await.unwrap(), 2_000);
    // Bounded: every round trip carried at most a batch.
    for insert in sent(&log, "insert") {
        assert!(insert.get_array("documents").unwrap().len() <= 100);
    }
    for find in sent(&log, "find") {
        if let Ok(filter) = find.get_document("filter") {
            let ids = filter
                .get_document("_id")
                .and_then(|id| id.get_array("$in"));
            assert!(ids.map_or(0, Vec::len) <= 100, "{find}");
        }
    }

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
    db.cleanup().await;
}
