//! Secure at rest: encryption with rotation, hashed ids, per-user control,
//! absolute timeout — on a real server.

use std::time::Duration;

use mongodb::bson::{doc, Bson, Document};
use mongodb_session_store::{session::USER_KEY, KeyRing, MongoSessionStore, UserInfo};
use serde_json::json;
use testkit::TestDb;
use tower_sessions_core::SessionStore;

use crate::common::{
    builder, data, db_and_store, in_an_hour, index_on, loaded, map, new_session, only_document,
    set_fields, store, stored, tower_session, Build,
};

const MARKER: &str = "marker-7f3a9c-credit-card-4111";

fn ring1() -> KeyRing {
    KeyRing::new(1, [1u8; 32]).unwrap()
}

async fn documents(db: &TestDb) -> Vec<Document> {
    db.documents("sessions").await
}

/// The key id of each value of `document` (each must be a ciphertext).
fn value_key_ids(document: &Document) -> Vec<u32> {
    let data = document.get_document("data").unwrap();
    let key_id = |value: &Bson| {
        let Bson::Binary(binary) = value else {
            panic!("not a ciphertext: {value}")
        };
        u32::from_be_bytes(binary.bytes[1..5].try_into().unwrap())
    };
    data.values().map(key_id).collect()
}

/// Key ids of every ciphertext in the collection.
async fn key_ids(db: &TestDb) -> Vec<u32> {
    documents(db).await.iter().flat_map(value_key_ids).collect()
}

#[tokio::test]
async fn with_encryption_a_stored_marker_appears_nowhere_in_the_collection() {
    let db = TestDb::new("marker").await;
    let store = builder(&db).encryption(ring1()).built().await;
    let values = map(json!({"card": MARKER, "nested": {"deep": [MARKER]}, "plain": 1}));
    let id = store.create(&values, in_an_hour()).await.unwrap();
    assert_eq!(data(&store, &id).await, values);
    // Per-key writes are encrypted too.
    let mut tracked = loaded(&store, &id).await;
    tracked.insert("later".into(), json!(MARKER));
    store.save(&id, &tracked, in_an_hour()).await.unwrap();

    for document in documents(&db).await {
        let raw = mongodb::bson::to_vec(&document).unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains(MARKER), "the marker leaked: {document}");
        let names = text.contains("card") || text.contains("nested");
        assert!(!names, "key names leaked");
        assert!(!text.contains(&id), "the session id leaked");
    }
    assert_eq!(data(&store, &id).await["later"], MARKER);
}

