//! The store's core guarantees, on a real server (`MONGODB_URI`).

use std::time::{Duration, Instant, SystemTime};

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, DateTime, Document};
use mongodb_session_store::{session::SaveOutcome, AutoRemove, IndexRepair, MongoSessionStore};
use serde_json::{json, Map, Value};
use testkit::TestDb;

fn map(value: Value) -> Map<String, Value> {
    value.as_object().expect("an object").clone()
}

fn in_an_hour() -> Option<SystemTime> {
    Some(SystemTime::now() + Duration::from_secs(3600))
}

async fn store(db: &TestDb) -> MongoSessionStore {
    MongoSessionStore::from_client(db.client.clone())
        .database(&db.name)
        .build()
        .await
        .expect("building the store")
}

async fn raw(db: &TestDb, store: &MongoSessionStore, id: &str) -> Option<Document> {
    db.collection("sessions")
        .find_one(doc! {"_id": store.stored_id(id)})
        .await
        .unwrap()
}

#[tokio::test]
async fn forced_id_collision_never_overwrites_the_existing_session() {
    let db = TestDb::new("collision").await;
    let store = store(&db).await;
    let first = store
        .create_with_ids(
            || "taken".into(),
            &map(json!({"owner": "alice"})),
            in_an_hour(),
        )
        .await
        .unwrap();
    assert_eq!(first, "taken");

    let mut ids = ["taken", "taken", "free"].into_iter();
    let second = store
        .create_with_ids(
            || ids.next().unwrap().into(),
            &map(json!({"owner": "mallory"})),
            in_an_hour(),
        )
        .await
        .unwrap();

    assert_eq!(second, "free");
    let alice = store.load("taken").await.unwrap().unwrap();
    assert_eq!(alice.data, map(json!({"owner": "alice"})));
    let mallory = store.load("free").await.unwrap().unwrap();
    assert_eq!(mallory.data, map(json!({"owner": "mallory"})));
    db.cleanup().await;
}

#[tokio::test]
async fn collisions_every_time_end_in_a_typed_error() {
    let db = TestDb::new("exhausted").await;
    let store = store(&db).await;
    store
        .create_with_ids(|| "x".into(), &Map::new(), in_an_hour())
        .await
        .unwrap();
    let err = store
        .create_with_ids(|| "x".into(), &Map::new(), in_an_hour())
        .await
        .unwrap_err();
    assert!(err.is_id_exhausted(), "{err}");
    db.cleanup().await;
}

#[tokio::test]
async fn a_save_after_delete_does_not_resurrect() {
    let db = TestDb::new("resurrect").await;
    let store = store(&db).await;
    let id = store
        .create(&map(json!({"n": 1})), in_an_hour())
        .await
        .unwrap();
    let mut loaded = store.load(&id).await.unwrap().unwrap().into_map();

    assert!(store.delete(&id).await.unwrap());
    loaded.insert("n".into(), json!(2));
    let outcome = store.save(&id, &loaded, in_an_hour()).await.unwrap();

    assert_eq!(outcome, SaveOutcome::Missing);
    assert!(raw(&db, &store, &id).await.is_none());
    // An untracked save (the whole session) does not resurrect either.
    let outcome = store
        .save(&id, &map(json!({"n": 3})), in_an_hour())
        .await
        .unwrap();
    assert_eq!(outcome, SaveOutcome::Missing);
    assert!(raw(&db, &store, &id).await.is_none());
    db.cleanup().await;
}

#[tokio::test]
async fn an_expired_but_unreaped_session_is_not_returned_nor_revived() {
    let db = TestDb::new("expired").await;
    let store = store(&db).await;
    let past = Some(SystemTime::now() - Duration::from_secs(1));
    let id = store.create(&map(json!({"n": 1})), past).await.unwrap();

    assert!(
        raw(&db, &store, &id).await.is_some(),
        "the TTL monitor has not run yet"
    );
    assert!(store.load(&id).await.unwrap().is_none());
    let outcome = store
        .save(&id, &map(json!({"n": 2})), in_an_hour())
        .await
        .unwrap();
    assert_eq!(outcome, SaveOutcome::Missing);
    assert_eq!(store.delete_expired().await.unwrap(), 1);
    assert!(raw(&db, &store, &id).await.is_none());
    db.cleanup().await;
}

async fn ttl_index(db: &TestDb) -> Option<Document> {
    let indexes: Vec<Document> = db
        .database()
        .run_cursor_command(doc! {"listIndexes": "sessions"})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    indexes
        .into_iter()
        .find(|ix| ix.get_document("key").unwrap() == &doc! {"expires": 1})
}

#[tokio::test]
async fn the_ttl_index_exists_with_expire_after_zero_and_building_is_idempotent() {
    let db = TestDb::new("ttlindex").await;
    store(&db).await;
    store(&db).await;
    let index = ttl_index(&db).await.expect("a TTL index on expires");
    let seconds = index.get("expireAfterSeconds").unwrap();
    assert_eq!(
        seconds.as_i64().or(seconds.as_i32().map(i64::from)),
        Some(0)
    );
    db.cleanup().await;
}

