//! The migration command end to end, under its former name `mss-migrate`
//! (the same code as `mongodb-sessions migrate`): dry run, run, rerun; a
//! user who logged in on Express keeps their login on the native layout
//! afterwards. And `mongodb-sessions migrate` asks first.

use std::process::Command;

use mongodb::bson::{doc, DateTime};
use serde_json::json;
use testkit::TestDb;

/// Runs `mss-migrate`; exit code 5 says some documents could not be
/// converted.
fn migrate(db: &TestDb, extra: &[&str], code: i32) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_mss-migrate"))
        .args([
            "--uri",
            &db.uri(),
            "--layout",
            "connect-mongo",
            "--into",
            "native",
        ])
        .args(extra)
        .output()
        .expect("running mss-migrate");
    assert_eq!(
        output.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn dry_run_then_run_then_a_rerun_that_changes_nothing() {
    let db = TestDb::new("migratecli").await;
    let expires = DateTime::from_millis(DateTime::now().timestamp_millis() + 3_600_000);
    let documents = (0..50).map(|i| {
        let session = json!({"cookie": {"originalMaxAge": 3_600_000}, "n": i}).to_string();
        doc! {"_id": format!("id-{i}"), "session": session, "expires": expires}
    });
    db.collection("sessions")
        .insert_many(documents)
        .await
        .unwrap();
    db.collection("sessions")
        .insert_one(doc! {"_id": "bad", "session": "{", "expires": expires})
        .await
        .unwrap();

    let dry = migrate(&db, &["--dry-run"], 5);
    assert!(
        dry.contains("would convert 50") && dry.contains("cannot convert 1"),
        "{dry}"
    );
    assert!(db.documents("native").await.is_empty());
    let run = migrate(&db, &[], 5);
    assert!(run.contains("converted 50"), "{run}");
    assert!(
        run.contains("cannot convert sid#"),
        "the failure is listed, redacted: {run}"
    );
    assert_eq!(db.documents("native").await.len(), 50);
    let rerun = migrate(&db, &[], 5);
    assert!(
        rerun.contains("converted 0, already up to date 50"),
        "{rerun}"
    );
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_logged_in_on_express_stays_logged_in_after_migration() {
    let db = TestDb::new("migratelogin").await;
    let express = testkit::ExpressApp::start(&db.name, "connect-mongo", "s1").await;
    express
        .browser
        .post("/api/login", Some(json!({"user": "ada"})))
        .await;
    express
        .browser
        .put("/api/session/cart", json!(["book"]))
        .await;

    let run = Command::new(env!("CARGO_BIN_EXE_mss-migrate"))
        .args([
            "--uri",
            &db.uri(),
            "--layout",
            "connect-mongo",
            "--in-place",
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    // The Rust service on the native layout, verifying Express's cookie.
    let vars = [
        ("MONGODB_URI", testkit::mongodb_uri()),
        ("SESSION_DATABASE", db.name.clone()),
        ("SESSION_SECRET", "s1".to_string()),
        ("STORE_LAYOUT", "native".to_string()),
    ];
    let settings: testkit::suite::Settings = Box::new(move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    });
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_mss-migrate"))
        .with_file_name(format!("express-compat{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "build the workspace (scripts/test) so express-compat is there"
    );
    let address = testkit::spawn_binary(binary.to_str().unwrap(), settings)
        .await
        .unwrap();
    let rust = express.browser.at(format!("http://{address}"));
    assert_eq!(
        rust.get("/api/session").await.body,
        json!({"data": {"user": "ada", "cart": ["book"]}})
    );
    let documents = db.documents("sessions").await;
    assert_eq!(documents.len(), 1);
    assert!(documents[0].contains_key("data") && !documents[0].contains_key("session"));
    db.cleanup().await;
}

#[tokio::test]
async fn mongodb_sessions_migrate_asks_first_and_reports_in_json() {
    let db = TestDb::new("migratesub").await;
    let expires = DateTime::from_millis(DateTime::now().timestamp_millis() + 3_600_000);
    let session = json!({"cookie": {"originalMaxAge": 3_600_000}, "n": 1}).to_string();
    db.collection("sessions")
        .insert_one(doc! {"_id": "id-1", "session": session, "expires": expires})
        .await
        .unwrap();
    let args = [
        "migrate",
        "--layout",
        "connect-mongo",
        "--into",
        "native",
        "--json",
    ];
    let sub = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mongodb-sessions"))
            .env("MONGODB_URI", db.uri())
            .args(args)
            .args(extra)
            .output()
            .unwrap()
    };
    let refused = sub(&[]);
    assert_eq!(refused.status.code(), Some(3));
    assert!(db.documents("native").await.is_empty());
    let collections = db.database().list_collection_names().await.unwrap();
    assert_eq!(collections, vec!["sessions".to_string()], "nothing created");

    let dry = sub(&["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "a dry run needs no --yes");
    let dry: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(
        (dry["dry_run"].as_bool(), dry["converted"].as_u64()),
        (Some(true), Some(1))
    );

    let done = sub(&["--yes"]);
    assert_eq!(
        done.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let done: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(done["converted"], 1, "{done}");
    assert_eq!(db.documents("native").await.len(), 1);
    db.cleanup().await;
}
