//! Secure at rest: encryption with rotation, hashed ids, per-user control,
//! absolute timeout — on a real server.

use std::time::{Duration, SystemTime};

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb_session_store::{
    session::USER_KEY, KeyRing, MongoSessionStore, StoreBuilder, UserInfo,
};
use serde_json::{json, Map, Value};
use testkit::TestDb;

const MARKER: &str = "marker-7f3a9c-credit-card-4111";

fn later() -> Option<SystemTime> {
    Some(SystemTime::now() + Duration::from_secs(3600))
}

fn map(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn ring1() -> KeyRing {
    KeyRing::new(1, [1u8; 32]).unwrap()
}

fn builder(db: &TestDb) -> StoreBuilder {
    MongoSessionStore::from_client(db.client.clone()).database(&db.name)
}

async fn documents(db: &TestDb) -> Vec<Document> {
    db.documents("sessions").await
}

/// Key ids of every ciphertext in the collection.
async fn key_ids(db: &TestDb) -> Vec<u32> {
    let mut ids = Vec::new();
    for document in documents(db).await {
        for (_, value) in document.get_document("data").unwrap() {
            let Bson::Binary(binary) = value else {
                panic!("not a ciphertext: {value}")
            };
            ids.push(u32::from_be_bytes(binary.bytes[1..5].try_into().unwrap()));
        }
    }
    ids
}

#[tokio::test]
async fn with_encryption_a_stored_marker_appears_nowhere_in_the_collection() {
    let db = TestDb::new("marker").await;
    let store = builder(&db).encryption(ring1()).build().await.unwrap();
    let data = map(json!({"card": MARKER, "nested": {"deep": [MARKER]}, "plain": 1}));
    let id = store.create(&data, later()).await.unwrap();
    assert_eq!(store.load(&id).await.unwrap().unwrap().data, data);
    // Per-key writes are encrypted too.
    let mut saved = store.load(&id).await.unwrap().unwrap().into_map();
    saved.insert("later".into(), json!(MARKER));
    store.save(&id, &saved, later()).await.unwrap();

    for document in documents(&db).await {
        let raw = mongodb::bson::to_vec(&document).unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains(MARKER), "the marker leaked: {document}");
        assert!(
            !text.contains("card") && !text.contains("nested"),
            "key names leaked"
        );
        assert!(!text.contains(&id), "the session id leaked");
    }
    assert_eq!(
        store.load(&id).await.unwrap().unwrap().data["later"],
        MARKER
    );
    db.cleanup().await;
}

#[tokio::test]
async fn no_stored_id_works_as_a_cookie() {
    let db = TestDb::new("hashedids").await;
    let store = builder(&db).build().await.unwrap();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(store.create(&map(json!({"n": n})), later()).await.unwrap());
    }
    for document in documents(&db).await {
        let stored = document.get_str("_id").unwrap();
        assert!(!ids.iter().any(|id| id == stored), "a raw id is stored");
        assert!(
            store.load(stored).await.unwrap().is_none(),
            "a stored id worked as a cookie"
        );
    }
    for id in &ids {
        assert!(store.load(id).await.unwrap().is_some());
    }
    db.cleanup().await;
}

