//! The operators' library calls behind `mongodb-sessions`: a store that
//! leaves the collection alone, the index plan, and stats.

use std::time::{Duration, SystemTime};

use futures_util::TryStreamExt;
use mongodb::{bson::doc, options::IndexOptions, IndexModel};
use mongodb_session_store::{
    admin::IndexAction, admin::IndexPurpose, AutoRemove, MongoSessionStore, StoreBuilder,
};
use serde_json::Map;
use testkit::TestDb;

fn builder(db: &TestDb) -> StoreBuilder {
    MongoSessionStore::from_client(db.client.clone()).database(&db.name)
}

async fn index_count(db: &TestDb) -> usize {
    match db.collection("sessions").list_indexes().await {
        Ok(cursor) => cursor.try_collect::<Vec<IndexModel>>().await.unwrap().len(),
        Err(_) => 0, // no collection
    }
}

#[tokio::test]
async fn a_store_that_does_not_manage_its_collection_creates_nothing_and_starts_no_task() {
    let db = TestDb::new("unmanaged").await;
    let store = builder(&db)
        .auto_remove(AutoRemove::Interval(Duration::from_millis(50)))
        .manage_collection(false)
        .build()
        .await
        .unwrap();
    let past = Some(SystemTime::now() - Duration::from_secs(1));
    store.create(&Map::new(), past).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let sessions = db.collection("sessions");
    assert_eq!(
        sessions.count_documents(doc! {}).await.unwrap(),
        1,
        "no removal task"
    );
    assert_eq!(index_count(&db).await, 1, "only _id_");
    assert_eq!(store.delete_expired().await.unwrap(), 1);
    db.cleanup().await;
}

#[tokio::test]
async fn the_index_plan_says_what_ensuring_does_and_changes_a_ttl_in_place() {
    let db = TestDb::new("indexplan").await;
    let store = builder(&db)
        .id_field("sid")
        .manage_collection(false)
        .build()
        .await
        .unwrap();
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

    let slower = builder(&db)
        .id_field("sid")
        .expire_after(Duration::from_secs(60))
        .manage_collection(false)
        .build()
        .await
        .unwrap();
    // Another delay is changed in place, without consent to drop anything
    // (what needs a drop: tests/it/indexes.rs).
    let plan = slower.index_plan().await.unwrap();
    assert!(!plan.replaces() && plan.changes_in_place());
    assert_eq!(plan.indexes[0].action, IndexAction::ChangeInPlace);
    let done = slower.ensure_indexes(false).await.unwrap();
    assert_eq!(done.indexes[0].action, IndexAction::ChangeInPlace);
    assert!(slower.index_plan().await.unwrap().is_satisfied());
    assert!(
        !store.index_plan().await.unwrap().is_satisfied(),
        "60 s now"
    );

    // A plain index on another store's id field is for a person to fix.
    let plain = IndexModel::builder()
        .keys(doc! {"other": 1})
        .options(IndexOptions::default())
        .build();
    db.collection("sessions").create_index(plain).await.unwrap();
    let other = builder(&db)
        .id_field("other")
        .auto_remove(AutoRemove::Disabled)
        .manage_collection(false)
        .build()
        .await
        .unwrap();
    let plan = other.index_plan().await.unwrap();
    assert_eq!(plan.indexes.len(), 1, "Disabled: only the unique id index");
    assert_eq!(plan.indexes[0].action, IndexAction::Conflict);
    assert!(other
        .ensure_indexes(true)
        .await
        .unwrap_err()
        .is_index_conflict());
    db.cleanup().await;
}

#[tokio::test]
async fn stats_count_a_session_past_its_lifetime_as_expired() {
    let db = TestDb::new("statslifetime").await;
    let store = builder(&db)
        .absolute_timeout(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    let hour = Some(SystemTime::now() + Duration::from_secs(3600));
    let old = store.create(&Map::new(), hour).await.unwrap();
    store.create(&Map::new(), hour).await.unwrap();
    let born =
        mongodb::bson::DateTime::from_system_time(SystemTime::now() - Duration::from_secs(7200));
    db.collection("sessions")
        .update_one(
            doc! {"_id": store.stored_id(&old)},
            doc! {"$set": {"createdAt": born}},
        )
        .await
        .unwrap();
    let mut walked = 0;
    let stats = store.stats_with(|n| walked = n).await.unwrap();
    assert_eq!((stats.documents, stats.live, stats.expired), (2, 1, 1));
    assert_eq!(walked, 2);
    assert!(stats.key_ids.is_empty(), "nothing encrypted");
    assert!(stats.size.p50 > 0 && stats.size.p50 <= stats.size.max);
    db.cleanup().await;
}
