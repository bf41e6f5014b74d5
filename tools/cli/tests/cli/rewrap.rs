//! `rewrap` after a rotation: every document moves to the primary key,
//! undecodable ones are reported, a rerun has nothing left to do.

use mongodb::bson::doc;
use serde_json::json;
use testkit::TestDb;

use crate::common::{json, ring_1, ring_2_1, session, store, KEY_1, KEY_2};

#[tokio::test]
async fn rewrap_moves_every_document_to_the_primary_key_and_reports_undecodable_ones() {
    let db = TestDb::new("clirewrap").await;
    let old = store(&db).encryption(ring_1()).build().await.unwrap();
    let mut ids = Vec::new();
    for user in ["ada", "ada", "bob"] {
        ids.push(session(&old, Some(user), true).await);
    }
    let rotated = store(&db).encryption(ring_2_1()).build().await.unwrap();
    ids.push(session(&rotated, Some("eve"), true).await);
    db.collection("sessions")
        .insert_one(doc! {"_id": "broken", "data": "not ciphertexts", "expires": mongodb::bson::DateTime::now()})
        .await
        .unwrap();

    let keys = format!("2:{KEY_2},1:{KEY_1}");
    let before = json(&db, &["stats", "--encryption-keys", &keys], 0);
    assert_eq!(before["key_ids"], json!({"1": 3, "2": 1}), "{before}");

    let first = json(&db, &["rewrap", "--yes", "--encryption-keys", &keys], 5);
    assert_eq!(first["examined"], 5, "{first}");
    assert_eq!(first["rewrapped"], 3);
    assert_eq!(first["undecodable"], 1);
    let listed = first["undecodable_sessions"][0]["session"]
        .as_str()
        .unwrap();
    assert!(
        listed.starts_with("sid#") && !listed.contains("broken"),
        "redacted: {first}"
    );

    let after = json(&db, &["stats", "--encryption-keys", &keys], 0);
    assert_eq!(after["key_ids"], json!({"2": 4}), "{after}");
    // The old key can go: a store with key 2 alone reads every session.
    let retired = store(&db)
        .encryption(mongodb_session_store::KeyRing::from_base64(2, KEY_2).unwrap())
        .build()
        .await
        .unwrap();
    for id in &ids {
        let loaded = retired
            .load(id)
            .await
            .unwrap()
            .expect("readable under key 2");
        assert_eq!(loaded.data["cart"], json!(["book", "pen"]));
    }

    let second = json(&db, &["rewrap", "--yes", "--encryption-keys", &keys], 5);
    assert_eq!(second["rewrapped"], 0, "{second}");
    assert_eq!(second["undecodable"], 1);
    db.collection("sessions")
        .delete_one(doc! {"_id": "broken"})
        .await
        .unwrap();
    let clean = json(&db, &["rewrap", "--yes", "--encryption-keys", &keys], 0);
    assert_eq!(
        (clean["examined"].as_u64(), clean["rewrapped"].as_u64()),
        (Some(4), Some(0))
    );
    db.cleanup().await;
}

#[tokio::test]
async fn the_key_ring_can_come_from_a_file() {
    let db = TestDb::new("clirewrapfile").await;
    let old = store(&db).encryption(ring_1()).build().await.unwrap();
    session(&old, None, true).await;
    let file = std::env::temp_dir().join(format!("{}-ring", db.name));
    std::fs::write(&file, format!("# rotated today\n2:{KEY_2}\n\n1:{KEY_1}\n")).unwrap();
    let mut command = crate::common::command(&db);
    let output = command
        .args(["rewrap", "--yes", "--json"])
        .env("SESSION_ENCRYPTION_KEYS_FILE", &file)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (
            report["rewrapped"].as_u64(),
            report["primary_key_id"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(json(&db, &["stats"], 0)["key_ids"], json!({"2": 1}));
    let _ = std::fs::remove_file(file);
    db.cleanup().await;
}