#[tokio::test]
async fn after_a_rotation_old_sessions_load_and_are_re_encrypted_on_their_next_write() {
    let db = TestDb::new("rotation").await;
    let old = builder(&db).encryption(ring1()).build().await.unwrap();
    let id = old
        .create(&map(json!({"a": 1, "b": 2})), later())
        .await
        .unwrap();
    let untouched = old.create(&map(json!({"c": 3})), later()).await.unwrap();
    assert!(key_ids(&db).await.iter().all(|k| *k == 1));

    let rotated = ring1().with_primary(2, [2u8; 32]).unwrap();
    let store = builder(&db).encryption(rotated).build().await.unwrap();
    let loaded = store.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.data, map(json!({"a": 1, "b": 2})));
    // The next write — here an unchanged save — re-encrypts every value.
    store.save(&id, &loaded.into_map(), later()).await.unwrap();
    let stored = store
        .raw_collection()
        .find_one(doc! {"_id": store.stored_id(&id)})
        .await
        .unwrap()
        .unwrap();
    for (_, value) in stored.get_document("data").unwrap() {
        let Bson::Binary(binary) = value else {
            panic!()
        };
        assert_eq!(binary.bytes[1..5], 2u32.to_be_bytes());
    }

    // rewrap finishes the rest, after which key 1 can be retired.
    let report = store.rewrap().await.unwrap();
    assert_eq!((report.examined, report.rewrapped), (2, 1));
    assert!(key_ids(&db).await.iter().all(|k| *k == 2));
    let retired = builder(&db)
        .encryption(KeyRing::new(2, [2u8; 32]).unwrap())
        .build()
        .await
        .unwrap();
    assert_eq!(
        retired.load(&untouched).await.unwrap().unwrap().data,
        map(json!({"c": 3}))
    );
    assert_eq!(
        store.rewrap().await.unwrap().rewrapped,
        0,
        "a rerun has nothing to do"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_ciphertext_copied_into_another_document_is_rejected() {
    let db = TestDb::new("copied").await;
    let store = builder(&db).encryption(ring1()).build().await.unwrap();
    let victim = store
        .create(&map(json!({"role": "admin"})), later())
        .await
        .unwrap();
    let attacker = store
        .create(&map(json!({"role": "guest"})), later())
        .await
        .unwrap();
    let sessions = db.collection("sessions");
    let victim_doc = sessions
        .find_one(doc! {"_id": store.stored_id(&victim)})
        .await
        .unwrap()
        .unwrap();
    // Same key name, so the same field name: only the binding stops this.
    sessions
        .update_one(
            doc! {"_id": store.stored_id(&attacker)},
            doc! {"$set": {"data": victim_doc.get_document("data").unwrap().clone()}},
        )
        .await
        .unwrap();
    let err = store.load(&attacker).await.unwrap_err();
    assert!(err.is_decode(), "{err}");
    assert!(!err.to_string().contains(&attacker));
    db.cleanup().await;
}

#[tokio::test]
async fn a_flipped_byte_is_rejected_and_the_adapter_starts_a_fresh_session() {
    use tower_sessions_core::{session::Id, SessionStore};
    let db = TestDb::new("flipped").await;
    let store = builder(&db).encryption(ring1()).build().await.unwrap();
    let id = Id::default();
    let mut record = tower_sessions_core::session::Record {
        id,
        data: [("k".to_string(), json!("v"))].into_iter().collect(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    SessionStore::create(&store, &mut record).await.unwrap();
    let sessions = db.collection("sessions");
    let mut document = sessions.find_one(doc! {}).await.unwrap().unwrap();
    let data = document.get_document_mut("data").unwrap();
    let field = data.keys().next().unwrap().clone();
    let Some(Bson::Binary(binary)) = data.get_mut(&field) else {
        panic!()
    };
    let last = binary.bytes.len() - 1;
    binary.bytes[last] ^= 0x01;
    sessions
        .replace_one(
            doc! {"_id": document.get_str("_id").unwrap()},
            document.clone(),
        )
        .await
        .unwrap();

    assert!(store
        .load(&record.id.to_string())
        .await
        .unwrap_err()
        .is_decode());
    assert!(
        SessionStore::load(&store, &record.id)
            .await
            .unwrap()
            .is_none(),
        "a fresh session"
    );
    db.cleanup().await;
}

async fn session_of(store: &MongoSessionStore, user: &str, agent: &str) -> String {
    let info = UserInfo::new(user).user_agent(agent).ip("127.0.0.1");
    let data = map(json!({"n": 1, USER_KEY: info.to_value()}));
    store.create(&data, later()).await.unwrap()
}

#[tokio::test]
async fn a_user_lists_and_revokes_their_sessions_and_revoke_others_keeps_exactly_the_current() {
    let db = TestDb::new("peruser").await;
    let store = builder(&db).build().await.unwrap();
    let phone = session_of(&store, "ada", "phone").await;
    let laptop = session_of(&store, "ada", "laptop").await;
    let tablet = session_of(&store, "ada", "tablet").await;
    let bob = session_of(&store, "bob", "desktop").await;

    let current = store.load(&laptop).await.unwrap().unwrap();
    assert_eq!(current.user.as_ref().unwrap().user, "ada");
    let listed = store
        .user_sessions("ada", Some(&current.handle))
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed.iter().filter(|s| s.current).count(), 1);
    let flagged = listed.iter().find(|s| s.current).unwrap();
    assert_eq!(flagged.user_agent.as_deref(), Some("laptop"));
    assert!(listed
        .iter()
        .all(|s| s.created_at.is_some() && s.ip.as_deref() == Some("127.0.0.1")));
    for session in &listed {
        assert_ne!(session.handle, phone);
        assert!(
            store.load(&session.handle).await.unwrap().is_none(),
            "a handle is no cookie"
        );
    }

    // Revoking one by handle; another user cannot revoke it.
    let tablet_handle = store.load(&tablet).await.unwrap().unwrap().handle;
    assert!(!store.revoke("bob", &tablet_handle).await.unwrap());
    assert!(store.revoke("ada", &tablet_handle).await.unwrap());
    assert!(store.load(&tablet).await.unwrap().is_none());

    assert_eq!(
        store.revoke_others("ada", &current.handle).await.unwrap(),
        1
    );
    let left = store
        .user_sessions("ada", Some(&current.handle))
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].current);
    assert!(store.load(&laptop).await.unwrap().is_some());
    assert!(store.load(&phone).await.unwrap().is_none());
    assert!(
        store.load(&bob).await.unwrap().is_some(),
        "other users are untouched"
    );
    let indexes: Vec<Document> = db
        .database()
        .run_cursor_command(doc! {"listIndexes": "sessions"})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(indexes
        .iter()
        .any(|ix| ix.get_document("key").unwrap() == &doc! {"user": 1}));
    db.cleanup().await;
}

