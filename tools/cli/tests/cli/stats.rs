//! `stats`: the figures match what was created.

use serde_json::json;
use testkit::TestDb;

use crate::common::{json, ring_1, session, store, KEY_1};

#[tokio::test]
async fn stats_count_live_expired_owners_sizes_and_key_ids() {
    let db = TestDb::new("clistats").await;
    let store = store(&db).encryption(ring_1()).build().await.unwrap();
    for user in ["ada", "ada", "ada", "bob", "bob"] {
        session(&store, Some(user), true).await;
    }
    session(&store, None, true).await;
    session(&store, Some("eve"), false).await;
    session(&store, None, false).await;

    let keys = format!("1:{KEY_1}");
    let stats = json(&db, &["stats", "--encryption-keys", &keys], 0);
    assert_eq!(stats["documents"], 8, "{stats}");
    assert_eq!(stats["live"], 6);
    assert_eq!(stats["expired"], 2);
    assert_eq!(stats["with_owner"], 5, "eve's session is expired");
    assert_eq!(stats["owners"], 2);
    assert_eq!(stats["key_ids"], json!({"1": 8}));
    assert_eq!(stats["primary_key_id"], 1);

    // Sizes as stored, nearest rank.
    let mut sizes: Vec<u64> = db
        .documents("sessions")
        .await
        .iter()
        .map(|d| mongodb::bson::to_vec(d).unwrap().len() as u64)
        .collect();
    sizes.sort();
    assert_eq!(stats["size_bytes"]["p50"], sizes[3]);
    assert_eq!(stats["size_bytes"]["p99"], sizes[7]);
    assert_eq!(stats["size_bytes"]["max"], sizes[7]);

    // Text for people; no progress bar when stderr is not a terminal.
    let (output, code) = crate::common::run(&db, &["stats"]);
    assert_eq!(code, 0);
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("live sessions            6"), "{text}");
    assert!(text.contains("distinct owners          2"), "{text}");

    // Without keys the key ids are still read (from the ciphertexts' headers).
    let plain = json(&db, &["stats"], 0);
    assert_eq!(plain["key_ids"], json!({"1": 8}));
    assert_eq!(plain["primary_key_id"], serde_json::Value::Null);
    db.cleanup().await;
}

#[tokio::test]
async fn stats_of_an_empty_collection_are_zero_and_text_output_is_readable() {
    let db = TestDb::new("clistatsempty").await;
    let stats = json(&db, &["stats"], 0);
    assert_eq!(stats["documents"], 0);
    assert_eq!(stats["size_bytes"], json!({"p50": 0, "p99": 0, "max": 0}));
    let (output, code) = crate::common::run(&db, &["stats"]);
    assert_eq!(code, 0);
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("live sessions            0"), "{text}");
    db.cleanup().await;
}
