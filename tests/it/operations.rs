//! The operators' library calls behind `mongodb-sessions`: a store that
//! leaves the collection alone, the index plan, and stats.

use std::time::Duration;

use mongodb::{bson::doc, options::IndexOptions, IndexModel};
use mongodb_session_store::{admin::IndexAction, admin::IndexPurpose, AutoRemove, StoreBuilder};
use serde_json::Map;
use testkit::TestDb;

use crate::common::{
    a_second_ago, ago, builder, count, in_an_hour, indexes, set_fields, Build, HOUR,
};

/// A store for operators' calls: it leaves the collection alone.
fn tool(builder: StoreBuilder) -> StoreBuilder {
    builder.manage_collection(false)
}

async fn index_count(db: &TestDb) -> usize {
    indexes(db).await.len()
}

#[tokio::test]
async fn a_store_that_does_not_manage_its_collection_creates_nothing_and_starts_no_task() {
    let db = TestDb::new("unmanaged").await;
    let interval = AutoRemove::Interval(Duration::from_millis(50));
    let store = tool(builder(&db).auto_remove(interval)).built().await;
    store.create(&Map::new(), a_second_ago()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(count(&db).await, 1, "no removal task");
    assert_eq!(index_count(&db).await, 1, "only _id_");
    assert_eq!(store.delete_expired().await.unwrap(), 1);
}

#[tokio::test]
async fn the_index_plan_says_what_ensuring_does() {
    let db = TestDb::new("indexplan").await;
    let store = tool(builder(&db).id_field("sid")).built().await;
    let plan = store.index_plan().await.unwrap();
    let actions: Vec<_> = plan.indexes.iter().map(|i| (i.purpose, i.action)).collect();
    assert_eq!(
        actions,
        [
            (IndexPurpose::Expiry, IndexAction::Create),
            (IndexPurpose::UniqueId, IndexAction::Create),
            (IndexPurpose::Owner, IndexAction::Create)
        ]
    );
    assert_eq!(index_count(&db).await, 0, "planning reads only");
    store.ensure_indexes(false).await.unwrap();
    assert_eq!(index_count(&db).await, 4);
    assert!(store.index_plan().await.unwrap().is_satisfied());
}

#[tokio::test]
async fn the_index_plan_changes_another_ttl_in_place() {
    let db = TestDb::new("indexplanttl").await;
    let store = tool(builder(&db).id_field("sid")).built().await;
    store.ensure_indexes(false).await.unwrap();
    let minute = builder(&db).expire_after(Duration::from_secs(60));
    let slower = tool(minute.id_field("sid")).built().await;
    // Another delay is changed in place, without consent to drop anything
    // (what needs a drop: tests/it/indexes.rs).
    let plan = slower.index_plan().await.unwrap();
    assert!(!plan.replaces() && plan.changes_in_place());
    assert_eq!(plan.indexes[0].action, IndexAction::ChangeInPlace);
    let done = slower.ensure_indexes(false).await.unwrap();
    assert_eq!(done.indexes[0].action, IndexAction::ChangeInPlace);
    assert!(slower.index_plan().await.unwrap().is_satisfied());
    let first = store.index_plan().await.unwrap();
    assert!(!first.is_satisfied(), "60 s now");
}

#[tokio::test]
async fn the_index_plan_leaves_a_plain_index_on_the_id_field_to_a_person() {
    let db = TestDb::new("indexplanplain").await;
    // A plain index on another store's id field is for a person to fix.
    let plain = IndexModel::builder()
        .keys(doc! {"other": 1})
        .options(IndexOptions::default())
        .build();
    db.collection("sessions").create_index(plain).await.unwrap();
    let disabled = builder(&db).auto_remove(AutoRemove::Disabled);
    let other = tool(disabled.id_field("other")).built().await;
    let plan = other.index_plan().await.unwrap();
    assert_eq!(plan.indexes.len(), 1, "Disabled: only the unique id index");
    assert_eq!(plan.indexes[0].action, IndexAction::Conflict);
    let ensured = other.ensure_indexes(true).await.unwrap_err();
    assert!(ensured.is_index_conflict());
}

#[tokio::test]
async fn stats_count_a_session_past_its_lifetime_as_expired() {
    let db = TestDb::new("statslifetime").await;
    let store = builder(&db).absolute_timeout(HOUR).built().await;
    let old = store.create(&Map::new(), in_an_hour()).await.unwrap();
    store.create(&Map::new(), in_an_hour()).await.unwrap();
    set_fields(&db, &store, &old, doc! {"createdAt": ago(2 * HOUR)}).await;
    let mut walked = 0;
    let stats = store.stats_with(|n| walked = n).await.unwrap();
    assert_eq!((stats.documents, stats.live, stats.expired), (2, 1, 1));
    assert_eq!(walked, 2);
    assert!(stats.key_ids.is_empty(), "nothing encrypted");
    assert!(stats.size.p50 > 0 && stats.size.p50 <= stats.size.max);
}
