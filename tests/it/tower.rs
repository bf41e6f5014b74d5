//! The tower-sessions adapter, through tower-sessions' own trait.

use mongodb::bson::doc;
use mongodb_session_store::MongoSessionStore;
use testkit::TestDb;
use tower_sessions_core::{
    session::{Id, Record},
    SessionStore,
};

fn record(id: Id) -> Record {
    Record {
        id,
        data: [("user".to_string(), serde_json::json!("ada"))]
            .into_iter()
            .collect(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    }
}

#[tokio::test]
async fn create_draws_a_new_id_on_collision_and_updates_the_record() {
    let db = TestDb::new("towercollision").await;
    let store = MongoSessionStore::from_client(db.client.clone())
        .database(&db.name)
        .build()
        .await
        .unwrap();
    let taken = Id::default();
    SessionStore::create(&store, &mut record(taken))
        .await
        .unwrap();
    let mut second = record(taken);
    second
        .data
        .insert("user".into(), serde_json::json!("mallory"));
    SessionStore::create(&store, &mut second).await.unwrap();

    assert_ne!(second.id, taken);
    let first = SessionStore::load(&store, &taken).await.unwrap().unwrap();
    assert_eq!(first.data["user"], "ada");
    let other = SessionStore::load(&store, &second.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.data["user"], "mallory");
    db.cleanup().await;
}

#[tokio::test]
async fn an_undecodable_session_loads_as_none() {
    let db = TestDb::new("towercorrupt").await;
    let store = MongoSessionStore::from_client(db.client.clone())
        .database(&db.name)
        .build()
        .await
        .unwrap();
    let mut fresh = record(Id::default());
    SessionStore::create(&store, &mut fresh).await.unwrap();
    db.collection("sessions")
        .update_one(doc! {}, doc! {"$set": {"expires": "soon"}})
        .await
        .unwrap();
    assert!(SessionStore::load(&store, &fresh.id)
        .await
        .unwrap()
        .is_none());
    db.cleanup().await;
}
