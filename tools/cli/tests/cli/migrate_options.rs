//! The command's store options reach the native layout: a session migrated
//! with the service's secret id hash key, key id and field names is found
//! by a store built as the service's.

use std::process::Command;

use mongodb::bson::{doc, DateTime};
use mongodb_session_store::{KeyRing, MongoSessionStore, StoreBuilder};
use serde_json::json;
use testkit::TestDb;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const ID: &str = "GQKb0Rk4bV9EcOGk1AOYPs3T_nHEgBqz";

fn native(db: &TestDb) -> StoreBuilder {
    MongoSessionStore::from_client(db.client.clone())
        .database(&db.name)
        .collection("native")
        .data_field("d")
        .expires_field("exp")
        .timestamp_fields("born", "seen")
}

#[tokio::test]
async fn a_session_migrated_with_the_services_options_is_found_by_the_service() {
    let db = TestDb::new("migrateoptions").await;
    let expires = DateTime::from_millis(DateTime::now().timestamp_millis() + 3_600_000);
    let session = json!({"cookie": {"originalMaxAge": 3_600_000}, "user": "ada"}).to_string();
    db.collection("sessions")
        .insert_one(doc! {"_id": ID, "session": session, "expires": expires})
        .await
        .unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_mss-migrate"))
        .args([
            "--uri",
            &db.uri(),
            "--layout",
            "connect-mongo",
            "--into",
            "native",
        ])
        .args(["--encryption-key", KEY, "--encryption-key-id", "7"])
        .args(["--data-field", "d", "--expires-field", "exp"])
        .args([
            "--created-at-field",
            "born",
            "--last-modified-field",
            "seen",
        ])
        .args(["--operation-timeout", "5s"])
        .env("SESSION_ID_HASH_KEY", "the service's secret")
        .output()
        .expect("running mss-migrate");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let ring = || KeyRing::from_base64(7, KEY).unwrap();
    let service = native(&db)
        .id_hash_key("the service's secret")
        .encryption(ring())
        .build()
        .await
        .unwrap();
    let loaded = service
        .load(ID)
        .await
        .unwrap()
        .expect("found by the service");
    assert_eq!(loaded.data["user"], "ada");
    let stored = db.documents("native").await;
    assert_eq!(stored.len(), 1);
    for field in ["d", "exp", "born", "seen"] {
        assert!(stored[0].contains_key(field), "{field}: {:?}", stored[0]);
    }

    // Under the public default key the same cookie finds nothing.
    let default_key = native(&db).encryption(ring()).build().await.unwrap();
    assert!(default_key.load(ID).await.unwrap().is_none());
    db.cleanup().await;
}

#[test]
fn a_bad_operation_timeout_is_refused_before_connecting() {
    let output = Command::new(env!("CARGO_BIN_EXE_mss-migrate"))
        .args([
            "--uri",
            "mongodb://127.0.0.1:1/db",
            "--layout",
            "connect-mongo",
        ])
        .args(["--in-place", "--operation-timeout", "soon"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--operation-timeout"), "{stderr}");
}