#[tokio::test]
async fn no_stored_id_works_as_a_cookie() {
    let (db, store) = db_and_store("hashedids").await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(new_session(&store, json!({"n": n}), in_an_hour()).await);
    }
    for document in documents(&db).await {
        let stored = document.get_str("_id").unwrap();
        assert!(!ids.iter().any(|id| id == stored), "a raw id is stored");
        let as_cookie = store.load(stored).await.unwrap();
        assert!(as_cookie.is_none(), "a stored id worked as a cookie");
    }
    for id in &ids {
        assert!(store.load(id).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn after_a_rotation_old_sessions_load_and_are_re_encrypted_on_their_next_write() {
    let db = TestDb::new("rotation").await;
    let old = builder(&db).encryption(ring1()).built().await;
    let id = new_session(&old, json!({"a": 1, "b": 2}), in_an_hour()).await;
    let untouched = new_session(&old, json!({"c": 3}), in_an_hour()).await;
    assert!(key_ids(&db).await.iter().all(|k| *k == 1));

    let rotated = ring1().with_primary(2, [2u8; 32]).unwrap();
    let store = builder(&db).encryption(rotated).built().await;
    let loaded = store.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.data, map(json!({"a": 1, "b": 2})));
    // The next write — here an unchanged save — re-encrypts every value.
    store
        .save(&id, &loaded.into_map(), in_an_hour())
        .await
        .unwrap();
    let rewritten = stored(&db, &store, &id).await.unwrap();
    assert!(value_key_ids(&rewritten).iter().all(|k| *k == 2));

    // rewrap finishes the rest, after which key 1 can be retired.
    let report = store.rewrap().await.unwrap();
    assert_eq!((report.examined, report.rewrapped), (2, 1));
    assert!(key_ids(&db).await.iter().all(|k| *k == 2));
    let only_key_2 = KeyRing::new(2, [2u8; 32]).unwrap();
    let retired = builder(&db).encryption(only_key_2).built().await;
    assert_eq!(data(&retired, &untouched).await, map(json!({"c": 3})));
    let rerun = store.rewrap().await.unwrap();
    assert_eq!(rerun.rewrapped, 0, "a rerun has nothing to do");
}

#[tokio::test]
async fn a_ciphertext_copied_into_another_document_is_rejected() {
    let db = TestDb::new("copied").await;
    let store = builder(&db).encryption(ring1()).built().await;
    let victim = new_session(&store, json!({"role": "admin"}), in_an_hour()).await;
    let attacker = new_session(&store, json!({"role": "guest"}), in_an_hour()).await;
    let victim_doc = stored(&db, &store, &victim).await.unwrap();
    // Same key name, so the same field name: only the binding stops this.
    let copied = victim_doc.get_document("data").unwrap().clone();
    set_fields(&db, &store, &attacker, doc! {"data": copied}).await;
    let err = store.load(&attacker).await.unwrap_err();
    assert!(err.is_decode(), "{err}");
    assert!(!err.to_string().contains(&attacker));
}

#[tokio::test]
async fn a_flipped_byte_is_rejected_and_the_adapter_starts_a_fresh_session() {
    let db = TestDb::new("flipped").await;
    let store = builder(&db).encryption(ring1()).built().await;
    let record = tower_session(&store, json!({"k": "v"})).await;
    let mut document = only_document(&db).await;
    let data = document.get_document_mut("data").unwrap();
    let field = data.keys().next().unwrap().clone();
    let Some(Bson::Binary(binary)) = data.get_mut(&field) else {
        panic!()
    };
    let last = binary.bytes.len() - 1;
    binary.bytes[last] ^= 0x01;
    let filter = doc! {"_id": document.get_str("_id").unwrap()};
    let sessions = db.collection("sessions");
    sessions
        .replace_one(filter, document.clone())
        .await
        .unwrap();

    let id = record.id.to_string();
    assert!(store.load(&id).await.unwrap_err().is_decode());
    let fresh = SessionStore::load(&store, &record.id).await.unwrap();
    assert!(fresh.is_none(), "a fresh session");
}

async fn session_of(store: &MongoSessionStore, user: &str, agent: &str) -> String {
    let info = UserInfo::new(user).user_agent(agent).ip("127.0.0.1");
    let values = json!({"n": 1, USER_KEY: info.to_value()});
    new_session(store, values, in_an_hour()).await
}

// One scenario on one user's devices: listing, revoking one, then all others.
#[tokio::test]
async fn a_user_lists_and_revokes_their_sessions_and_revoke_others_keeps_exactly_the_current() {
    let (db, store) = db_and_store("peruser").await;
    let phone = session_of(&store, "ada", "phone").await;
    let laptop = session_of(&store, "ada", "laptop").await;
    let tablet = session_of(&store, "ada", "tablet").await;
    let bob = session_of(&store, "bob", "desktop").await;

    let current = store.load(&laptop).await.unwrap().unwrap();
    assert_eq!(current.user.as_ref().unwrap().user, "ada");
    let listed = store.user_sessions("ada", Some(&current.handle));
    let listed = listed.await.unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed.iter().filter(|s| s.current).count(), 1);
    let flagged = listed.iter().find(|s| s.current).unwrap();
    assert_eq!(flagged.user_agent.as_deref(), Some("laptop"));
    let described = |s: &mongodb_session_store::users::UserSession| {
        s.created_at.is_some() && s.ip.as_deref() == Some("127.0.0.1")
    };
    assert!(listed.iter().all(described));
    for session in &listed {
        assert_ne!(session.handle, phone);
        let as_cookie = store.load(&session.handle).await.unwrap();
        assert!(as_cookie.is_none(), "a handle is no cookie");
    }

    // Revoking one by handle; another user cannot revoke it.
    let tablet_handle = store.load(&tablet).await.unwrap().unwrap().handle;
    assert!(!store.revoke("bob", &tablet_handle).await.unwrap());
    assert!(store.revoke("ada", &tablet_handle).await.unwrap());
    assert!(store.load(&tablet).await.unwrap().is_none());

    let others = store.revoke_others("ada", &current.handle).await;
    assert_eq!(others.unwrap(), 1);
    let left = store.user_sessions("ada", Some(&current.handle)).await;
    let left = left.unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].current);
    assert!(store.load(&laptop).await.unwrap().is_some());
    assert!(store.load(&phone).await.unwrap().is_none());
    let bobs = store.load(&bob).await.unwrap();
    assert!(bobs.is_some(), "other users are untouched");
    assert!(index_on(&db, "user").await.is_some());
}