#[tokio::test]
async fn the_owner_is_saved_with_changes_and_survives_id_regeneration() {
    let db = TestDb::new("owner").await;
    let store = builder(&db).build().await.unwrap();
    let id = store.create(&map(json!({"n": 1})), later()).await.unwrap();
    let mut data = store.load(&id).await.unwrap().unwrap().into_map();
    data.insert(USER_KEY.into(), UserInfo::new("ada").to_value());
    store.save(&id, &data, later()).await.unwrap();
    let loaded = store.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.user.as_ref().map(|u| u.user.as_str()), Some("ada"));
    assert!(
        !loaded.data.contains_key(USER_KEY),
        "the owner is not a session value"
    );

    // Login-style regeneration: the carried map creates the new session.
    store.delete(&id).await.unwrap();
    let fresh = store.create(&loaded.into_map(), later()).await.unwrap();
    assert_eq!(store.user_sessions("ada", None).await.unwrap().len(), 1);
    assert!(store.load(&fresh).await.unwrap().unwrap().user.is_some());
    db.cleanup().await;
}

#[tokio::test]
async fn a_session_past_max_lifetime_is_gone_even_if_used_a_moment_ago() {
    let db = TestDb::new("lifetime").await;
    let lifetime = Duration::from_millis(2000);
    let store = builder(&db)
        .absolute_timeout(lifetime)
        .build()
        .await
        .unwrap();
    let id = store.create(&map(json!({"n": 0})), later()).await.unwrap();
    let stored = store
        .raw_collection()
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    let (created, expires) = (
        stored.get_datetime("createdAt").unwrap(),
        stored.get_datetime("expires").unwrap(),
    );
    assert!(
        expires.timestamp_millis() - created.timestamp_millis() <= 2000,
        "expiry capped"
    );

    for n in 1..=3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let mut data = store
            .load(&id)
            .await
            .unwrap()
            .expect("still alive")
            .into_map();
        data.insert("n".into(), json!(n));
        store.save(&id, &data, later()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(900)).await; // 2.1 s since creation
    assert!(
        store.load(&id).await.unwrap().is_none(),
        "past the absolute lifetime"
    );
    assert!(!store.touch(&id, later()).await.unwrap());
    db.cleanup().await;
}

#[tokio::test]
async fn encryption_and_max_lifetime_are_validated() {
    let db = TestDb::new("secvalidate").await;
    let err = builder(&db)
        .codec(mongodb_session_store::Codec::JsonString)
        .encryption(ring1())
        .build()
        .await
        .unwrap_err();
    assert!(err.is_config(), "{err}");
    let err = builder(&db)
        .timestamps(false)
        .absolute_timeout(Duration::from_secs(60))
        .build()
        .await
        .unwrap_err();
    assert!(err.is_config(), "{err}");
    assert!(builder(&db)
        .build()
        .await
        .unwrap()
        .rewrap()
        .await
        .unwrap_err()
        .is_config());
    db.cleanup().await;
}
