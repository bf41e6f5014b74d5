//! Issue 12, the store's side: hostile input through the store API is a
//! typed error or a fresh session, never a panic, a 500 that never ends, or
//! a forged owner.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use mongodb::bson::{doc, Bson};
use mongodb_session_store::{
    session::TRACKING_KEY, session::USER_KEY, MongoSessionStore, StoreBuilder, UserInfo,
};
use serde_json::{json, Map, Value};
use testkit::TestDb;

fn map(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn hour() -> Option<SystemTime> {
    Some(SystemTime::now() + Duration::from_secs(3600))
}

fn builder(db: &TestDb) -> StoreBuilder {
    MongoSessionStore::from_client(db.client.clone()).database(&db.name)
}

#[tokio::test]
async fn keys_of_the_reserved_namespace_are_refused_not_dropped() {
    let db = TestDb::new("reservedkeys").await;
    let store = builder(&db).build().await.unwrap();
    let id = store.create(&map(json!({"a": 1})), hour()).await.unwrap();
    let forged = [
        (format!("{TRACKING_KEY}_x"), json!("anything")),
        (format!("{TRACKING_KEY}user"), json!({"user": "victim"})),
        (USER_KEY.to_string(), json!("not an owner")),
    ];
    for (key, value) in forged {
        let mut data = store.load(&id).await.unwrap().unwrap().into_map();
        data.insert(key.clone(), value.clone());
        let err = store.save(&id, &data, hour()).await.unwrap_err();
        assert!(err.is_reserved_key() && err.is_encode(), "{key}: {err}");
        assert!(store.check(&data).unwrap_err().is_reserved_key(), "{key}");
        let mut fresh = map(json!({"b": 1}));
        fresh.insert(key.clone(), value);
        let err = store.create(&fresh, hour()).await.unwrap_err();
        assert!(err.is_reserved_key(), "{key}: {err}");
    }
    assert_eq!(db.documents("sessions").await.len(), 1, "nothing created");
    assert_eq!(
        store.load(&id).await.unwrap().unwrap().data,
        map(json!({"a": 1}))
    );

    // What the store's API itself puts there is accepted.
    let mut data = store.load(&id).await.unwrap().unwrap().into_map();
    data.insert(USER_KEY.into(), UserInfo::new("ada").to_value());
    store.check(&data).unwrap();
    store.save(&id, &data, hour()).await.unwrap();
    assert_eq!(store.user_sessions("ada", None).await.unwrap().len(), 1);
    db.cleanup().await;
}

#[tokio::test]
async fn check_answers_an_oversized_session_before_any_write() {
    let db = TestDb::new("checksize").await;
    let store = builder(&db).max_session_bytes(1000).build().await.unwrap();
    let err = store
        .check(&map(json!({"blob": "x".repeat(2000)})))
        .unwrap_err();
    assert!(err.is_encode() && !err.is_reserved_key(), "{err}");
    store.check(&map(json!({"small": 1}))).unwrap();
    db.cleanup().await;
}

#[tokio::test]
async fn one_malformed_document_does_not_hide_a_users_other_sessions() {
    let db = TestDb::new("listingskips").await;
    let store = builder(&db).build().await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut data = map(json!({"n": 1}));
        data.insert(USER_KEY.into(), UserInfo::new("ada").to_value());
        ids.push(store.create(&data, hour()).await.unwrap());
    }
    db.collection("sessions")
        .update_one(
            doc! {"_id": store.stored_id(&ids[1])},
            doc! {"$set": {"createdAt": "yesterday"}},
        )
        .await
        .unwrap();
    let listed = store.user_sessions("ada", None).await.unwrap();
    assert_eq!(listed.len(), 2);
    db.cleanup().await;
}

