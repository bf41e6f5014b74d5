//! The store's core guarantees, on a real server (`MONGODB_URI`).

use std::time::{Duration, Instant};

use mongodb::bson::{doc, Bson, DateTime};
use mongodb_session_store::{session::SaveOutcome, AutoRemove, IndexRepair, MongoSessionStore};
use serde_json::{json, Map};
use testkit::TestDb;

use crate::common::{
    a_second_ago, builder, data, db_and_store, expire_after_seconds, in_an_hour, index_on, loaded,
    map, new_session, set_fields, store, stored, Build,
};

#[tokio::test]
async fn forced_id_collision_never_overwrites_the_existing_session() {
    let (_db, store) = db_and_store("collision").await;
    let alice = map(json!({"owner": "alice"}));
    let first = store.create_with_ids(|| "taken".into(), &alice, in_an_hour());
    assert_eq!(first.await.unwrap(), "taken");

    let mut ids = ["taken", "taken", "free"].into_iter();
    let mallory = map(json!({"owner": "mallory"}));
    let second = store.create_with_ids(|| ids.next().unwrap().into(), &mallory, in_an_hour());

    assert_eq!(second.await.unwrap(), "free");
    assert_eq!(data(&store, "taken").await, alice);
    assert_eq!(data(&store, "free").await, mallory);
}

#[tokio::test]
async fn collisions_every_time_end_in_a_typed_error() {
    let (_db, store) = db_and_store("exhausted").await;
    let x = || "x".into();
    store
        .create_with_ids(x, &Map::new(), in_an_hour())
        .await
        .unwrap();
    let err = store
        .create_with_ids(x, &Map::new(), in_an_hour())
        .await
        .unwrap_err();
    assert!(err.is_id_exhausted(), "{err}");
}

#[tokio::test]
async fn a_save_after_delete_does_not_resurrect() {
    let (db, store) = db_and_store("resurrect").await;
    let id = new_session(&store, json!({"n": 1}), in_an_hour()).await;
    let mut tracked = loaded(&store, &id).await;

    assert!(store.delete(&id).await.unwrap());
    tracked.insert("n".into(), json!(2));
    let outcome = store.save(&id, &tracked, in_an_hour()).await.unwrap();

    assert_eq!(outcome, SaveOutcome::Missing);
    assert!(stored(&db, &store, &id).await.is_none());
    // An untracked save (the whole session) does not resurrect either.
    let whole = map(json!({"n": 3}));
    let outcome = store.save(&id, &whole, in_an_hour()).await.unwrap();
    assert_eq!(outcome, SaveOutcome::Missing);
    assert!(stored(&db, &store, &id).await.is_none());
}

#[tokio::test]
async fn an_expired_but_unreaped_session_is_not_returned_nor_revived() {
    let (db, store) = db_and_store("expired").await;
    let id = new_session(&store, json!({"n": 1}), a_second_ago()).await;

    let unreaped = stored(&db, &store, &id).await;
    assert!(unreaped.is_some(), "the TTL monitor has not run yet");
    assert!(store.load(&id).await.unwrap().is_none());
    let revived = store.save(&id, &map(json!({"n": 2})), in_an_hour()).await;
    assert_eq!(revived.unwrap(), SaveOutcome::Missing);
    assert_eq!(store.delete_expired().await.unwrap(), 1);
    assert!(stored(&db, &store, &id).await.is_none());
}

#[tokio::test]
async fn the_ttl_index_exists_with_expire_after_zero_and_building_is_idempotent() {
    let db = TestDb::new("ttlindex").await;
    store(&db).await;
    store(&db).await;
    let index = index_on(&db, "expires")
        .await
        .expect("a TTL index on expires");
    assert_eq!(expire_after_seconds(&index), Some(0));
}

/// A TTL index on `expires` with `delay`, made by hand (as ops would).
async fn ttl_index_by_hand(db: &TestDb, name: Option<&str>, delay: Duration) {
    let options = mongodb::options::IndexOptions::builder()
        .name(name.map(str::to_string))
        .expire_after(delay)
        .build();
    let model = mongodb::IndexModel::builder()
        .keys(doc! {"expires": 1})
        .options(options)
        .build();
    db.collection("sessions").create_index(model).await.unwrap();
}

