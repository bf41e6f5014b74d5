//! The actix-session adapter, through actix-session's own trait.

use std::{collections::HashMap, time::Duration};

use actix_session::storage::{SessionKey, SessionStore};
use mongodb::bson::doc;
use mongodb_session_store::MongoSessionStore;
use testkit::{CommandLog, TestDb};

type State = HashMap<String, String>;

fn state(pairs: &[(&str, &str)]) -> State {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ttl() -> time::Duration {
    time::Duration::hours(1)
}

fn key(value: &str) -> SessionKey {
    SessionKey::try_from(value.to_string()).unwrap()
}

async fn store(db: &TestDb) -> MongoSessionStore {
    MongoSessionStore::from_client(db.client.clone())
        .database(&db.name)
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn keys_come_from_a_csprng_with_256_bits() {
    let db = TestDb::new("actixkeys").await;
    let store = store(&db).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        let key = SessionStore::save(&store, state(&[("a", "1")]), &ttl())
            .await
            .unwrap();
        let text: &str = key.as_ref();
        assert_eq!(text.len(), 43, "32 random bytes, base64url");
        assert!(text
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert!(seen.insert(text.to_string()));
    }
    db.cleanup().await;
}

#[tokio::test]
async fn state_round_trips_and_data_is_queryable_bson() {
    let db = TestDb::new("actixstate").await;
    let store = store(&db).await;
    let saved = state(&[("user", r#""ada""#), ("cart", r#"{"items":[1,2]}"#)]);
    let key = SessionStore::save(&store, saved.clone(), &ttl())
        .await
        .unwrap();
    let mut loaded = SessionStore::load(&store, &key).await.unwrap().unwrap();
    loaded.remove(mongodb_session_store::session::TRACKING_KEY);
    assert_eq!(loaded, saved);
    let document = db
        .collection("sessions")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        document
            .get_document("data")
            .unwrap()
            .get_str("user")
            .unwrap(),
        "ada"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn update_of_a_deleted_session_does_not_resurrect_it() {
    let db = TestDb::new("actixresurrect").await;
    let store = store(&db).await;
    let key1 = SessionStore::save(&store, state(&[("user", r#""ada""#)]), &ttl())
        .await
        .unwrap();
    let mut loaded = SessionStore::load(&store, &key1).await.unwrap().unwrap();
    SessionStore::delete(&store, &key1).await.unwrap();

    loaded.insert("user".into(), r#""mallory""#.into());
    let returned = SessionStore::update(&store, key(key1.as_ref()), loaded, &ttl())
        .await
        .unwrap();

    assert_eq!(returned.as_ref(), key1.as_ref(), "no new session was made");
    assert!(SessionStore::load(&store, &key1).await.unwrap().is_none());
    assert_eq!(
        db.collection("sessions")
            .count_documents(doc! {})
            .await
            .unwrap(),
        0
    );
    db.cleanup().await;
}

#[tokio::test]
async fn update_writes_only_changed_keys() {
    let db = TestDb::new("actixperkey").await;
    let store = store(&db).await;
    let key1 = SessionStore::save(&store, state(&[("a", "0"), ("b", "0")]), &ttl())
        .await
        .unwrap();
    let mut first = SessionStore::load(&store, &key1).await.unwrap().unwrap();
    let mut second = SessionStore::load(&store, &key1).await.unwrap().unwrap();
    first.insert("a".into(), "1".into());
    second.insert("b".into(), "2".into());
    SessionStore::update(&store, key(key1.as_ref()), first, &ttl())
        .await
        .unwrap();
    SessionStore::update(&store, key(key1.as_ref()), second, &ttl())
        .await
        .unwrap();
    let mut merged = SessionStore::load(&store, &key1).await.unwrap().unwrap();
    merged.remove(mongodb_session_store::session::TRACKING_KEY);
    assert_eq!(merged, state(&[("a", "1"), ("b", "2")]));
    db.cleanup().await;
}

#[tokio::test]
async fn update_ttl_is_a_touch_that_honours_touch_after() {
    let db = TestDb::new("actixttl").await;
    let (client, log) = CommandLog::client().await;
    let store = MongoSessionStore::from_client(client.clone())
        .database(&db.name)
        .touch_after(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let key1 = SessionStore::save(&store, state(&[("a", "1")]), &ttl())
        .await
        .unwrap();
    let before = db
        .collection("sessions")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    log.clear();
    for _ in 0..20 {
        SessionStore::load(&store, &key1).await.unwrap().unwrap();
        SessionStore::update_ttl(&store, &key1, &time::Duration::hours(5))
            .await
            .unwrap();
    }
    assert_eq!(
        log.writes(),
        0,
        "inside touch_after nothing is written or even sent"
    );

    // Without touch_after every update_ttl moves the expiry, never the data.
    let sliding = MongoSessionStore::from_client(client)
        .database(&db.name)
        .build()
        .await
        .unwrap();
    SessionStore::update_ttl(&sliding, &key1, &time::Duration::hours(5))
        .await
        .unwrap();
    let after = db
        .collection("sessions")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.get("data"), before.get("data"));
    assert!(after.get_datetime("expires").unwrap() > before.get_datetime("expires").unwrap());
    // A pipeline: the server applies the session's own idle window, if it
    // has one (a touch by id does not know it).
    let update = log.commands("update").pop().expect("one update");
    let stages = update.get_array("updates").unwrap()[0]
        .as_document()
        .unwrap()
        .get_array("u")
        .unwrap()
        .clone();
    assert_eq!(stages.len(), 1, "{stages:?}");
    let set = stages[0]
        .as_document()
        .unwrap()
        .get_document("$set")
        .unwrap();
    assert_eq!(
        set.keys().collect::<Vec<_>>(),
        ["expires", "lastModified", "format"]
    );
    // A touch of a missing session is not an error.
    SessionStore::update_ttl(&sliding, &key("gone"), &ttl())
        .await
        .unwrap();
    db.cleanup().await;
}

#[tokio::test]
async fn an_undecodable_session_loads_as_none() {
    let db = TestDb::new("actixcorrupt").await;
    let store = store(&db).await;
    let key1 = SessionStore::save(&store, state(&[("a", "1")]), &ttl())
        .await
        .unwrap();
    db.collection("sessions")
        .update_one(doc! {}, doc! {"$set": {"data": "garbage"}})
        .await
        .unwrap();
    assert!(SessionStore::load(&store, &key1).await.unwrap().is_none());
    db.cleanup().await;
}
