//! Issue 12, the store's side: hostile input through the store API is a
//! typed error or a fresh session, never a panic, a 500 that never ends, or
//! a forged owner.

use mongodb::bson::{doc, Bson};
use mongodb_session_store::{session::TRACKING_KEY, session::USER_KEY, UserInfo};
use serde_json::{json, Value};
use testkit::TestDb;
use tower_sessions_core::SessionStore as Tower;

use crate::common::{
    builder, data, db_and_store, in_an_hour, loaded, map, new_session, set_fields, tower_session,
    Build,
};

fn ada() -> Value {
    UserInfo::new("ada").to_value()
}

#[tokio::test]
async fn keys_of_the_reserved_namespace_are_refused_not_dropped() {
    let (db, store) = db_and_store("reservedkeys").await;
    let id = new_session(&store, json!({"a": 1}), in_an_hour()).await;
    let forged = [
        (format!("{TRACKING_KEY}_x"), json!("anything")),
        (format!("{TRACKING_KEY}user"), json!({"user": "victim"})),
        (USER_KEY.to_string(), json!("not an owner")),
    ];
    for (key, value) in forged {
        let mut tracked = loaded(&store, &id).await;
        tracked.insert(key.clone(), value.clone());
        let err = store.save(&id, &tracked, in_an_hour()).await.unwrap_err();
        assert!(err.is_reserved_key() && err.is_encode(), "{key}: {err}");
        assert!(
            store.check(&tracked).unwrap_err().is_reserved_key(),
            "{key}"
        );
        let mut fresh = map(json!({"b": 1}));
        fresh.insert(key.clone(), value);
        let err = store.create(&fresh, in_an_hour()).await.unwrap_err();
        assert!(err.is_reserved_key(), "{key}: {err}");
    }
    assert_eq!(db.documents("sessions").await.len(), 1, "nothing created");
    assert_eq!(data(&store, &id).await, map(json!({"a": 1})));

    // What the store's API itself puts there is accepted.
    let mut tracked = loaded(&store, &id).await;
    tracked.insert(USER_KEY.into(), ada());
    store.check(&tracked).unwrap();
    store.save(&id, &tracked, in_an_hour()).await.unwrap();
    assert_eq!(store.user_sessions("ada", None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn check_answers_an_oversized_session_before_any_write() {
    let db = TestDb::new("checksize").await;
    let store = builder(&db).max_session_bytes(1000).built().await;
    let blob = map(json!({"blob": "x".repeat(2000)}));
    let err = store.check(&blob).unwrap_err();
    assert!(err.is_encode() && !err.is_reserved_key(), "{err}");
    store.check(&map(json!({"small": 1}))).unwrap();
}

#[tokio::test]
async fn one_malformed_document_does_not_hide_a_users_other_sessions() {
    let (db, store) = db_and_store("listingskips").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let owned = json!({"n": 1, USER_KEY: ada()});
        ids.push(new_session(&store, owned, in_an_hour()).await);
    }
    set_fields(&db, &store, &ids[1], doc! {"createdAt": "yesterday"}).await;
    let listed = store.user_sessions("ada", None).await.unwrap();
    assert_eq!(listed.len(), 2);
}

#[tokio::test]
async fn a_version_at_its_maximum_is_a_fresh_session_not_endless_errors() {
    let (db, store) = db_and_store("versionmax").await;
    let record = tower_session(&store, json!({"a": 1})).await;
    let id = record.id.to_string();
    let last = doc! {"version": Bson::Int64(i64::MAX)};
    set_fields(&db, &store, &id, last).await;
    assert!(Tower::load(&store, &record.id).await.unwrap().is_none());
    let err = store.load(&id).await.unwrap_err();
    assert!(err.is_decode(), "{err}");
}

/// `depth` nested one-element arrays around a number.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!([inner]))
}

#[tokio::test]
async fn values_nested_past_what_mongodb_stores_are_refused_and_never_lock_a_session() {
    let (db, store) = db_and_store("deepnesting").await;
    let id = new_session(&store, json!({"a": 1}), in_an_hour()).await;
    let mut tracked = loaded(&store, &id).await;
    tracked.insert("deep".into(), nested(150));
    let err = store.save(&id, &tracked, in_an_hour()).await.unwrap_err();
    assert!(err.is_encode(), "{err}");
    let created = store.create(&tracked, in_an_hour()).await;
    assert!(created.unwrap_err().is_encode());
    assert_eq!(data(&store, &id).await["a"], 1);
    // A reasonable depth is fine.
    tracked.insert("deep".into(), nested(50));
    store.save(&id, &tracked, in_an_hour()).await.unwrap();

    // A document written too deep by someone else loads as no session.
    let record = tower_session(&store, json!({"a": 1})).await;
    let deep = mongodb::bson::to_bson(&nested(200)).unwrap();
    let filter = doc! {"_id": store.stored_id(&record.id.to_string())};
    let sessions = db.collection("sessions");
    let written = sessions.update_one(filter, doc! {"$set": {"data.deep": deep}});
    if written.await.is_ok() {
        assert!(Tower::load(&store, &record.id).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn every_malformed_document_is_a_typed_answer_through_the_store_api() {
    use futures_util::StreamExt;
    let (db, store) = db_and_store("malformedmatrix").await;
    let bystander = json!({"mark": "bystander"});
    let bystander = new_session(&store, bystander, in_an_hour()).await;
    let edits = testkit::suite::malformed_document_edits();
    for (i, (what, edit)) in edits.into_iter().enumerate() {
        let id = new_session(&store, json!({"mark": i, USER_KEY: ada()}), in_an_hour()).await;
        let filter = doc! {"_id": store.stored_id(&id)};
        let sessions = db.collection("sessions");
        if sessions.update_one(filter, edit).await.is_err() {
            continue; // refused by the server: nothing malformed was stored
        }
        match store.load(&id).await {
            Ok(Some(loaded)) => assert_eq!(loaded.data["mark"], json!(i), "{what}"),
            Ok(None) => {}
            Err(error) => assert!(error.is_decode(), "{what}: {error}"),
        }
        let fresh = json!({"after": 1, USER_KEY: ada()});
        new_session(&store, fresh, in_an_hour()).await;
        store.user_sessions("ada", None).await.unwrap();
        let mut all = store.all().await.unwrap();
        while let Some(item) = all.next().await {
            if let Err(error) = item {
                assert!(error.is_decode(), "{what}: {error}");
            }
        }
        store.delete(&id).await.unwrap();
    }
    assert_eq!(data(&store, &bystander).await["mark"], "bystander");
}