#[tokio::test]
async fn an_equal_index_under_another_name_is_accepted() {
    let db = TestDb::new("equalindex").await;
    ttl_index_by_hand(&db, Some("ops_made_this"), Duration::ZERO).await;
    store(&db).await;
}

#[tokio::test]
async fn a_conflicting_index_is_an_error_that_names_the_fix() {
    let db = TestDb::new("conflict").await;
    ttl_index_by_hand(&db, None, Duration::from_secs(3600)).await;
    // By default another delay is changed in place (tests/it/indexes.rs);
    // told to change nothing, build explains.
    let refuse = builder(&db).index_repair(IndexRepair::Refuse);
    let err = refuse.refused().await;
    assert!(err.is_index_conflict(), "{err}");
    let message = err.to_string();
    assert!(message.contains("dropIndex(\"expires_1\")"), "{message}");
    assert!(message.contains("expireAfterSeconds: 3600"), "{message}");
    assert!(message.contains("AutoRemove::Disabled"), "{message}");
    // Disabled leaves indexes alone and builds.
    builder(&db).auto_remove(AutoRemove::Disabled).built().await;
}

#[tokio::test]
async fn a_corrupted_document_gives_a_decode_error_naming_the_field() {
    let (db, store) = db_and_store("corrupt").await;
    let sessions = db.collection("sessions");
    let expires = DateTime::from_system_time(in_an_hour().unwrap());
    let id = |id: &str| store.stored_id(id);
    let cases = [
        (
            "bad-data",
            doc! {"_id": id("bad-data"), "data": "not a document", "expires": expires},
            "data",
        ),
        (
            "no-data",
            doc! {"_id": id("no-data"), "expires": expires},
            "data",
        ),
        (
            "bad-created",
            doc! {"_id": id("bad-created"), "data": {}, "expires": expires, "createdAt": 5},
            "createdAt",
        ),
        (
            "bad-key",
            doc! {"_id": id("bad-key"), "data": {"x%zz": 1}, "expires": expires},
            "data.x%zz",
        ),
    ];
    for (id, document, field) in cases {
        sessions.insert_one(document).await.unwrap();
        let err = store.load(id).await.unwrap_err();
        assert!(err.is_decode(), "{id}: {err}");
        assert_eq!(err.decode_field(), Some(field), "{id}: {err}");
    }
}

#[tokio::test]
async fn a_session_survives_a_new_store_instance() {
    let db = TestDb::new("survives").await;
    let values = map(json!({"cart": [1, 2], "user": {"name": "ada"}}));
    let id = store(&db).await.create(&values, in_an_hour()).await;
    let other = MongoSessionStore::from_uri(db.uri()).built().await;
    assert_eq!(data(&other, &id.unwrap()).await, values);
    other.close().await;
}

#[tokio::test]
async fn the_document_has_the_documented_schema() {
    let (db, store) = db_and_store("schema").await;
    let values = map(json!({"n": 1, "a.b": {"$c": 2}, "": true}));
    let id = store.create(&values, in_an_hour()).await.unwrap();
    let document = stored(&db, &store, &id).await.unwrap();
    assert_eq!(
        document.get_document("data").unwrap(),
        &doc! {"%": true, "a%2Eb": {"%24c": 2}, "n": 1}
    );
    for field in ["expires", "createdAt", "lastModified"] {
        let date = document.get(field);
        assert!(matches!(date, Some(Bson::DateTime(_))), "{field}");
    }
}

#[tokio::test]
async fn saves_write_only_changed_keys_so_concurrent_changes_merge() {
    let (_db, store) = db_and_store("merge").await;
    let values = map(json!({"a": 0, "b": 0, "gone": 1}));
    let id = store.create(&values, in_an_hour()).await.unwrap();
    let mut first = loaded(&store, &id).await;
    let mut second = loaded(&store, &id).await;

    first.insert("a".into(), json!(1));
    second.insert("b".into(), json!(2));
    second.remove("gone");
    for tracked in [first, second] {
        let outcome = store.save(&id, &tracked, in_an_hour()).await;
        assert_eq!(outcome.unwrap(), SaveOutcome::Updated);
    }

    assert_eq!(data(&store, &id).await, map(json!({"a": 1, "b": 2})));
}

