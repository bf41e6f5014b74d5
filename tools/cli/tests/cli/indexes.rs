//! `ensure-indexes`: a dry run changes nothing and says what it would do to
//! each index; the real run creates what is missing and changes a TTL
//! index's delay in place; dropping and recreating an index needs
//! `--recreate` and asks first.

use futures_util::TryStreamExt;
use mongodb::{
    bson::{doc, Document},
    IndexModel,
};
use serde_json::{json, Value};
use testkit::TestDb;

use crate::common::{json, run, session, store};

/// The collection's indexes as the driver reads them.
async fn models(db: &TestDb) -> Vec<IndexModel> {
    db.collection("sessions")
        .list_indexes()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// The collection's indexes: name → (keys, expireAfterSeconds).
async fn indexes(db: &TestDb) -> Vec<(String, Document, Option<u64>)> {
    let mut found: Vec<_> = models(db)
        .await
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

/// Whether a TTL index with a partial filter is there.
async fn partial_ttl(db: &TestDb) -> bool {
    models(db).await.into_iter().any(|m| {
        let options = m.options.unwrap_or_default();
        options.expire_after.is_some() && options.partial_filter_expression.is_some()
    })
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

fn ttl(found: &[(String, Document, Option<u64>)]) -> Option<u64> {
    found
        .iter()
        .find(|(_, k, _)| k.contains_key("expires"))
        .unwrap()
        .2
}

#[tokio::test]
async fn another_ttl_delay_is_changed_in_place_without_a_question() {
    let db = TestDb::new("cliindexinplace").await;
    let store = store(&db).build().await.unwrap();
    session(&store, None, true).await;
    json(&db, &["ensure-indexes"], 0);

    let args = ["ensure-indexes", "--expire-after", "60"];
    let dry = json(&db, &[&args[..], &["--dry-run"]].concat(), 0);
    assert_eq!(dry["indexes"][0]["action"], "change-in-place", "{dry}");
    assert!(dry["indexes"][0]["existing"]
        .as_str()
        .unwrap()
        .contains("expireAfterSeconds\": 0"));
    let (text, _) = run(&db, &[&args[..], &["--dry-run"]].concat());
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.contains("would change in place (collMod)"), "{text}");
    assert_eq!(
        ttl(&indexes(&db).await),
        Some(0),
        "a dry run changes nothing"
    );

    // No terminal and no --yes: it goes ahead all the same (nothing is
    // dropped; the service's own build would do the same).
    let done = json(&db, &args, 0);
    assert_eq!(done["indexes"][0]["action"], "change-in-place", "{done}");
    let after = indexes(&db).await;
    assert_eq!(ttl(&after), Some(60));
    assert!(after.iter().any(|(name, _, _)| name == "expires_1"));
    db.cleanup().await;
}

#[tokio::test]
async fn another_partial_filter_needs_recreate_and_yes() {
    let db = TestDb::new("cliindexrecreate").await;
    let store = store(&db).build().await.unwrap();
    session(&store, None, true).await;
    let partial = doc! {"key": {"expires": 1}, "name": "expires_1", "expireAfterSeconds": 0,
    "partialFilterExpression": {"kind": "web"}};
    db.database()
        .run_command(doc! {"createIndexes": "sessions", "indexes": [partial]})
        .await
        .unwrap();
    let dry = json(&db, &["ensure-indexes", "--dry-run"], 0);
    assert_eq!(dry["indexes"][0]["action"], "replace", "{dry}");
    let (text, _) = run(&db, &["ensure-indexes", "--dry-run"]);
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.contains("needs drop+recreate (--recreate"), "{text}");

    let refused = json(&db, &["ensure-indexes"], 1);
    let error = refused["error"].as_str().unwrap();
    assert!(error.contains("--recreate"), "{refused}");
    let unasked = json(&db, &["ensure-indexes", "--recreate"], 3);
    assert!(unasked.to_string().contains("--yes"), "{unasked}");
    assert!(partial_ttl(&db).await, "unchanged");

    let done = json(&db, &["ensure-indexes", "--recreate", "--yes"], 0);
    assert_eq!(done["indexes"][0]["action"], "replace", "{done}");
    assert!(!partial_ttl(&db).await);
    assert_eq!(ttl(&indexes(&db).await), Some(0));
    db.cleanup().await;
}
