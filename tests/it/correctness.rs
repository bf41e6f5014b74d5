//! Issue 11: the paths where the store's promises did not hold — rotation,
//! ownership, regeneration, expiry bounds, configuration, size, field-name
//! secrecy — each driven through the public API or an adapter against a
//! real server.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use actix_session::storage::SessionStore as Actix;
use mongodb::bson::{doc, Bson, DateTime, Document};
use mongodb_session_store::{
    session::TRACKING_KEY, session::USER_KEY, Codec, ConflictPolicy, KeyRing, MongoSessionStore,
    StoreBuilder, UserInfo,
};
use serde_json::{json, Value};
use testkit::TestDb;
use tower_sessions_core::{session::Id, SessionStore as Tower};

use crate::common::{
    ago, builder, data, db_and_store, hours, loaded, map, new_session, only_document, record,
    set_fields, state, stored, tower_session, Build, ACTIX_TTL, HOUR,
};

fn ring1() -> KeyRing {
    KeyRing::new(1, [1u8; 32]).unwrap()
}

fn rotated() -> KeyRing {
    ring1().with_primary(2, [2u8; 32]).unwrap()
}

// 1. A removal after a key rotation.

const POLICIES: [ConflictPolicy; 2] = [ConflictPolicy::LastWriterWins, ConflictPolicy::Fail];

/// A session written under key 1, and a store with `policy` whose ring made
/// key 2 its primary since (on a database of its own for `test`).
async fn rotated_session(
    test: &str,
    policy: ConflictPolicy,
) -> (TestDb, MongoSessionStore, String) {
    let db = TestDb::new(test).await;
    let old = builder(&db).encryption(ring1()).built().await;
    let id = new_session(&old, json!({"a": 1, "b": 2, "c": 3}), hours(1)).await;
    let new = builder(&db).encryption(rotated()).on_conflict(policy);
    (db, new.built().await, id)
}

#[tokio::test]
async fn a_removal_after_a_key_rotation_is_saved_under_either_policy() {
    for policy in POLICIES {
        let (_db, store, id) = rotated_session("rotremove", policy).await;
        let mut tracked = loaded(&store, &id).await;
        tracked.remove("a");
        store.save(&id, &tracked, hours(1)).await.unwrap();
        let reloaded = data(&store, &id).await;
        assert_eq!(reloaded, map(json!({"b": 2, "c": 3})), "{policy:?}");
    }
}

#[tokio::test]
async fn after_a_rotation_a_save_neither_overwrites_nor_conflicts_on_keys_it_did_not_touch() {
    for policy in POLICIES {
        let (_db, store, id) = rotated_session("rotuntouched", policy).await;
        let mut mine = loaded(&store, &id).await;
        // Another request changes `b` after this one loaded.
        let mut theirs = loaded(&store, &id).await;
        theirs.insert("b".into(), json!("theirs"));
        store.save(&id, &theirs, hours(1)).await.unwrap();

        mine.insert("a".into(), json!("mine"));
        store.save(&id, &mine, hours(1)).await.unwrap();
        let expected = map(json!({"a": "mine", "b": "theirs", "c": 3}));
        assert_eq!(data(&store, &id).await, expected, "{policy:?}");
    }
}

// 2. The owner and whole-session saves.

fn ada() -> Value {
    UserInfo::new("ada").to_value()
}

async fn owned_session(store: &MongoSessionStore) -> String {
    let mut values = map(json!({"n": 1}));
    values.insert(USER_KEY.into(), ada());
    store.create(&values, hours(1)).await.unwrap()
}

async fn assert_no_owner(store: &MongoSessionStore, id: &str, how: &str) {
    let loaded = store.load(id).await.unwrap().expect(how);
    assert_eq!(loaded.user, None, "{how}: the reload still names the owner");
    assert!(
        store.user_sessions("ada", None).await.unwrap().is_empty(),
        "{how}: still listed as the owner's session"
    );
    let filter = doc! {"_id": store.stored_id(id)};
    let document = store.raw_collection().find_one(filter).await.unwrap();
    for field in ["user", "userAgent", "ip"] {
        let left = document.as_ref().unwrap().contains_key(field);
        assert!(!left, "{how}: {field} left behind");
    }
}

async fn ada_sessions(store: &MongoSessionStore) -> usize {
    store.user_sessions("ada", None).await.unwrap().len()
}