#[tokio::test]
async fn an_equal_index_under_another_name_is_accepted() {
    let db = TestDb::new("equalindex").await;
    let model = mongodb::IndexModel::builder()
        .keys(doc! {"expires": 1})
        .options(
            mongodb::options::IndexOptions::builder()
                .name("ops_made_this".to_string())
                .expire_after(Duration::ZERO)
                .build(),
        )
        .build();
    db.collection("sessions").create_index(model).await.unwrap();
    store(&db).await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_conflicting_index_is_an_error_that_names_the_fix() {
    let db = TestDb::new("conflict").await;
    let model = mongodb::IndexModel::builder()
        .keys(doc! {"expires": 1})
        .options(
            mongodb::options::IndexOptions::builder()
                .expire_after(Duration::from_secs(3600))
                .build(),
        )
        .build();
    db.collection("sessions").create_index(model).await.unwrap();
    // By default another delay is changed in place (tests/it/indexes.rs);
    // told to change nothing, build explains.
    let err = MongoSessionStore::from_client(db.client.clone())
        .database(&db.name)
        .index_repair(IndexRepair::Refuse)
        .build()
        .await
        .unwrap_err();
    assert!(err.is_index_conflict(), "{err}");
    let message = err.to_string();
    assert!(message.contains("dropIndex(\"expires_1\")"), "{message}");
    assert!(message.contains("expireAfterSeconds: 3600"), "{message}");
    assert!(message.contains("AutoRemove::Disabled"), "{message}");
    // Disabled leaves indexes alone and builds.
    MongoSessionStore::from_client(db.client.clone())
        .database(&db.name)
        .auto_remove(AutoRemove::Disabled)
        .build()
        .await
        .unwrap();
    db.cleanup().await;
}

#[tokio::test]
async fn a_corrupted_document_gives_a_decode_error_naming_the_field() {
    let db = TestDb::new("corrupt").await;
    let store = store(&db).await;
    let sessions = db.collection("sessions");
    let expires = DateTime::from_system_time(in_an_hour().unwrap());
    let cases = [
        (
            "bad-data",
            doc! {"_id": store.stored_id("bad-data"), "data": "not a document", "expires": expires},
            "data",
        ),
        (
            "no-data",
            doc! {"_id": store.stored_id("no-data"), "expires": expires},
            "data",
        ),
        (
            "bad-created",
            doc! {"_id": store.stored_id("bad-created"), "data": {}, "expires": expires, "createdAt": 5},
            "createdAt",
        ),
        (
            "bad-key",
            doc! {"_id": store.stored_id("bad-key"), "data": {"x%zz": 1}, "expires": expires},
            "data.x%zz",
        ),
    ];
    for (id, document, field) in cases {
        sessions.insert_one(document).await.unwrap();
        let err = store.load(id).await.unwrap_err();
        assert!(err.is_decode(), "{id}: {err}");
        assert_eq!(err.decode_field(), Some(field), "{id}: {err}");
    }
    db.cleanup().await;
}

#[tokio::test]
async fn a_session_survives_a_new_store_instance() {
    let db = TestDb::new("survives").await;
    let id = store(&db)
        .await
        .create(
            &map(json!({"cart": [1, 2], "user": {"name": "ada"}})),
            in_an_hour(),
        )
        .await
        .unwrap();
    let other = MongoSessionStore::from_uri(db.uri()).build().await.unwrap();
    let loaded = other.load(&id).await.unwrap().unwrap();
    assert_eq!(
        loaded.data,
        map(json!({"cart": [1, 2], "user": {"name": "ada"}}))
    );
    other.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn the_document_has_the_documented_schema() {
    let db = TestDb::new("schema").await;
    let store = store(&db).await;
    let id = store
        .create(
            &map(json!({"n": 1, "a.b": {"$c": 2}, "": true})),
            in_an_hour(),
        )
        .await
        .unwrap();
    let document = raw(&db, &store, &id).await.unwrap();
    assert_eq!(
        document.get_document("data").unwrap(),
        &doc! {"%": true, "a%2Eb": {"%24c": 2}, "n": 1}
    );
    for field in ["expires", "createdAt", "lastModified"] {
        assert!(
            matches!(document.get(field), Some(Bson::DateTime(_))),
            "{field}"
        );
    }
    db.cleanup().await;
}

#[tokio::test]
async fn saves_write_only_changed_keys_so_concurrent_changes_merge() {
    let db = TestDb::new("merge").await;
    let store = store(&db).await;
    let id = store
        .create(&map(json!({"a": 0, "b": 0, "gone": 1})), in_an_hour())
        .await
        .unwrap();
    let mut first = store.load(&id).await.unwrap().unwrap().into_map();
    let mut second = store.load(&id).await.unwrap().unwrap().into_map();

    first.insert("a".into(), json!(1));
    second.insert("b".into(), json!(2));
    second.remove("gone");
    assert_eq!(
        store.save(&id, &first, in_an_hour()).await.unwrap(),
        SaveOutcome::Updated
    );
    assert_eq!(
        store.save(&id, &second, in_an_hour()).await.unwrap(),
        SaveOutcome::Updated
    );

    let merged = store.load(&id).await.unwrap().unwrap();
    assert_eq!(merged.data, map(json!({"a": 1, "b": 2})));
    db.cleanup().await;
}

#[tokio::test]
async fn an_unchanged_save_only_moves_the_expiry() {
    let db = TestDb::new("touch").await;
    let store = store(&db).await;
    let id = store
        .create(&map(json!({"n": 1})), in_an_hour())
        .await
        .unwrap();
    let loaded = store.load(&id).await.unwrap().unwrap().into_map();
    db.collection("sessions")
        .update_one(
            doc! {"_id": store.stored_id(&id)},
            doc! {"$set": {"data.n": 99}},
        )
        .await
        .unwrap();

    let later = in_an_hour().unwrap() + Duration::from_secs(60);
    assert_eq!(
        store.save(&id, &loaded, Some(later)).await.unwrap(),
        SaveOutcome::Touched
    );

    let document = raw(&db, &store, &id).await.unwrap();
    assert_eq!(
        document.get_document("data").unwrap(),
        &doc! {"n": 99},
        "data untouched"
    );
    let expires = document.get_datetime("expires").unwrap();
    assert_eq!(
        expires.timestamp_millis(),
        DateTime::from_system_time(later).timestamp_millis()
    );
    db.cleanup().await;
}

#[tokio::test]
async fn building_against_an_unreachable_server_fails_within_the_bound() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bound = Duration::from_millis(1500);
    let started = Instant::now();
    let err = MongoSessionStore::from_uri(format!("mongodb://127.0.0.1:{port}/app"))
        .connect_timeout(bound)
        .build()
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(err.is_unreachable(), "{err}");
    assert!(err.to_string().contains("not reachable"), "{err}");
    assert!(took < bound + Duration::from_secs(2), "took {took:?}");
}

#[tokio::test]
async fn no_database_anywhere_is_a_config_error_not_a_silent_no_op() {
    let err = MongoSessionStore::from_uri("mongodb://127.0.0.1:1/")
        .build()
        .await
        .unwrap_err();
    assert!(err.is_config(), "{err}");
    assert!(err.to_string().contains(".database("), "{err}");
}

#[tokio::test]
async fn invalid_options_are_rejected_at_build() {
    let db = TestDb::new("invalid").await;
    let with = |b: mongodb_session_store::StoreBuilder| b.database(&db.name);
    let cases = [
        with(MongoSessionStore::from_client(db.client.clone())).collection(""),
        with(MongoSessionStore::from_client(db.client.clone())).collection("a$b"),
        with(MongoSessionStore::from_client(db.client.clone())).idle_timeout(Duration::ZERO),
        with(MongoSessionStore::from_client(db.client.clone()))
            .idle_timeout(Duration::from_secs(60))
            .touch_after(Duration::from_secs(60)),
        MongoSessionStore::from_client(db.client.clone()).database("bad.name"),
    ];
    for builder in cases {
        let err = builder.build().await.unwrap_err();
        assert!(err.is_config(), "{err}");
    }
    db.cleanup().await;
}

#[tokio::test]
async fn close_leaves_a_user_supplied_client_usable() {
    let db = TestDb::new("close").await;
    let store = store(&db).await;
    store.close().await;
    db.database().run_command(doc! {"ping": 1}).await.unwrap();
    db.cleanup().await;
}

#[tokio::test]
async fn hostile_ids_are_no_session_without_error() {
    let db = TestDb::new("hostile").await;
    let store = store(&db).await;
    for id in ["", "\0", &"x".repeat(10_000), "{\"$gt\": \"\"}"] {
        assert!(store.load(id).await.unwrap().is_none());
        assert!(!store.delete(id).await.unwrap());
    }
    db.cleanup().await;
}

#[tokio::test]
async fn an_oversized_session_is_a_typed_error_and_nothing_is_lost() {
    let db = TestDb::new("oversized").await;
    let store = MongoSessionStore::from_client(db.client.clone())
        .database(&db.name)
        .max_session_bytes(1000)
        .build()
        .await
        .unwrap();
    let big = json!({"blob": "x".repeat(2000)});
    let err = store
        .create(&map(big.clone()), in_an_hour())
        .await
        .unwrap_err();
    assert!(err.is_encode(), "{err}");
    assert!(err.to_string().contains("max_session_bytes"), "{err}");

    let id = store
        .create(&map(json!({"small": 1})), in_an_hour())
        .await
        .unwrap();
    let mut loaded = store.load(&id).await.unwrap().unwrap().into_map();
    loaded.insert("blob".into(), big["blob"].clone());
    assert!(store
        .save(&id, &loaded, in_an_hour())
        .await
        .unwrap_err()
        .is_encode());
    let kept = store.load(&id).await.unwrap().unwrap();
    assert_eq!(
        kept.data,
        map(json!({"small": 1})),
        "the stored session is unchanged"
    );
    db.cleanup().await;
}
