//! Moving connect-mongo sessions to the native layout without logging
//! anyone out.

use std::time::{Duration, SystemTime};

use mongodb::bson::{doc, DateTime, Document};
use mongodb_session_store::{
    express::ExpressLayout,
    migrate::{MigrateOptions, MigrationReport},
    AutoRemove, MongoSessionStore,
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

    let mut ticks = 0;
    let report = target
        .migrate_from(&source, MigrateOptions::default(), |_| ticks += 1)
        .await
        .unwrap();
    assert_eq!(report.converted, SESSIONS as u64);
    assert_eq!(ticks, SESSIONS + 2, "progress after every document");

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

    // A rerun writes nothing.
    log.clear();
    let rerun = target
        .migrate_from(&source, MigrateOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!((rerun.converted, rerun.unchanged), (0, SESSIONS as u64));
    assert_eq!(log.writes(), 0);

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