#[tokio::test]
async fn a_whole_session_save_without_the_owner_entry_clears_the_owner() {
    let (_db, store) = db_and_store("ownerclear").await;

    // The core API: a map that is the whole truth (no tracking entry).
    let id = owned_session(&store).await;
    assert_eq!(ada_sessions(&store).await, 1);
    let whole = map(json!({"n": 2}));
    store.save(&id, &whole, hours(1)).await.unwrap();
    assert_no_owner(&store, &id, "core save of a plain map").await;

    // tower-sessions: `Session::clear()` then save hands the store an empty record.
    let mut record = record(json!({ USER_KEY: ada() }));
    Tower::create(&store, &mut record).await.unwrap();
    let tower_id = record.id.to_string();
    assert_eq!(ada_sessions(&store).await, 1);
    record.data.clear();
    Tower::save(&store, &record).await.unwrap();
    assert_no_owner(&store, &tower_id, "tower clear + save").await;

    // actix-session: `Session::clear()` updates with an empty state.
    let owner = ada().to_string();
    let owned = state(&[(USER_KEY, owner.as_str())]);
    let key = Actix::save(&store, owned, &ACTIX_TTL).await.unwrap();
    let actix_id = key.as_ref().to_string();
    Actix::update(&store, key, HashMap::new(), &ACTIX_TTL)
        .await
        .unwrap();
    assert_no_owner(&store, &actix_id, "actix clear + update").await;
}

#[tokio::test]
async fn removing_the_owner_under_an_opaque_codec_clears_it() {
    let db = TestDb::new("owneropaque").await;
    let store = builder(&db).codec(Codec::JsonString).built().await;
    let id = owned_session(&store).await;
    let mut tracked = loaded(&store, &id).await;
    assert!(tracked.remove(USER_KEY).is_some());
    store.save(&id, &tracked, hours(1)).await.unwrap();
    assert_no_owner(&store, &id, "JsonString, owner removed").await;

    // And an unrelated change keeps the owner.
    let id = owned_session(&store).await;
    let mut tracked = loaded(&store, &id).await;
    tracked.insert("n".into(), json!(5));
    store.save(&id, &tracked, hours(1)).await.unwrap();
    let loaded = store.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.user.map(|u| u.user), Some("ada".to_string()));
    assert_eq!(loaded.data["n"], 5);
}

// 3. Dates at the edge of BSON's range.

#[tokio::test]
async fn extreme_stored_dates_never_panic_an_adapter() {
    let (db, store) = db_and_store("extremedates").await;
    let record = tower_session(&store, json!({"a": 1})).await;
    let id = record.id.to_string();
    let latest = doc! {
        "expires": DateTime::MAX,
        "createdAt": DateTime::MAX,
        "lastModified": DateTime::MAX,
        "user": "ada",
    };
    set_fields(&db, &store, &id, latest).await;
    let loaded = Tower::load(&store, &record.id).await.unwrap();
    let loaded = loaded.expect("a session that expires in the far future is live");
    assert_eq!(loaded.data["a"], 1);
    let year = loaded.expiry_date.year();
    assert!(year >= 9999, "clamped to the latest date");
    // The owner's listing and actix's load survive the same dates.
    store.user_sessions("ada", None).await.unwrap();
    let key = crate::common::key(&id);
    Actix::load(&store, &key).await.unwrap();

    // The earliest date: expired, so no session, and no panic.
    let earliest = doc! {"expires": DateTime::MIN, "createdAt": DateTime::MIN};
    set_fields(&db, &store, &id, earliest).await;
    assert!(Tower::load(&store, &record.id).await.unwrap().is_none());
}

// 4. Regeneration racing a logout.

/// A tower-sessions session of `user_id`, loaded by a request that will
/// regenerate it: its id, and the record the request holds.
async fn tower_loaded(
    store: &MongoSessionStore,
    user_id: i64,
) -> (Id, tower_sessions_core::session::Record) {
    let id = tower_session(store, json!({ "user_id": user_id })).await.id;
    let loaded = Tower::load(store, &id).await.unwrap().unwrap();
    (id, loaded)
}