#[tokio::test]
async fn a_version_at_its_maximum_is_a_fresh_session_not_endless_errors() {
    use tower_sessions_core::SessionStore as Tower;
    let db = TestDb::new("versionmax").await;
    let store = builder(&db).build().await.unwrap();
    let mut record = tower_sessions_core::session::Record {
        id: tower_sessions_core::session::Id::default(),
        data: HashMap::from([("a".to_string(), json!(1))]),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    Tower::create(&store, &mut record).await.unwrap();
    db.collection("sessions")
        .update_one(doc! {}, doc! {"$set": {"version": Bson::Int64(i64::MAX)}})
        .await
        .unwrap();
    assert!(Tower::load(&store, &record.id).await.unwrap().is_none());
    let err = store.load(&record.id.to_string()).await.unwrap_err();
    assert!(err.is_decode(), "{err}");
    db.cleanup().await;
}

/// `depth` nested one-element arrays around a number.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!([inner]))
}

#[tokio::test]
async fn values_nested_past_what_mongodb_stores_are_refused_and_never_lock_a_session() {
    use tower_sessions_core::SessionStore as Tower;
    let db = TestDb::new("deepnesting").await;
    let store = builder(&db).build().await.unwrap();
    let id = store.create(&map(json!({"a": 1})), hour()).await.unwrap();
    let mut data = store.load(&id).await.unwrap().unwrap().into_map();
    data.insert("deep".into(), nested(150));
    let err = store.save(&id, &data, hour()).await.unwrap_err();
    assert!(err.is_encode(), "{err}");
    assert!(store.create(&data, hour()).await.unwrap_err().is_encode());
    assert_eq!(store.load(&id).await.unwrap().unwrap().data["a"], 1);
    // A reasonable depth is fine.
    data.insert("deep".into(), nested(50));
    store.save(&id, &data, hour()).await.unwrap();

    // A document written too deep by someone else loads as no session.
    let mut record = tower_sessions_core::session::Record {
        id: tower_sessions_core::session::Id::default(),
        data: HashMap::from([("a".to_string(), json!(1))]),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    Tower::create(&store, &mut record).await.unwrap();
    let deep = mongodb::bson::to_bson(&nested(200)).unwrap();
    let written = db
        .collection("sessions")
        .update_one(
            doc! {"_id": store.stored_id(&record.id.to_string())},
            doc! {"$set": {"data.deep": deep}},
        )
        .await;
    if written.is_ok() {
        assert!(Tower::load(&store, &record.id).await.unwrap().is_none());
    }
    db.cleanup().await;
}

#[tokio::test]
async fn every_malformed_document_is_a_typed_answer_through_the_store_api() {
    use futures_util::StreamExt;
    let db = TestDb::new("malformedmatrix").await;
    let store = builder(&db).build().await.unwrap();
    let bystander = store
        .create(&map(json!({"mark": "bystander"})), hour())
        .await
        .unwrap();
    for (i, (what, edit)) in testkit::suite::malformed_document_edits()
        .into_iter()
        .enumerate()
    {
        let mut data = map(json!({ "mark": i }));
        data.insert(USER_KEY.into(), UserInfo::new("ada").to_value());
        let id = store.create(&data, hour()).await.unwrap();
        let filter = doc! {"_id": store.stored_id(&id)};
        if db
            .collection("sessions")
            .update_one(filter, edit)
            .await
            .is_err()
        {
            continue; // refused by the server: nothing malformed was stored
        }
        match store.load(&id).await {
            Ok(Some(loaded)) => assert_eq!(loaded.data["mark"], json!(i), "{what}"),
            Ok(None) => {}
            Err(error) => assert!(error.is_decode(), "{what}: {error}"),
        }
        let mut fresh = map(json!({"after": 1}));
        fresh.insert(USER_KEY.into(), UserInfo::new("ada").to_value());
        store.create(&fresh, hour()).await.unwrap();
        store.user_sessions("ada", None).await.unwrap();
        let mut all = store.all().await.unwrap();
        while let Some(item) = all.next().await {
            if let Err(error) = item {
                assert!(error.is_decode(), "{what}: {error}");
            }
        }
        store.delete(&id).await.unwrap();
    }
    assert_eq!(
        store.load(&bystander).await.unwrap().unwrap().data["mark"],
        "bystander"
    );
    db.cleanup().await;
}
