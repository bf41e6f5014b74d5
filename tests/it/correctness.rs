//! Issue 11: the paths where the store's promises did not hold — rotation,
//! ownership, regeneration, expiry bounds, configuration, size, field-name
//! secrecy — each driven through the public API or an adapter against a
//! real server.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use mongodb::bson::{doc, Bson, DateTime, Document};
use mongodb_session_store::{
    session::TRACKING_KEY, session::USER_KEY, Codec, ConflictPolicy, KeyRing, MongoSessionStore,
    StoreBuilder, UserInfo,
};
use serde_json::{json, Map, Value};
use testkit::TestDb;

fn map(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn hours(n: u64) -> Option<SystemTime> {
    Some(SystemTime::now() + Duration::from_secs(3600 * n))
}

fn builder(db: &TestDb) -> StoreBuilder {
    MongoSessionStore::from_client(db.client.clone()).database(&db.name)
}

fn ring1() -> KeyRing {
    KeyRing::new(1, [1u8; 32]).unwrap()
}

fn rotated() -> KeyRing {
    ring1().with_primary(2, [2u8; 32]).unwrap()
}

async fn only_document(db: &TestDb) -> Document {
    let mut all = db.documents("sessions").await;
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

// 1. A removal after a key rotation.

async fn rotated_session(db: &TestDb, policy: ConflictPolicy) -> (MongoSessionStore, String) {
    let old = builder(db).encryption(ring1()).build().await.unwrap();
    let id = old
        .create(&map(json!({"a": 1, "b": 2, "c": 3})), hours(1))
        .await
        .unwrap();
    let store = builder(db)
        .encryption(rotated())
        .on_conflict(policy)
        .build()
        .await
        .unwrap();
    (store, id)
}

#[tokio::test]
async fn a_removal_after_a_key_rotation_is_saved_under_either_policy() {
    for policy in [ConflictPolicy::LastWriterWins, ConflictPolicy::Fail] {
        let db = TestDb::new("rotremove").await;
        let (store, id) = rotated_session(&db, policy).await;
        let mut data = store.load(&id).await.unwrap().unwrap().into_map();
        data.remove("a");
        store.save(&id, &data, hours(1)).await.unwrap();
        let reloaded = store.load(&id).await.unwrap().unwrap();
        assert_eq!(reloaded.data, map(json!({"b": 2, "c": 3})), "{policy:?}");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn after_a_rotation_a_save_neither_overwrites_nor_conflicts_on_keys_it_did_not_touch() {
    for policy in [ConflictPolicy::LastWriterWins, ConflictPolicy::Fail] {
        let db = TestDb::new("rotuntouched").await;
        let (store, id) = rotated_session(&db, policy).await;
        let mut mine = store.load(&id).await.unwrap().unwrap().into_map();
        // Another request changes `b` after this one loaded.
        let mut theirs = store.load(&id).await.unwrap().unwrap().into_map();
        theirs.insert("b".into(), json!("theirs"));
        store.save(&id, &theirs, hours(1)).await.unwrap();

        mine.insert("a".into(), json!("mine"));
        store.save(&id, &mine, hours(1)).await.unwrap();
        let reloaded = store.load(&id).await.unwrap().unwrap();
        assert_eq!(
            reloaded.data,
            map(json!({"a": "mine", "b": "theirs", "c": 3})),
            "{policy:?}"
        );
        db.cleanup().await;
    }
}

// 2. The owner and whole-session saves.

async fn owned_session(store: &MongoSessionStore) -> String {
    let mut data = map(json!({"n": 1}));
    data.insert(USER_KEY.into(), UserInfo::new("ada").to_value());
    store.create(&data, hours(1)).await.unwrap()
}

async fn assert_no_owner(store: &MongoSessionStore, id: &str, how: &str) {
    let loaded = store.load(id).await.unwrap().expect(how);
    assert_eq!(loaded.user, None, "{how}: the reload still names the owner");
    assert!(
        store.user_sessions("ada", None).await.unwrap().is_empty(),
        "{how}: still listed as the owner's session"
    );
    let document = store
        .raw_collection()
        .find_one(doc! {"_id": store.stored_id(id)})
        .await
        .unwrap()
        .unwrap();
    for field in ["user", "userAgent", "ip"] {
        assert!(!document.contains_key(field), "{how}: {field} left behind");
    }
}

#[tokio::test]
async fn a_whole_session_save_without_the_owner_entry_clears_the_owner() {
    let db = TestDb::new("ownerclear").await;
    let store = builder(&db).build().await.unwrap();

    // The core API: a map that is the whole truth (no tracking entry).
    let id = owned_session(&store).await;
    assert_eq!(store.user_sessions("ada", None).await.unwrap().len(), 1);
    store
        .save(&id, &map(json!({"n": 2})), hours(1))
        .await
        .unwrap();
    assert_no_owner(&store, &id, "core save of a plain map").await;

    // tower-sessions: `Session::clear()` then save hands the store an empty record.
    let mut record = tower_sessions_core::session::Record {
        id: tower_sessions_core::session::Id::default(),
        data: HashMap::from([(USER_KEY.to_string(), UserInfo::new("ada").to_value())]),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    tower_sessions_core::SessionStore::create(&store, &mut record)
        .await
        .unwrap();
    let tower_id = record.id.to_string();
    assert_eq!(store.user_sessions("ada", None).await.unwrap().len(), 1);
    record.data.clear();
    tower_sessions_core::SessionStore::save(&store, &record)
        .await
        .unwrap();
    assert_no_owner(&store, &tower_id, "tower clear + save").await;

    // actix-session: `Session::clear()` updates with an empty state.
    let key = actix_session::storage::SessionStore::save(
        &store,
        HashMap::from([(
            USER_KEY.to_string(),
            UserInfo::new("ada").to_value().to_string(),
        )]),
        &time::Duration::hours(1),
    )
    .await
    .unwrap();
    let actix_id = key.as_ref().to_string();
    actix_session::storage::SessionStore::update(
        &store,
        key,
        HashMap::new(),
        &time::Duration::hours(1),
    )
    .await
    .unwrap();
    assert_no_owner(&store, &actix_id, "actix clear + update").await;
    db.cleanup().await;
}

#[tokio::test]
async fn removing_the_owner_under_an_opaque_codec_clears_it() {
    let db = TestDb::new("owneropaque").await;
    let store = builder(&db).codec(Codec::JsonString).build().await.unwrap();
    let id = owned_session(&store).await;
    let mut data = store.load(&id).await.unwrap().unwrap().into_map();
    assert!(data.remove(USER_KEY).is_some());
    store.save(&id, &data, hours(1)).await.unwrap();
    assert_no_owner(&store, &id, "JsonString, owner removed").await;

    // And an unrelated change keeps the owner.
    let id = owned_session(&store).await;
    let mut data = store.load(&id).await.unwrap().unwrap().into_map();
    data.insert("n".into(), json!(5));
    store.save(&id, &data, hours(1)).await.unwrap();
    let loaded = store.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.user.map(|u| u.user), Some("ada".to_string()));
    assert_eq!(loaded.data["n"], 5);
    db.cleanup().await;
}

// 3. Dates at the edge of BSON's range.

#[tokio::test]
async fn extreme_stored_dates_never_panic_an_adapter() {
    let db = TestDb::new("extremedates").await;
    let store = builder(&db).build().await.unwrap();
    let mut record = tower_sessions_core::session::Record {
        id: tower_sessions_core::session::Id::default(),
        data: HashMap::from([("a".to_string(), json!(1))]),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    tower_sessions_core::SessionStore::create(&store, &mut record)
        .await
        .unwrap();
    let sessions = db.collection("sessions");
    sessions
        .update_one(
            doc! {},
            doc! {"$set": {
                "expires": DateTime::MAX,
                "createdAt": DateTime::MAX,
                "lastModified": DateTime::MAX,
                "user": "ada",
            }},
        )
        .await
        .unwrap();
    let loaded = tower_sessions_core::SessionStore::load(&store, &record.id)
        .await
        .unwrap()
        .expect("a session that expires in the far future is live");
    assert_eq!(loaded.data["a"], 1);
    assert!(
        loaded.expiry_date.year() >= 9999,
        "clamped to the latest date"
    );
    // The owner's listing and actix's load survive the same dates.
    store.user_sessions("ada", None).await.unwrap();
    let key = actix_session::storage::SessionKey::try_from(record.id.to_string()).unwrap();
    actix_session::storage::SessionStore::load(&store, &key)
        .await
        .unwrap();

    // The earliest date: expired, so no session, and no panic.
    sessions
        .update_one(
            doc! {},
            doc! {"$set": {"expires": DateTime::MIN, "createdAt": DateTime::MIN}},
        )
        .await
        .unwrap();
    assert!(tower_sessions_core::SessionStore::load(&store, &record.id)
        .await
        .unwrap()
        .is_none());
    db.cleanup().await;
}

// 4. Regeneration racing a logout.

#[tokio::test]
async fn tower_cycle_id_does_not_bring_back_a_session_logged_out_meanwhile() {
    use tower_sessions_core::SessionStore as Tower;
    let db = TestDb::new("cycleraced").await;
    let store = builder(&db).build().await.unwrap();
    let mut record = tower_sessions_core::session::Record {
        id: tower_sessions_core::session::Id::default(),
        data: HashMap::from([("user_id".to_string(), json!(7))]),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    Tower::create(&store, &mut record).await.unwrap();
    let old = record.id;

    // The regenerating request loads; a logout elsewhere deletes the
    // session; then tower's cycle_id deletes the old id and creates anew.
    let mut loaded = Tower::load(&store, &old).await.unwrap().unwrap();
    Tower::delete(&store, &old).await.unwrap(); // the concurrent logout
    Tower::delete(&store, &old).await.unwrap(); // cycle_id's own delete finds nothing
    loaded.id = tower_sessions_core::session::Id::default();
    Tower::create(&store, &mut loaded).await.unwrap();
    assert!(
        Tower::load(&store, &loaded.id).await.unwrap().is_none(),
        "the logged-out data reappeared under a new id"
    );
    assert!(db.documents("sessions").await.is_empty());

    // Without the race, regeneration keeps the data under the new id.
    let mut record = tower_sessions_core::session::Record {
        id: tower_sessions_core::session::Id::default(),
        data: HashMap::from([("user_id".to_string(), json!(8))]),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    Tower::create(&store, &mut record).await.unwrap();
    let mut loaded = Tower::load(&store, &record.id).await.unwrap().unwrap();
    Tower::delete(&store, &record.id).await.unwrap();
    loaded.id = tower_sessions_core::session::Id::default();
    Tower::create(&store, &mut loaded).await.unwrap();
    let regenerated = Tower::load(&store, &loaded.id).await.unwrap().unwrap();
    assert_eq!(regenerated.data["user_id"], 8);
    assert!(Tower::load(&store, &record.id).await.unwrap().is_none());
    db.cleanup().await;
}

#[tokio::test]
async fn actix_renew_does_not_bring_back_a_session_logged_out_meanwhile() {
    use actix_session::storage::SessionStore as Actix;
    let db = TestDb::new("renewraced").await;
    let store = builder(&db).build().await.unwrap();
    let ttl = time::Duration::hours(1);
    let key = Actix::save(
        &store,
        HashMap::from([("user_id".into(), "7".into())]),
        &ttl,
    )
    .await
    .unwrap();
    let state = Actix::load(&store, &key).await.unwrap().unwrap();
    Actix::delete(&store, &key).await.unwrap(); // the concurrent logout
                                                // actix-session's renew: delete the old key, save the state anew.
    Actix::delete(&store, &key).await.unwrap();
    let renewed = Actix::save(&store, state, &ttl).await.unwrap();
    assert!(Actix::load(&store, &renewed).await.unwrap().is_none());
    assert!(db.documents("sessions").await.is_empty());

    // Without the race the state moves to the new key.
    let key = Actix::save(
        &store,
        HashMap::from([("user_id".into(), "8".into())]),
        &ttl,
    )
    .await
    .unwrap();
    let state = Actix::load(&store, &key).await.unwrap().unwrap();
    Actix::delete(&store, &key).await.unwrap();
    let renewed = Actix::save(&store, state, &ttl).await.unwrap();
    assert_eq!(
        Actix::load(&store, &renewed).await.unwrap().unwrap()["user_id"],
        "8"
    );
    db.cleanup().await;
}

// 7. Rewrap past an undecodable document.

#[tokio::test]
async fn rewrap_skips_counts_and_reports_undecodable_documents_and_carries_on() {
    let db = TestDb::new("rewrapbad").await;
    let old = builder(&db).encryption(ring1()).build().await.unwrap();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(old.create(&map(json!({"n": n})), hours(1)).await.unwrap());
    }
    db.collection("sessions")
        .update_one(
            doc! {"_id": old.stored_id(&ids[2])},
            doc! {"$set": {"data": "garbage"}},
        )
        .await
        .unwrap();
    let store = builder(&db).encryption(rotated()).build().await.unwrap();
    let report = store.rewrap().await.unwrap();
    assert_eq!(report.examined, 5);
    assert_eq!(report.rewrapped, 4);
    assert_eq!(report.undecodable, 1);
    for (n, id) in ids.iter().enumerate().filter(|(n, _)| *n != 2) {
        assert_eq!(store.load(id).await.unwrap().unwrap().data["n"], n);
    }
    db.cleanup().await;
}

// 8. The stored expiry never passes the absolute lifetime.

async fn stored_expires(db: &TestDb) -> (i64, i64) {
    let document = only_document(db).await;
    (
        document.get_datetime("expires").unwrap().timestamp_millis(),
        document
            .get_datetime("createdAt")
            .unwrap()
            .timestamp_millis(),
    )
}

#[tokio::test]
async fn no_write_moves_the_stored_expiry_past_max_lifetime() {
    let db = TestDb::new("lifetimecap").await;
    let lifetime = Duration::from_secs(3600);
    let store = builder(&db)
        .absolute_timeout(lifetime)
        .build()
        .await
        .unwrap();
    let id = store.create(&map(json!({"a": 1})), hours(1)).await.unwrap();
    let cap = |created: i64| created + 3_600_000;

    assert!(store.touch(&id, hours(10)).await.unwrap());
    let (expires, created) = stored_expires(&db).await;
    assert!(
        expires <= cap(created),
        "touch: {expires} > {}",
        cap(created)
    );

    store
        .save(&id, &map(json!({"a": 2})), hours(10))
        .await
        .unwrap();
    let (expires, created) = stored_expires(&db).await;
    assert!(expires <= cap(created), "save without a snapshot");
    assert_eq!(store.load(&id).await.unwrap().unwrap().data["a"], 2);

    let mut data = store.load(&id).await.unwrap().unwrap().into_map();
    data.insert("a".into(), json!(3));
    store.save(&id, &data, hours(10)).await.unwrap();
    let (expires, created) = stored_expires(&db).await;
    assert!(expires <= cap(created), "per-key save");
    db.cleanup().await;
}

#[tokio::test]
async fn express_layout_saves_respect_max_lifetime() {
    use mongodb_session_store::express::ExpressLayout;
    let db = TestDb::new("lifetimeexpress").await;
    let store = builder(&db)
        .express_layout(ExpressLayout::ConnectMongodbSession)
        .absolute_timeout(Duration::from_secs(3600))
        .idle_timeout(Duration::from_secs(36_000))
        .build()
        .await
        .unwrap();
    let cookie = json!({"originalMaxAge": 36_000_000, "httpOnly": true, "path": "/"});
    let id = store
        .create(&map(json!({"cookie": cookie, "a": 1})), None)
        .await
        .unwrap();
    let (expires, created) = stored_expires(&db).await;
    assert!(expires <= created + 3_600_000, "create");
    let mut data = store.load(&id).await.unwrap().unwrap().into_map();
    data.insert("a".into(), json!(2));
    store.save(&id, &data, None).await.unwrap();
    let (expires, created) = stored_expires(&db).await;
    assert!(expires <= created + 3_600_000, "save");
    db.cleanup().await;
}

#[tokio::test]
async fn delete_expired_removes_sessions_past_max_lifetime() {
    let db = TestDb::new("lifetimepurge").await;
    let store = builder(&db)
        .absolute_timeout(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    let old = store.create(&map(json!({"a": 1})), hours(1)).await.unwrap();
    let young = store.create(&map(json!({"b": 1})), hours(1)).await.unwrap();
    let two_hours_ago = DateTime::from_system_time(SystemTime::now() - Duration::from_secs(7200));
    db.collection("sessions")
        .update_one(
            doc! {"_id": store.stored_id(&old)},
            doc! {"$set": {"createdAt": two_hours_ago}},
        )
        .await
        .unwrap();
    assert_eq!(store.delete_expired().await.unwrap(), 1);
    assert!(store.load(&young).await.unwrap().is_some());
    assert_eq!(db.documents("sessions").await.len(), 1);
    db.cleanup().await;
}

// 9. Configuration that could only panic later is refused at build.

#[tokio::test]
async fn durations_too_large_to_compute_with_are_refused_at_build() {
    let db = TestDb::new("hugedurations").await;
    let cases: Vec<(&str, StoreBuilder)> = vec![
        ("idle_timeout", builder(&db).idle_timeout(Duration::MAX)),
        (
            "absolute_timeout",
            builder(&db).absolute_timeout(Duration::MAX),
        ),
        (
            "operation_timeout",
            builder(&db).operation_timeout(Duration::MAX),
        ),
        (
            "operation_timeout",
            builder(&db)
                .operation_timeout(Duration::MAX)
                .on_conflict(ConflictPolicy::Fail),
        ),
        (
            "connect_timeout",
            builder(&db).connect_timeout(Duration::MAX),
        ),
    ];
    for (name, builder) in cases {
        let err = builder.build().await.unwrap_err();
        assert!(err.is_config(), "{name}: {err}");
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
    // The largest accepted values work end to end.
    let store = builder(&db)
        .idle_timeout(Duration::from_secs(100 * 365 * 24 * 3600))
        .absolute_timeout(Duration::from_secs(100 * 365 * 24 * 3600))
        .operation_timeout(Duration::from_secs(24 * 3600))
        .on_conflict(ConflictPolicy::Fail)
        .build()
        .await
        .unwrap();
    let id = store.create(&map(json!({"a": 1})), None).await.unwrap();
    let mut data = store.load(&id).await.unwrap().unwrap().into_map();
    data.insert("a".into(), json!(2));
    store.save(&id, &data, None).await.unwrap();
    store.touch(&id, None).await.unwrap();
    // A framework's expiry far in the future saturates instead of panicking.
    let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000 * 365 * 24 * 3600);
    let mut data = store.load(&id).await.unwrap().unwrap().into_map();
    data.insert("a".into(), json!(3));
    store.save(&id, &data, Some(far)).await.unwrap();
    let actix_ttl = time::Duration::MAX;
    actix_session::storage::SessionStore::save(&store, HashMap::new(), &actix_ttl)
        .await
        .unwrap();
    db.cleanup().await;
}

// 10. Size: what is stored, not its JSON.

#[tokio::test]
async fn the_size_limit_measures_the_stored_bson() {
    let db = TestDb::new("bsonsize").await;
    let store = builder(&db)
        .max_session_bytes(1_000_000)
        .build()
        .await
        .unwrap();
    // 200,000 zeros: 400 kB as JSON, about 2.4 MB as a BSON array.
    let zeros = json!({"zeros": vec![0; 200_000]});
    let err = store.create(&map(zeros), hours(1)).await.unwrap_err();
    assert!(err.is_encode(), "{err}");
    assert!(db.documents("sessions").await.is_empty());
    db.cleanup().await;
}

#[tokio::test]
async fn a_document_that_would_pass_16_mib_is_an_encode_error_and_nothing_is_lost() {
    let db = TestDb::new("sixteenmib").await;
    let store = builder(&db)
        .max_session_bytes(10 * 1024 * 1024)
        .build()
        .await
        .unwrap();
    let id = store.create(&map(json!({"n": 1})), hours(1)).await.unwrap();
    let nine_mib = "x".repeat(9 * 1024 * 1024);
    // Two requests each add 9 MiB under their own key: each is under the
    // limit, together they pass MongoDB's 16 MiB document limit.
    let first = store.load(&id).await.unwrap().unwrap().into_map();
    let mut second = first.clone();
    let mut first = first;
    first.insert("a".into(), json!(nine_mib));
    second.insert("b".into(), json!(nine_mib));
    store.save(&id, &first, hours(1)).await.unwrap();
    let err = store.save(&id, &second, hours(1)).await.unwrap_err();
    assert!(err.is_encode(), "{err}");
    let kept = store.load(&id).await.unwrap().unwrap();
    assert_eq!(kept.data["n"], 1);
    assert_eq!(kept.data["a"].as_str().map(str::len), Some(nine_mib.len()));
    assert!(!kept.data.contains_key("b"));

    // A limit that MongoDB could never store is refused at build.
    let err = builder(&db)
        .max_session_bytes(17 * 1024 * 1024)
        .build()
        .await
        .unwrap_err();
    assert!(err.is_config(), "{err}");
    db.cleanup().await;
}

// 11. Encrypted field names are keyed by the key ring, not a public key.

/// The field name of `key` under the public default hash key (how earlier
/// versions named encrypted fields).
fn legacy_field_name(key: &str) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(b"mongodb-session-store/v1/default-hash-key")
            .unwrap();
    mac.update(b"field\0");
    mac.update(key.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..16])
}

/// A value sealed as earlier versions sealed it: format 1, the key id, a
/// nonce, AES-256-GCM of `[key, value]` bound to the document and field.
fn legacy_ciphertext(stored_id: &str, field: &str, key: &str, value: &Value) -> Bson {
    use aes_gcm::{aead::Aead, KeyInit};
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&[1u8; 32]).unwrap();
    let nonce = [7u8; 12];
    let aad = format!("mss/v1\0{stored_id}\0{field}");
    let sealed = cipher
        .encrypt(
            aes_gcm::Nonce::from_slice(&nonce),
            aes_gcm::aead::Payload {
                msg: &serde_json::to_vec(&(key, value)).unwrap(),
                aad: aad.as_bytes(),
            },
        )
        .unwrap();
    let mut bytes = vec![1u8];
    bytes.extend_from_slice(&1u32.to_be_bytes());
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&sealed);
    Bson::Binary(mongodb::bson::Binary {
        subtype: mongodb::bson::spec::BinarySubtype::Generic,
        bytes,
    })
}

#[tokio::test]
async fn encrypted_field_names_depend_on_the_key_ring_not_a_public_key() {
    let db = TestDb::new("fieldnames").await;
    let a = builder(&db).encryption(ring1()).build().await.unwrap();
    let id = a
        .create(&map(json!({"user_id": 1})), hours(1))
        .await
        .unwrap();
    let names = |document: &Document| -> Vec<String> {
        document
            .get_document("data")
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let first = names(&only_document(&db).await);
    assert_ne!(first, vec![legacy_field_name("user_id")], "guessable name");
    a.delete(&id).await.unwrap();

    let b = builder(&db)
        .encryption(KeyRing::new(1, [9u8; 32]).unwrap())
        .build()
        .await
        .unwrap();
    b.create(&map(json!({"user_id": 1})), hours(1))
        .await
        .unwrap();
    let second = names(&only_document(&db).await);
    assert_ne!(first, second, "the same name under another key ring");
    db.cleanup().await;
}

/// A session whose values are stored as earlier versions stored them.
async fn legacy_session(db: &TestDb, store: &MongoSessionStore) -> String {
    let id = store
        .create(&map(json!({"seed": 0})), hours(1))
        .await
        .unwrap();
    let stored_id = store.stored_id(&id);
    let mut data = Document::new();
    for (key, value) in [("a", json!(1)), ("b", json!("two")), ("c", json!([3]))] {
        let field = legacy_field_name(key);
        data.insert(&field, legacy_ciphertext(&stored_id, &field, key, &value));
    }
    db.collection("sessions")
        .update_one(doc! {"_id": &stored_id}, doc! {"$set": {"data": data}})
        .await
        .unwrap();
    id
}

async fn legacy_names_left(db: &TestDb) -> usize {
    let legacy: Vec<String> = ["a", "b", "c"].map(legacy_field_name).to_vec();
    db.documents("sessions")
        .await
        .iter()
        .flat_map(|d| {
            d.get_document("data")
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        })
        .filter(|name| legacy.contains(name))
        .count()
}

#[tokio::test]
async fn sessions_with_legacy_field_names_keep_working_and_rewrap_moves_them() {
    let db = TestDb::new("legacynames").await;
    let store = builder(&db).encryption(ring1()).build().await.unwrap();
    let written = legacy_session(&db, &store).await;
    let idle = legacy_session(&db, &store).await;
    let loaded = store.load(&written).await.unwrap().unwrap();
    assert_eq!(loaded.data, map(json!({"a": 1, "b": "two", "c": [3]})));

    // A change to one legacy key and the removal of another: no key is
    // left twice, none comes back, and the untouched one moves too.
    let mut tracked = loaded.into_map();
    tracked.insert("a".into(), json!(10));
    tracked.remove("b");
    store.save(&written, &tracked, hours(1)).await.unwrap();
    let reloaded = store.load(&written).await.unwrap().unwrap();
    assert_eq!(reloaded.data, map(json!({"a": 10, "c": [3]})));
    let document = db
        .collection("sessions")
        .find_one(doc! {"_id": store.stored_id(&written)})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(document.get_document("data").unwrap().len(), 2);
    assert_eq!(legacy_names_left(&db).await, 3, "only the idle session's");

    let report = store.rewrap().await.unwrap();
    assert_eq!((report.examined, report.rewrapped), (2, 1));
    assert_eq!(legacy_names_left(&db).await, 0);
    assert_eq!(
        store.load(&idle).await.unwrap().unwrap().data,
        map(json!({"a": 1, "b": "two", "c": [3]}))
    );
    assert_eq!(store.rewrap().await.unwrap().rewrapped, 0);
    db.cleanup().await;
}

// Decisions about what the frameworks see.

#[tokio::test]
async fn the_tracking_entry_is_the_only_addition_a_framework_sees() {
    use tower_sessions_core::SessionStore as Tower;
    let db = TestDb::new("tracking").await;
    let store = builder(&db).build().await.unwrap();
    let mut record = tower_sessions_core::session::Record {
        id: tower_sessions_core::session::Id::default(),
        data: HashMap::from([("a".to_string(), json!(1))]),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    Tower::create(&store, &mut record).await.unwrap();
    let loaded = Tower::load(&store, &record.id).await.unwrap().unwrap();
    let mut keys: Vec<&String> = loaded.data.keys().collect();
    keys.sort();
    assert_eq!(keys, [&TRACKING_KEY.to_string(), &"a".to_string()]);
    db.cleanup().await;
}