#[tokio::test]
async fn tower_cycle_id_does_not_bring_back_a_session_logged_out_meanwhile() {
    let (db, store) = db_and_store("cycleraced").await;

    // The regenerating request loads; a logout elsewhere deletes the
    // session; then tower's cycle_id deletes the old id and creates anew.
    let (old, mut regenerated) = tower_loaded(&store, 7).await;
    Tower::delete(&store, &old).await.unwrap(); // the concurrent logout
    Tower::delete(&store, &old).await.unwrap(); // cycle_id's own delete finds nothing
    regenerated.id = Id::default();
    Tower::create(&store, &mut regenerated).await.unwrap();
    let brought_back = Tower::load(&store, &regenerated.id).await.unwrap();
    assert!(
        brought_back.is_none(),
        "the logged-out data reappeared under a new id"
    );
    assert!(db.documents("sessions").await.is_empty());

    // Without the race, regeneration keeps the data under the new id.
    let (old, mut regenerated) = tower_loaded(&store, 8).await;
    Tower::delete(&store, &old).await.unwrap();
    regenerated.id = Id::default();
    Tower::create(&store, &mut regenerated).await.unwrap();
    let moved = Tower::load(&store, &regenerated.id).await.unwrap().unwrap();
    assert_eq!(moved.data["user_id"], 8);
    assert!(Tower::load(&store, &old).await.unwrap().is_none());
}

#[tokio::test]
async fn actix_renew_does_not_bring_back_a_session_logged_out_meanwhile() {
    let (db, store) = db_and_store("renewraced").await;
    let seven = state(&[("user_id", "7")]);
    let key = Actix::save(&store, seven, &ACTIX_TTL).await.unwrap();
    let held = Actix::load(&store, &key).await.unwrap().unwrap();
    Actix::delete(&store, &key).await.unwrap(); // the concurrent logout
                                                // actix-session's renew: delete the old key, save the state anew.
    Actix::delete(&store, &key).await.unwrap();
    let renewed = Actix::save(&store, held, &ACTIX_TTL).await.unwrap();
    assert!(Actix::load(&store, &renewed).await.unwrap().is_none());
    assert!(db.documents("sessions").await.is_empty());

    // Without the race the state moves to the new key.
    let eight = state(&[("user_id", "8")]);
    let key = Actix::save(&store, eight, &ACTIX_TTL).await.unwrap();
    let held = Actix::load(&store, &key).await.unwrap().unwrap();
    Actix::delete(&store, &key).await.unwrap();
    let renewed = Actix::save(&store, held, &ACTIX_TTL).await.unwrap();
    let moved = Actix::load(&store, &renewed).await.unwrap().unwrap();
    assert_eq!(moved["user_id"], "8");
}

// 7. Rewrap past an undecodable document.

#[tokio::test]
async fn rewrap_skips_counts_and_reports_undecodable_documents_and_carries_on() {
    let db = TestDb::new("rewrapbad").await;
    let old = builder(&db).encryption(ring1()).built().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(new_session(&old, json!({"n": n}), hours(1)).await);
    }
    set_fields(&db, &old, &ids[2], doc! {"data": "garbage"}).await;
    let store = builder(&db).encryption(rotated()).built().await;
    let report = store.rewrap().await.unwrap();
    assert_eq!(report.examined, 5);
    assert_eq!(report.rewrapped, 4);
    assert_eq!(report.undecodable, 1);
    for (n, id) in ids.iter().enumerate().filter(|(n, _)| *n != 2) {
        assert_eq!(data(&store, id).await["n"], n);
    }
}

// 8. The stored expiry never passes the absolute lifetime.

async fn stored_expires(db: &TestDb) -> (i64, i64) {
    let document = only_document(db).await;
    let millis = |field| document.get_datetime(field).unwrap().timestamp_millis();
    (millis("expires"), millis("createdAt"))
}

#[tokio::test]
async fn no_write_moves_the_stored_expiry_past_max_lifetime() {
    let db = TestDb::new("lifetimecap").await;
    let store = builder(&db).absolute_timeout(HOUR).built().await;
    let id = new_session(&store, json!({"a": 1}), hours(1)).await;
    let cap = |created: i64| created + 3_600_000;

    assert!(store.touch(&id, hours(10)).await.unwrap());
    let (expires, created) = stored_expires(&db).await;
    assert!(
        expires <= cap(created),
        "touch: {expires} > {}",
        cap(created)
    );

    let whole = map(json!({"a": 2}));
    store.save(&id, &whole, hours(10)).await.unwrap();
    let (expires, created) = stored_expires(&db).await;
    assert!(expires <= cap(created), "save without a snapshot");
    assert_eq!(data(&store, &id).await["a"], 2);

    let mut tracked = loaded(&store, &id).await;
    tracked.insert("a".into(), json!(3));
    store.save(&id, &tracked, hours(10)).await.unwrap();
    let (expires, created) = stored_expires(&db).await;
    assert!(expires <= cap(created), "per-key save");
}

