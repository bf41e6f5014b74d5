//! The commands over the whole collection in bounded batches: a failure in
//! a middle batch exits 5 with the count of what was done, and running the
//! command again finishes the job.

use mongodb::bson::{doc, DateTime, Document};
use serde_json::Value;
use testkit::{
    fault::{FailPoint, Times},
    TestDb,
};

use crate::common::command;

/// `count` native documents that expired a minute ago (`old-…`) or expire in
/// an hour (`live-…`).
async fn seed(db: &TestDb, prefix: &str, count: usize, live: bool) {
    let now = DateTime::now().timestamp_millis();
    let expires = DateTime::from_millis(if live { now + 3_600_000 } else { now - 60_000 });
    let documents: Vec<Document> = (0..count)
        .map(|i| doc! { "_id": format!("{prefix}{i:05}"), "data": {}, "expires": expires, "version": 0_i64 })
        .collect();
    for chunk in documents.chunks(1000) {
        db.collection("sessions")
            .insert_many(chunk.to_vec())
            .await
            .unwrap();
    }
}

/// Runs the CLI as client `app` (the failpoints' scope) with `--json`;
/// the exit code and the document it printed.
fn run_as(db: &TestDb, app: &str, args: &[&str]) -> (i32, Value) {
    let uri = format!("{}&appName={app}", db.uri());
    let output = command(db)
        .args(["--uri", &uri, "--json"])
        .args(args)
        .output()
        .expect("running mongodb-sessions");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}): {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().expect("exited"), json)
}

#[tokio::test]
async fn purge_expired_failing_in_a_middle_batch_exits_5_with_the_count_and_a_rerun_finishes() {
    let db = TestDb::new("clipurgebatches").await;
    seed(&db, "old-", 5_000, false).await;
    seed(&db, "live-", 10, true).await;
    let fail = FailPoint::fail_command(
        &db.client,
        "cli-purge",
        &["delete"],
        Times::Skip(20),
        doc! { "errorCode": 2 },
    )
    .await;
    let fail = match fail {
        Ok(fail) => fail,
        Err(skipped) => return eprintln!("{skipped}"),
    };
    let args = ["purge-expired", "--yes", "--batch-size", "100"];
    let (code, stopped) = run_as(&db, "cli-purge", &args);
    fail.off().await;
    assert_eq!(code, 5, "{stopped}");
    assert_eq!(stopped["deleted"], 2_000, "20 batches of 100: {stopped}");
    assert_eq!(stopped["incomplete"], true);
    assert!(
        stopped["error"].as_str().unwrap().contains("delete"),
        "{stopped}"
    );
    let sessions = db.collection("sessions");
    assert_eq!(sessions.count_documents(doc! {}).await.unwrap(), 3_010);

    let (code, rerun) = run_as(&db, "cli-purge", &args);
    assert_eq!(
        (code, &rerun["deleted"]),
        (0, &Value::from(3_000)),
        "{rerun}"
    );
    assert_eq!(sessions.count_documents(doc! {}).await.unwrap(), 10);
    db.cleanup().await;
}
