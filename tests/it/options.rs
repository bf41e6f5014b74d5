//! One test per option, event and operation, on a real server.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use futures_util::TryStreamExt;
use mongodb::{
    bson::{doc, Bson, DateTime, Document},
    options::{Acknowledgment, ReadConcern, SelectionCriteria, WriteConcern},
};
use mongodb_session_store::{
    codec::BoxError, codec::SessionCodec, events::EventKind, session::SaveOutcome, AutoRemove,
    Codec, MongoSessionStore, StoreBuilder,
};
use serde_json::{json, Map, Value};
use testkit::TestDb;

fn map(value: Value) -> Map<String, Value> {
    value.as_object().expect("an object").clone()
}

fn hours(n: u64) -> Option<SystemTime> {
    Some(SystemTime::now() + Duration::from_secs(n * 3600))
}

fn builder(db: &TestDb) -> StoreBuilder {
    MongoSessionStore::from_client(db.client.clone()).database(&db.name)
}

async fn only_document(db: &TestDb) -> Document {
    let mut all = db.documents("sessions").await;
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

/// The collection's indexes (none if it does not exist yet).
async fn indexes(db: &TestDb) -> Vec<Document> {
    match db
        .database()
        .run_cursor_command(doc! {"listIndexes": "sessions"})
        .await
    {
        Ok(cursor) => cursor.try_collect().await.unwrap(),
        Err(_) => Vec::new(),
    }
}

fn seconds(index: &Document) -> Option<i64> {
    let value = index.get("expireAfterSeconds")?;
    value.as_i64().or(value.as_i32().map(i64::from))
}

fn millis(time: SystemTime) -> i64 {
    DateTime::from_system_time(time).timestamp_millis()
}

#[tokio::test]
async fn ttl_is_the_fallback_expiry() {
    let db = TestDb::new("ttl").await;
    let store = builder(&db)
        .idle_timeout(Duration::from_secs(7200))
        .build()
        .await
        .unwrap();
    let expected = millis(SystemTime::now() + Duration::from_secs(7200));
    let id = store.create(&map(json!({"a": 1})), None).await.unwrap();
    let expires = store.load(&id).await.unwrap().unwrap().expires;
    assert!((millis(expires) - expected).abs() < 5_000, "{expires:?}");
    // The framework's own expiry wins when there is one.
    let id = store.create(&Map::new(), hours(1)).await.unwrap();
    let expires = store.load(&id).await.unwrap().unwrap().expires;
    assert!((millis(expires) - millis(hours(1).unwrap())).abs() < 5_000);
    db.cleanup().await;
}

#[tokio::test]
async fn auto_remove_disabled_creates_no_index() {
    let db = TestDb::new("disabled").await;
    let store = builder(&db)
        .auto_remove(AutoRemove::Disabled)
        .build()
        .await
        .unwrap();
    store.create(&Map::new(), hours(1)).await.unwrap();
    let names: Vec<String> = indexes(&db)
        .await
        .iter()
        .map(|ix| ix.get_str("name").unwrap().to_string())
        .collect();
    assert_eq!(names, ["_id_"]);
    db.cleanup().await;
}

#[tokio::test]
async fn auto_remove_interval_deletes_expired_sessions_until_closed() {
    let db = TestDb::new("interval").await;
    let period = Duration::from_millis(200);
    let store = builder(&db)
        .auto_remove(AutoRemove::Interval(period))
        .build()
        .await
        .unwrap();
    assert!(
        indexes(&db).await.iter().all(|ix| seconds(ix).is_none()),
        "no TTL index"
    );
    let past = Some(SystemTime::now() - Duration::from_secs(1));
    store.create(&Map::new(), past).await.unwrap();
    let live = store.create(&Map::new(), hours(1)).await.unwrap();

    let sessions = db.collection("sessions");
    let mut removed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if sessions.count_documents(doc! {}).await.unwrap() == 1 {
            removed = true;
            break;
        }
    }
    assert!(
        removed,
        "the expired session was removed by the interval task"
    );
    assert!(store.load(&live).await.unwrap().is_some());

    store.close().await;
    store.create(&Map::new(), past).await.unwrap();
    tokio::time::sleep(period * 4).await;
    assert_eq!(
        sessions.count_documents(doc! {}).await.unwrap(),
        2,
        "stopped on close"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn touch_after_skips_writes_inside_the_window() {
    let db = TestDb::new("touchafter").await;
    let store = builder(&db)
        .touch_after(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let id = store.create(&map(json!({"a": 1})), hours(1)).await.unwrap();
    let before = only_document(&db).await;

    // Store-level touch and an unchanged save, both inside the window.
    assert!(!store.touch(&id, hours(2)).await.unwrap());
    let loaded = store.load(&id).await.unwrap().unwrap().into_map();
    assert_eq!(
        store.save(&id, &loaded, hours(2)).await.unwrap(),
        SaveOutcome::Unchanged
    );
    assert_eq!(only_document(&db).await, before);

    // Past the window (the last write moved back two minutes), it touches.
    let two_minutes_ago = DateTime::from_system_time(SystemTime::now() - Duration::from_secs(120));
    db.collection("sessions")
        .update_one(
            doc! {"_id": store.stored_id(&id)},
            doc! {"$set": {"lastModified": two_minutes_ago}},
        )
        .await
        .unwrap();
    // A new instance: this one remembers the write it made itself.
    let store = builder(&db)
        .touch_after(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    assert!(store.touch(&id, hours(2)).await.unwrap());
    let after = only_document(&db).await;
    assert_eq!(
        after.get("data"),
        before.get("data"),
        "touch never rewrites data"
    );
    assert!(after.get_datetime("expires").unwrap() > before.get_datetime("expires").unwrap());
    db.cleanup().await;
}

#[tokio::test]
async fn a_touch_inside_touch_after_of_a_loaded_session_sends_no_command() {
    let db = TestDb::new("touchhint").await;
    let (client, log) = testkit::CommandLog::client().await;
    let store = MongoSessionStore::from_client(client)
        .database(&db.name)
        .touch_after(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let id = store.create(&map(json!({"a": 1})), hours(1)).await.unwrap();
    let other = builder(&db).build().await.unwrap();
    assert!(other.load(&id).await.unwrap().is_some());
    log.clear();
    for _ in 0..10 {
        store.load(&id).await.unwrap();
        assert!(!store.touch(&id, hours(2)).await.unwrap());
    }
    assert_eq!(log.writes(), 0, "no update was sent");
    assert_eq!(log.commands("find").len(), 10);
    db.cleanup().await;
}

#[tokio::test]
async fn touching_a_missing_session_is_not_an_error() {
    let db = TestDb::new("touchmissing").await;
    let store = builder(&db).build().await.unwrap();
    assert!(!store.touch("never-existed", None).await.unwrap());
    let id = store.create(&Map::new(), hours(1)).await.unwrap();
    store.delete(&id).await.unwrap();
    assert!(!store.touch(&id, None).await.unwrap());
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
async fn json_string_codec_stores_connect_mongo_strings() {
    let db = TestDb::new("jsoncodec").await;
    let store = builder(&db).codec(Codec::JsonString).build().await.unwrap();
    let id = store
        .create(&map(json!({"n": 1, "s": "x"})), hours(1))
        .await
        .unwrap();
    assert_eq!(
        only_document(&db).await.get_str("data").unwrap(),
        r#"{"n":1,"s":"x"}"#
    );

    let mut loaded = store.load(&id).await.unwrap().unwrap().into_map();
    loaded.insert("n".into(), json!(2));
    assert_eq!(
        store.save(&id, &loaded, hours(1)).await.unwrap(),
        SaveOutcome::Updated
    );
    assert_eq!(
        store.load(&id).await.unwrap().unwrap().data,
        map(json!({"n": 2, "s": "x"}))
    );
    db.cleanup().await;
}

/// Stores the values as a JSON string reversed: opaque, and easy to check.
struct Reversed;

impl SessionCodec for Reversed {
    fn encode(&self, values: &Map<String, Value>) -> Result<Bson, BoxError> {
        Ok(Bson::String(
            serde_json::to_string(values)?.chars().rev().collect(),
        ))
    }

    fn decode(&self, stored: &Bson) -> Result<Map<String, Value>, BoxError> {
        let text = stored.as_str().ok_or("expected a string")?;
        Ok(serde_json::from_str(
            &text.chars().rev().collect::<String>(),
        )?)
    }
}

#[tokio::test]
async fn a_custom_codec_is_used_both_ways_and_its_errors_are_decode_errors() {
    let db = TestDb::new("customcodec").await;
    let store = builder(&db)
        .codec(Codec::Custom(Arc::new(Reversed)))
        .build()
        .await
        .unwrap();
    let id = store
        .create(&map(json!({"k": "v"})), hours(1))
        .await
        .unwrap();
    assert_eq!(
        only_document(&db).await.get_str("data").unwrap(),
        r#"}"v":"k"{"#
    );
    assert_eq!(
        store.load(&id).await.unwrap().unwrap().data,
        map(json!({"k": "v"}))
    );

    db.collection("sessions")
        .update_one(
            doc! {"_id": store.stored_id(&id)},
            doc! {"$set": {"data": 5}},
        )
        .await
        .unwrap();
    let err = store.load(&id).await.unwrap_err();
    assert!(
        err.is_decode() && err.decode_field() == Some("data"),
        "{err}"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn timestamps_off_writes_neither_unless_touch_after_needs_last_modified() {
    let db = TestDb::new("timestamps").await;
    builder(&db)
        .timestamps(false)
        .build()
        .await
        .unwrap()
        .create(&Map::new(), hours(1))
        .await
        .unwrap();
    let document = only_document(&db).await;
    assert!(!document.contains_key("createdAt") && !document.contains_key("lastModified"));
    db.collection("sessions")
        .delete_many(doc! {})
        .await
        .unwrap();

    let store = builder(&db)
        .timestamps(false)
        .touch_after(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    store.create(&Map::new(), hours(1)).await.unwrap();
    let document = only_document(&db).await;
    assert!(!document.contains_key("createdAt") && document.contains_key("lastModified"));
    db.cleanup().await;
}

#[tokio::test]
async fn timestamp_fields_can_be_renamed_like_connect_mongo_6() {
    let db = TestDb::new("tsnames").await;
    let store = builder(&db)
        .timestamp_fields("createdAt", "updatedAt")
        .build()
        .await
        .unwrap();
    store.create(&Map::new(), hours(1)).await.unwrap();
    let document = only_document(&db).await;
    assert!(document.contains_key("updatedAt") && !document.contains_key("lastModified"));
    db.cleanup().await;
}

#[tokio::test]
async fn transform_id_changes_the_stored_id_only() {
    let db = TestDb::new("transform").await;
    let store = builder(&db)
        .transform_id(|id| format!("app1:{id}"))
        .build()
        .await
        .unwrap();
    let id = store.create(&map(json!({"a": 1})), hours(1)).await.unwrap();
    assert_eq!(
        only_document(&db).await.get_str("_id").unwrap(),
        format!("app1:{id}")
    );
    assert!(store.load(&id).await.unwrap().is_some());
    assert!(store.delete(&id).await.unwrap());
    db.cleanup().await;
}

#[tokio::test]
async fn custom_id_data_and_expires_fields_with_a_unique_id_index() {
    let db = TestDb::new("fields").await;
    let store = builder(&db)
        .id_field("sid")
        .data_field("session")
        .expires_field("expiresAt")
        .build()
        .await
        .unwrap();
    store
        .create_with_ids(|| "one".into(), &map(json!({"a": 1})), hours(1))
        .await
        .unwrap();
    let document = only_document(&db).await;
    assert_eq!(document.get_str("sid").unwrap(), store.stored_id("one"));
    assert!(document.get_document("session").is_ok() && document.get_datetime("expiresAt").is_ok());

    // Collision-safe on the custom id field too.
    let mut ids = ["one", "two"].into_iter();
    let second = store
        .create_with_ids(
            || ids.next().unwrap().into(),
            &map(json!({"a": 2})),
            hours(1),
        )
        .await
        .unwrap();
    assert_eq!(second, "two");
    assert_eq!(
        store.load("one").await.unwrap().unwrap().data,
        map(json!({"a": 1}))
    );
    let all = indexes(&db).await;
    assert!(all
        .iter()
        .any(|ix| ix.get_document("key").unwrap() == &doc! {"sid": 1}
            && ix.get_bool("unique").unwrap_or(false)));
    assert!(all
        .iter()
        .any(|ix| ix.get_document("key").unwrap() == &doc! {"expiresAt": 1}));
    db.cleanup().await;
}

#[tokio::test]
async fn a_custom_id_field_without_index_and_without_permission_to_create_is_refused() {
    let db = TestDb::new("noidindex").await;
    let err = builder(&db)
        .id_field("sid")
        .auto_remove(AutoRemove::Disabled)
        .build()
        .await
        .unwrap_err();
    assert!(
        err.is_config() && err.to_string().contains("unique: true"),
        "{err}"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn expire_after_sets_the_ttl_index_delay() {
    let db = TestDb::new("expireafter").await;
    builder(&db)
        .expire_after(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    let ttl = indexes(&db).await.into_iter().find_map(|ix| seconds(&ix));
    assert_eq!(ttl, Some(3600));
    db.cleanup().await;
}

#[tokio::test]
async fn the_cosmos_db_profile_puts_the_ttl_on_ts_with_the_session_ttl() {
    let db = TestDb::new("cosmos").await;
    let store = builder(&db)
        .cosmos_db()
        .idle_timeout(Duration::from_secs(1800))
        .build()
        .await
        .unwrap();
    let ts = indexes(&db)
        .await
        .into_iter()
        .find(|ix| ix.get_document("key").unwrap() == &doc! {"_ts": 1})
        .expect("a TTL index on _ts");
    assert_eq!(seconds(&ts), Some(1800));
    // Expiry is still checked on load through `expires`.
    let id = store
        .create(
            &Map::new(),
            Some(SystemTime::now() - Duration::from_secs(1)),
        )
        .await
        .unwrap();
    assert!(store.load(&id).await.unwrap().is_none());
    db.cleanup().await;
}

/// Whether each write a store sends on a client it opens from the test
/// server's URI (no `retryWrites` in it) carries a transaction number, the
/// mark of a retryable write; `profile` is applied to the builder.
async fn writes_are_retryable(db: &TestDb, profile: fn(StoreBuilder) -> StoreBuilder) -> Vec<bool> {
    use mongodb::{
        event::{command::CommandEvent, EventHandler},
        options::ClientOptions,
    };
    let retryable = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut options = ClientOptions::parse(db.uri()).await.unwrap();
    assert_eq!(options.retry_writes, None, "the URI leaves it to the store");
    let sink = retryable.clone();
    options.command_event_handler = Some(EventHandler::callback(move |event| {
        if let CommandEvent::Started(started) = event {
            if ["insert", "update", "delete"].contains(&started.command_name.as_str()) {
                let carries = started.command.contains_key("txnNumber");
                sink.lock().unwrap().push(carries);
            }
        }
    }));
    let store = profile(MongoSessionStore::from_client_options(options))
        .build()
        .await
        .unwrap();
    let id = store.create(&map(json!({"a": 1})), hours(1)).await.unwrap();
    store
        .save(&id, &map(json!({"a": 2})), hours(1))
        .await
        .unwrap();
    store.delete(&id).await.unwrap();
    store.close().await;
    let seen = retryable.lock().unwrap().clone();
    assert!(seen.len() >= 3, "{seen:?}");
    seen
}

#[tokio::test]
async fn the_cosmos_db_and_documentdb_profiles_turn_retryable_writes_off_on_their_own_client() {
    let db = TestDb::new("cosmosretry").await;
    // The test server supports retryable writes: without a profile the
    // driver's default asks for them.
    let plain = writes_are_retryable(&db, |b| b).await;
    assert!(plain.iter().all(|r| *r), "{plain:?}");
    for profile in [StoreBuilder::cosmos_db, StoreBuilder::document_db] {
        let tuned = writes_are_retryable(&db, profile).await;
        assert!(tuned.iter().all(|r| !r), "{tuned:?}");
    }
    db.cleanup().await;
}

#[tokio::test]
async fn concerns_and_read_preference_apply_to_the_collection() {
    let db = TestDb::new("concerns").await;
    let default = builder(&db).build().await.unwrap();
    assert!(matches!(
        default.raw_collection().selection_criteria(),
        Some(SelectionCriteria::ReadPreference(
            mongodb::options::ReadPreference::Primary
        ))
    ));
    let majority = WriteConcern::builder().w(Acknowledgment::Majority).build();
    let store = builder(&db)
        .write_concern(majority.clone())
        .read_concern(ReadConcern::majority())
        .build()
        .await
        .unwrap();
    assert_eq!(store.raw_collection().write_concern(), Some(&majority));
    assert_eq!(
        store.raw_collection().read_concern(),
        Some(&ReadConcern::majority())
    );
    let id = store.create(&map(json!({"a": 1})), hours(1)).await.unwrap();
    assert!(store.load(&id).await.unwrap().is_some());
    db.cleanup().await;
}

#[tokio::test]
async fn client_options_build_a_store_that_owns_its_client() {
    let db = TestDb::new("clientoptions").await;
    let mut options = mongodb::options::ClientOptions::parse(db.uri())
        .await
        .unwrap();
    options.app_name = Some("my-service".into());
    let store = MongoSessionStore::from_client_options(options)
        .build()
        .await
        .unwrap();
    let id = store.create(&map(json!({"a": 1})), hours(1)).await.unwrap();
    assert!(store.load(&id).await.unwrap().is_some());
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn every_event_is_delivered_with_a_redacted_id() {
    let db = TestDb::new("events").await;
    let store = builder(&db).build().await.unwrap();
    let mut events = store.subscribe();

    let id = store.create(&map(json!({"a": 1})), hours(1)).await.unwrap();
    let mut loaded = store.load(&id).await.unwrap().unwrap().into_map();
    loaded.insert("a".into(), json!(2));
    store.save(&id, &loaded, hours(1)).await.unwrap();
    store.touch(&id, hours(2)).await.unwrap();
    store.delete(&id).await.unwrap();
    store.delete(&id).await.unwrap(); // nothing to destroy: no event

    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        assert_eq!(event.id.expose(), id);
        assert!(!format!("{event:?}").contains(&id));
        seen.push(event.kind);
    }
    use EventKind::*;
    assert_eq!(seen, [Create, Set, Update, Set, Touch, Destroy]);
    db.cleanup().await;
}

#[tokio::test]
async fn all_streams_live_sessions_and_length_counts_them() {
    let db = TestDb::new("all").await;
    let store = builder(&db).build().await.unwrap();
    for n in 0..5 {
        store.create(&map(json!({"n": n})), hours(1)).await.unwrap();
    }
    store
        .create(
            &map(json!({"n": -1})),
            Some(SystemTime::now() - Duration::from_secs(1)),
        )
        .await
        .unwrap();

    let mut seen: Vec<i64> = store
        .all()
        .await
        .unwrap()
        .map_ok(|s| s.data["n"].as_i64().unwrap())
        .try_collect()
        .await
        .unwrap();
    seen.sort_unstable();
    assert_eq!(seen, [0, 1, 2, 3, 4]);
    assert_eq!(store.length().await.unwrap(), 5);
    db.cleanup().await;
}

#[tokio::test]
async fn clear_deletes_every_session_and_keeps_the_ttl_index() {
    let db = TestDb::new("clear").await;
    let store = builder(&db).build().await.unwrap();
    for _ in 0..3 {
        store.create(&Map::new(), hours(1)).await.unwrap();
    }
    assert_eq!(store.clear().await.unwrap(), 3);
    assert_eq!(store.length().await.unwrap(), 0);
    assert!(
        indexes(&db).await.iter().any(|ix| seconds(ix) == Some(0)),
        "TTL index kept"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn close_stops_tasks_and_leaves_a_user_supplied_client_usable() {
    let db = TestDb::new("close").await;
    let store = builder(&db)
        .auto_remove(AutoRemove::Interval(Duration::from_millis(100)))
        .build()
        .await
        .unwrap();
    store.close().await;
    db.database().run_command(doc! {"ping": 1}).await.unwrap();
    db.collection("sessions")
        .insert_one(doc! {"_id": "x"})
        .await
        .unwrap();
    db.cleanup().await;
}