#[tokio::test]
async fn express_layout_saves_respect_max_lifetime() {
    use mongodb_session_store::express::ExpressLayout;
    let db = TestDb::new("lifetimeexpress").await;
    let express = builder(&db).express_layout(ExpressLayout::ConnectMongodbSession);
    let capped = express.absolute_timeout(HOUR);
    let store = capped.idle_timeout(10 * HOUR).built().await;
    let cookie = json!({"originalMaxAge": 36_000_000, "httpOnly": true, "path": "/"});
    let id = new_session(&store, json!({"cookie": cookie, "a": 1}), None).await;
    let (expires, created) = stored_expires(&db).await;
    assert!(expires <= created + 3_600_000, "create");
    let mut tracked = loaded(&store, &id).await;
    tracked.insert("a".into(), json!(2));
    store.save(&id, &tracked, None).await.unwrap();
    let (expires, created) = stored_expires(&db).await;
    assert!(expires <= created + 3_600_000, "save");
}

#[tokio::test]
async fn delete_expired_removes_sessions_past_max_lifetime() {
    let db = TestDb::new("lifetimepurge").await;
    let store = builder(&db).absolute_timeout(HOUR).built().await;
    let old = new_session(&store, json!({"a": 1}), hours(1)).await;
    let young = new_session(&store, json!({"b": 1}), hours(1)).await;
    set_fields(&db, &store, &old, doc! {"createdAt": ago(2 * HOUR)}).await;
    assert_eq!(store.delete_expired().await.unwrap(), 1);
    assert!(store.load(&young).await.unwrap().is_some());
    assert_eq!(db.documents("sessions").await.len(), 1);
}

// 9. Configuration that could only panic later is refused at build.

#[tokio::test]
async fn durations_too_large_to_compute_with_are_refused_at_build() {
    let db = TestDb::new("hugedurations").await;
    let strict = || builder(&db).on_conflict(ConflictPolicy::Fail);
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
            strict().operation_timeout(Duration::MAX),
        ),
        (
            "connect_timeout",
            builder(&db).connect_timeout(Duration::MAX),
        ),
    ];
    for (name, builder) in cases {
        let err = builder.refused().await;
        assert!(err.is_config(), "{name}: {err}");
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
}

#[tokio::test]
async fn the_largest_durations_accepted_work_end_to_end() {
    let db = TestDb::new("largestdurations").await;
    let century = Duration::from_secs(100 * 365 * 24 * 3600);
    let longest = builder(&db).idle_timeout(century).absolute_timeout(century);
    let strict = longest
        .operation_timeout(24 * HOUR)
        .on_conflict(ConflictPolicy::Fail);
    let store = strict.built().await;
    let id = new_session(&store, json!({"a": 1}), None).await;
    let mut tracked = loaded(&store, &id).await;
    tracked.insert("a".into(), json!(2));
    store.save(&id, &tracked, None).await.unwrap();
    store.touch(&id, None).await.unwrap();
    // A framework's expiry far in the future saturates instead of panicking.
    let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000 * 365 * 24 * 3600);
    let mut tracked = loaded(&store, &id).await;
    tracked.insert("a".into(), json!(3));
    store.save(&id, &tracked, Some(far)).await.unwrap();
    let actix_ttl = time::Duration::MAX;
    Actix::save(&store, HashMap::new(), &actix_ttl)
        .await
        .unwrap();
}

// 10. Size: what is stored, not its JSON.

#[tokio::test]
async fn the_size_limit_measures_the_stored_bson() {
    let db = TestDb::new("bsonsize").await;
    let store = builder(&db).max_session_bytes(1_000_000).built().await;
    // 200,000 zeros: 400 kB as JSON, about 2.4 MB as a BSON array.
    let zeros = json!({"zeros": vec![0; 200_000]});
    let err = store.create(&map(zeros), hours(1)).await.unwrap_err();
    assert!(err.is_encode(), "{err}");
    assert!(db.documents("sessions").await.is_empty());
}