#[tokio::test]
async fn an_unchanged_save_only_moves_the_expiry() {
    let (db, store) = db_and_store("touch").await;
    let id = new_session(&store, json!({"n": 1}), in_an_hour()).await;
    let tracked = loaded(&store, &id).await;
    set_fields(&db, &store, &id, doc! {"data.n": 99}).await;

    let later = in_an_hour().unwrap() + Duration::from_secs(60);
    let touched = store.save(&id, &tracked, Some(later)).await;
    assert_eq!(touched.unwrap(), SaveOutcome::Touched);

    let document = stored(&db, &store, &id).await.unwrap();
    let untouched = document.get_document("data").unwrap();
    assert_eq!(untouched, &doc! {"n": 99}, "data untouched");
    let expires = document.get_datetime("expires").unwrap();
    assert_eq!(
        expires.timestamp_millis(),
        DateTime::from_system_time(later).timestamp_millis()
    );
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
    let unreachable = MongoSessionStore::from_uri(format!("mongodb://127.0.0.1:{port}/app"));
    let err = unreachable.connect_timeout(bound).refused().await;
    let took = started.elapsed();
    assert!(err.is_unreachable(), "{err}");
    assert!(err.to_string().contains("not reachable"), "{err}");
    assert!(took < bound + Duration::from_secs(2), "took {took:?}");
}

#[tokio::test]
async fn no_database_anywhere_is_a_config_error_not_a_silent_no_op() {
    let nowhere = MongoSessionStore::from_uri("mongodb://127.0.0.1:1/");
    let err = nowhere.refused().await;
    assert!(err.is_config(), "{err}");
    assert!(err.to_string().contains(".database("), "{err}");
}

#[tokio::test]
async fn invalid_options_are_rejected_at_build() {
    let db = TestDb::new("invalid").await;
    let cases = [
        builder(&db).collection(""),
        builder(&db).collection("a$b"),
        builder(&db).idle_timeout(Duration::ZERO),
        builder(&db)
            .idle_timeout(Duration::from_secs(60))
            .touch_after(Duration::from_secs(60)),
        MongoSessionStore::from_client(db.client.clone()).database("bad.name"),
    ];
    for builder in cases {
        let err = builder.refused().await;
        assert!(err.is_config(), "{err}");
    }
}

#[tokio::test]
async fn close_leaves_a_user_supplied_client_usable() {
    let db = TestDb::new("close").await;
    store(&db).await.close().await;
    db.database().run_command(doc! {"ping": 1}).await.unwrap();
}

#[tokio::test]
async fn hostile_ids_are_no_session_without_error() {
    let (_db, store) = db_and_store("hostile").await;
    for id in ["", "\0", &"x".repeat(10_000), "{\"$gt\": \"\"}"] {
        assert!(store.load(id).await.unwrap().is_none());
        assert!(!store.delete(id).await.unwrap());
    }
}

#[tokio::test]
async fn an_oversized_session_is_a_typed_error_and_nothing_is_lost() {
    let db = TestDb::new("oversized").await;
    let store = builder(&db).max_session_bytes(1000).built().await;
    let big = json!({"blob": "x".repeat(2000)});
    let err = store
        .create(&map(big.clone()), in_an_hour())
        .await
        .unwrap_err();
    assert!(err.is_encode(), "{err}");
    assert!(err.to_string().contains("max_session_bytes"), "{err}");

    let id = new_session(&store, json!({"small": 1}), in_an_hour()).await;
    let mut tracked = loaded(&store, &id).await;
    tracked.insert("blob".into(), big["blob"].clone());
    let refused = store.save(&id, &tracked, in_an_hour()).await;
    assert!(refused.unwrap_err().is_encode());
    let kept = data(&store, &id).await;
    assert_eq!(
        kept,
        map(json!({"small": 1})),
        "the stored session is unchanged"
    );
}
