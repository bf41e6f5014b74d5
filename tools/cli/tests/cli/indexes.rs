//! `ensure-indexes`: a dry run changes nothing and says what is missing;
//! the real run creates it; replacing an index asks first.

use futures_util::TryStreamExt;
use mongodb::{bson::Document, IndexModel};
use serde_json::{json, Value};
use testkit::TestDb;

use crate::common::{json, run, session, store};

/// The collection's indexes: name → (keys, expireAfterSeconds).
async fn indexes(db: &TestDb) -> Vec<(String, Document, Option<u64>)> {
    let models: Vec<IndexModel> = db
        .collection("sessions")
        .list_indexes()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut found: Vec<_> = models
        .into_iter()
        .map(|m| {
            let options = m.options.unwrap();
            (
                options.name.unwrap(),
                m.keys,
                options.expire_after.map(|d| d.as_secs()),
            )
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

fn actions(plan: &Value) -> Value {
    plan["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| json!([i["purpose"], i["action"]]))
        .collect()
}

#[tokio::test]
async fn dry_run_reports_the_missing_index_and_changes_nothing_then_it_is_created() {
    let db = TestDb::new("cliindexes").await;
    let store = store(&db).build().await.unwrap();
    session(&store, Some("ada"), true).await;
    let before = indexes(&db).await;
    assert_eq!(before.len(), 1, "only _id_: {before:?}");

    let dry = json(&db, &["ensure-indexes", "--dry-run"], 0);
    assert_eq!(
        actions(&dry),
        json!([["expiry", "create"], ["owner", "create"]]),
        "{dry}"
    );
    assert_eq!(
        dry["indexes"][0]["wanted"],
        "{ \"expires\": 1 }, { \"expireAfterSeconds\": 0 }"
    );
    assert_eq!(indexes(&db).await, before, "a dry run creates nothing");
    let (text, _) = run(&db, &["ensure-indexes", "--dry-run"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("would create"));

    let created = json(&db, &["ensure-indexes"], 0);
    assert_eq!(
        actions(&created),
        actions(&dry),
        "no confirmation needed to create"
    );
    let after = indexes(&db).await;
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(after
        .iter()
        .any(|(_, keys, ttl)| keys.contains_key("expires") && *ttl == Some(0)));
    assert!(after.iter().any(|(_, keys, _)| keys.contains_key("user")));

    let again = json(&db, &["ensure-indexes", "--dry-run"], 0);
    assert_eq!(
        actions(&again),
        json!([["expiry", "keep"], ["owner", "keep"]])
    );
    db.cleanup().await;
}

#[tokio::test]
async fn replacing_a_disagreeing_ttl_index_needs_yes() {
    let db = TestDb::new("cliindexreplace").await;
    let store = store(&db).build().await.unwrap();
    session(&store, None, true).await;
    json(&db, &["ensure-indexes"], 0);

    let dry = json(
        &db,
        &["ensure-indexes", "--expire-after", "60", "--dry-run"],
        0,
    );
    assert_eq!(dry["indexes"][0]["action"], "replace", "{dry}");
    assert!(dry["indexes"][0]["existing"]
        .as_str()
        .unwrap()
        .contains("expireAfterSeconds\": 0"));

    let refused = json(&db, &["ensure-indexes", "--expire-after", "60"], 3);
    assert!(
        refused["error"].as_str().unwrap().contains("--yes"),
        "{refused}"
    );
    let ttl = |found: &[(String, Document, Option<u64>)]| {
        found
            .iter()
            .find(|(_, k, _)| k.contains_key("expires"))
            .unwrap()
            .2
    };
    assert_eq!(ttl(&indexes(&db).await), Some(0), "unchanged");

    json(&db, &["ensure-indexes", "--expire-after", "60", "--yes"], 0);
    assert_eq!(ttl(&indexes(&db).await), Some(60));
    db.cleanup().await;
}