#[tokio::test]
async fn a_document_that_would_pass_16_mib_is_an_encode_error_and_nothing_is_lost() {
    let db = TestDb::new("sixteenmib").await;
    let store = builder(&db).max_session_bytes(10 * 1024 * 1024);
    let store = store.built().await;
    let id = new_session(&store, json!({"n": 1}), hours(1)).await;
    let nine_mib = "x".repeat(9 * 1024 * 1024);
    // Two requests each add 9 MiB under their own key: each is under the
    // limit, together they pass MongoDB's 16 MiB document limit.
    let mut first = loaded(&store, &id).await;
    let mut second = first.clone();
    first.insert("a".into(), json!(nine_mib));
    second.insert("b".into(), json!(nine_mib));
    store.save(&id, &first, hours(1)).await.unwrap();
    let err = store.save(&id, &second, hours(1)).await.unwrap_err();
    assert!(err.is_encode(), "{err}");
    let kept = data(&store, &id).await;
    assert_eq!(kept["n"], 1);
    assert_eq!(kept["a"].as_str().map(str::len), Some(nine_mib.len()));
    assert!(!kept.contains_key("b"));

    // A limit that MongoDB could never store is refused at build.
    let too_big = builder(&db).max_session_bytes(17 * 1024 * 1024);
    let err = too_big.refused().await;
    assert!(err.is_config(), "{err}");
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

/// The field names under `data` of `document`.
fn data_names(document: &Document) -> Vec<String> {
    let data = document.get_document("data").unwrap();
    data.keys().cloned().collect()
}

#[tokio::test]
async fn encrypted_field_names_depend_on_the_key_ring_not_a_public_key() {
    let db = TestDb::new("fieldnames").await;
    let a = builder(&db).encryption(ring1()).built().await;
    let id = new_session(&a, json!({"user_id": 1}), hours(1)).await;
    let first = data_names(&only_document(&db).await);
    assert_ne!(first, vec![legacy_field_name("user_id")], "guessable name");
    a.delete(&id).await.unwrap();

    let other_ring = KeyRing::new(1, [9u8; 32]).unwrap();
    let b = builder(&db).encryption(other_ring).built().await;
    new_session(&b, json!({"user_id": 1}), hours(1)).await;
    let second = data_names(&only_document(&db).await);
    assert_ne!(first, second, "the same name under another key ring");
}

/// A session whose values are stored as earlier versions stored them.
async fn legacy_session(db: &TestDb, store: &MongoSessionStore) -> String {
    let id = new_session(store, json!({"seed": 0}), hours(1)).await;
    let stored_id = store.stored_id(&id);
    let mut legacy = Document::new();
    for (key, value) in [("a", json!(1)), ("b", json!("two")), ("c", json!([3]))] {
        let field = legacy_field_name(key);
        legacy.insert(&field, legacy_ciphertext(&stored_id, &field, key, &value));
    }
    set_fields(db, store, &id, doc! {"data": legacy}).await;
    id
}

async fn legacy_names_left(db: &TestDb) -> usize {
    let legacy: Vec<String> = ["a", "b", "c"].map(legacy_field_name).to_vec();
    let documents = db.documents("sessions").await;
    let names = documents.iter().flat_map(data_names);
    names.filter(|name| legacy.contains(name)).count()
}

#[tokio::test]
async fn sessions_with_legacy_field_names_keep_working_and_rewrap_moves_them() {
    let db = TestDb::new("legacynames").await;
    let store = builder(&db).encryption(ring1()).built().await;
    let written = legacy_session(&db, &store).await;
    let idle = legacy_session(&db, &store).await;
    let legacy_values = map(json!({"a": 1, "b": "two", "c": [3]}));
    let loaded = store.load(&written).await.unwrap().unwrap();
    assert_eq!(loaded.data, legacy_values);

    // A change to one legacy key and the removal of another: no key is
    // left twice, none comes back, and the untouched one moves too.
    let mut tracked = loaded.into_map();
    tracked.insert("a".into(), json!(10));
    tracked.remove("b");
    store.save(&written, &tracked, hours(1)).await.unwrap();
    let reloaded = data(&store, &written).await;
    assert_eq!(reloaded, map(json!({"a": 10, "c": [3]})));
    let document = stored(&db, &store, &written).await.unwrap();
    assert_eq!(document.get_document("data").unwrap().len(), 2);
    assert_eq!(legacy_names_left(&db).await, 3, "only the idle session's");

    let report = store.rewrap().await.unwrap();
    assert_eq!((report.examined, report.rewrapped), (2, 1));
    assert_eq!(legacy_names_left(&db).await, 0);
    assert_eq!(data(&store, &idle).await, legacy_values);
    assert_eq!(store.rewrap().await.unwrap().rewrapped, 0);
}

// Decisions about what the frameworks see.

#[tokio::test]
async fn the_tracking_entry_is_the_only_addition_a_framework_sees() {
    let (_db, store) = db_and_store("tracking").await;
    let created = tower_session(&store, json!({"a": 1})).await;
    let loaded = Tower::load(&store, &created.id).await.unwrap().unwrap();
    let mut keys: Vec<&String> = loaded.data.keys().collect();
    keys.sort();
    assert_eq!(keys, [&TRACKING_KEY.to_string(), &"a".to_string()]);
}
