//! The tower-sessions adapter, through tower-sessions' own trait.

use mongodb::bson::doc;
use serde_json::json;
use tower_sessions_core::{session::Id, SessionStore};

use crate::common::{db_and_store, record, record_with_id, set_fields};

#[tokio::test]
async fn create_draws_a_new_id_on_collision_and_updates_the_record() {
    let (_db, store) = db_and_store("towercollision").await;
    let taken = Id::default();
    let mut first = record_with_id(taken, json!({"user": "ada"}));
    SessionStore::create(&store, &mut first).await.unwrap();
    let mut second = record_with_id(taken, json!({"user": "mallory"}));
    SessionStore::create(&store, &mut second).await.unwrap();

    assert_ne!(second.id, taken);
    let first = SessionStore::load(&store, &taken).await.unwrap().unwrap();
    assert_eq!(first.data["user"], "ada");
    let other = SessionStore::load(&store, &second.id).await.unwrap();
    assert_eq!(other.unwrap().data["user"], "mallory");
}

#[tokio::test]
async fn an_undecodable_session_loads_as_none() {
    let (db, store) = db_and_store("towercorrupt").await;
    let mut fresh = record(json!({"user": "ada"}));
    SessionStore::create(&store, &mut fresh).await.unwrap();
    let id = fresh.id.to_string();
    set_fields(&db, &store, &id, doc! {"expires": "soon"}).await;
    let loaded = SessionStore::load(&store, &fresh.id).await.unwrap();
    assert!(loaded.is_none());
}