#[tokio::test]
async fn the_owner_is_saved_with_changes_and_survives_id_regeneration() {
    let (_db, store) = db_and_store("owner").await;
    let id = new_session(&store, json!({"n": 1}), in_an_hour()).await;
    let mut tracked = loaded(&store, &id).await;
    tracked.insert(USER_KEY.into(), UserInfo::new("ada").to_value());
    store.save(&id, &tracked, in_an_hour()).await.unwrap();
    let loaded = store.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.user.as_ref().map(|u| u.user.as_str()), Some("ada"));
    let in_data = loaded.data.contains_key(USER_KEY);
    assert!(!in_data, "the owner is not a session value");

    // Login-style regeneration: the carried map creates the new session.
    store.delete(&id).await.unwrap();
    let fresh = store
        .create(&loaded.into_map(), in_an_hour())
        .await
        .unwrap();
    assert_eq!(store.user_sessions("ada", None).await.unwrap().len(), 1);
    assert!(store.load(&fresh).await.unwrap().unwrap().user.is_some());
}

#[tokio::test]
async fn a_session_past_max_lifetime_is_gone_even_if_used_a_moment_ago() {
    let db = TestDb::new("lifetime").await;
    let lifetime = Duration::from_millis(2000);
    let store = builder(&db).absolute_timeout(lifetime).built().await;
    let id = new_session(&store, json!({"n": 0}), in_an_hour()).await;
    let first = only_document(&db).await;
    let millis = |field| first.get_datetime(field).unwrap().timestamp_millis();
    let lived = millis("expires") - millis("createdAt");
    assert!(lived <= 2000, "expiry capped");

    for n in 1..=3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let alive = store.load(&id).await.unwrap().expect("still alive");
        let mut tracked = alive.into_map();
        tracked.insert("n".into(), json!(n));
        store.save(&id, &tracked, in_an_hour()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(900)).await; // 2.1 s since creation
    let past = store.load(&id).await.unwrap();
    assert!(past.is_none(), "past the absolute lifetime");
    assert!(!store.touch(&id, in_an_hour()).await.unwrap());
}

#[tokio::test]
async fn encryption_and_max_lifetime_are_validated() {
    let db = TestDb::new("secvalidate").await;
    let json_string = builder(&db).codec(mongodb_session_store::Codec::JsonString);
    let err = json_string.encryption(ring1()).refused().await;
    assert!(err.is_config(), "{err}");
    let untimed = builder(&db).timestamps(false);
    let err = untimed
        .absolute_timeout(Duration::from_secs(60))
        .refused()
        .await;
    assert!(err.is_config(), "{err}");
    let plain = store(&db).await;
    assert!(plain.rewrap().await.unwrap_err().is_config());
}
