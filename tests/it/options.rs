//! One test per option, event and operation, on a real server.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use futures_util::TryStreamExt;
use mongodb::{
    bson::{doc, Bson},
    options::{Acknowledgment, ReadConcern, SelectionCriteria, WriteConcern},
};
use mongodb_session_store::{
    codec::BoxError, codec::SessionCodec, events::EventKind, session::SaveOutcome, AutoRemove,
    Codec, MongoSessionStore, StoreBuilder,
};
use serde_json::{json, Map, Value};
use testkit::{CommandLog, TestDb};

use crate::common::{
    a_second_ago, ago, builder, count, data, db_and_store, expire_after_seconds as seconds, hours,
    index_on, indexes, loaded, map, millis, new_session, only_document, set_fields, store, Build,
    MINUTE,
};

#[tokio::test]
async fn ttl_is_the_fallback_expiry() {
    let db = TestDb::new("ttl").await;
    let two_hours = builder(&db).idle_timeout(Duration::from_secs(7200));
    let store = two_hours.built().await;
    let expected = millis(SystemTime::now() + Duration::from_secs(7200));
    let id = new_session(&store, json!({"a": 1}), None).await;
    let expires = store.load(&id).await.unwrap().unwrap().expires;
    assert!((millis(expires) - expected).abs() < 5_000, "{expires:?}");
    // The framework's own expiry wins when there is one.
    let id = store.create(&Map::new(), hours(1)).await.unwrap();
    let expires = store.load(&id).await.unwrap().unwrap().expires;
    assert!((millis(expires) - millis(hours(1).unwrap())).abs() < 5_000);
}

#[tokio::test]
async fn auto_remove_disabled_creates_no_index() {
    let db = TestDb::new("disabled").await;
    let store = builder(&db).auto_remove(AutoRemove::Disabled).built().await;
    store.create(&Map::new(), hours(1)).await.unwrap();
    let all = indexes(&db).await;
    let names: Vec<&str> = all.iter().map(|ix| ix.get_str("name").unwrap()).collect();
    assert_eq!(names, ["_id_"]);
}

/// Waits (up to five seconds) until `sessions` holds `n` documents;
/// whether it came to that.
async fn until_count(db: &TestDb, n: u64) -> bool {
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if count(db).await == n {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn auto_remove_interval_deletes_expired_sessions_until_closed() {
    let db = TestDb::new("interval").await;
    let period = Duration::from_millis(200);
    let interval = builder(&db).auto_remove(AutoRemove::Interval(period));
    let store = interval.built().await;
    let ttl_indexes = indexes(&db).await;
    assert!(
        ttl_indexes.iter().all(|ix| seconds(ix).is_none()),
        "no TTL index"
    );
    store.create(&Map::new(), a_second_ago()).await.unwrap();
    let live = store.create(&Map::new(), hours(1)).await.unwrap();

    let removed = until_count(&db, 1).await;
    assert!(
        removed,
        "the expired session was removed by the interval task"
    );
    assert!(store.load(&live).await.unwrap().is_some());

    store.close().await;
    store.create(&Map::new(), a_second_ago()).await.unwrap();
    tokio::time::sleep(period * 4).await;
    assert_eq!(count(&db).await, 2, "stopped on close");
}

#[tokio::test]
async fn touch_after_skips_writes_inside_the_window() {
    let db = TestDb::new("touchafter").await;
    let windowed = || builder(&db).touch_after(MINUTE);
    let store = windowed().built().await;
    let id = new_session(&store, json!({"a": 1}), hours(1)).await;
    let before = only_document(&db).await;

    // Store-level touch and an unchanged save, both inside the window.
    assert!(!store.touch(&id, hours(2)).await.unwrap());
    let tracked = loaded(&store, &id).await;
    let unchanged = store.save(&id, &tracked, hours(2)).await.unwrap();
    assert_eq!(unchanged, SaveOutcome::Unchanged);
    assert_eq!(only_document(&db).await, before);

    // Past the window (the last write moved back two minutes), it touches.
    let two_minutes_ago = ago(2 * MINUTE);
    set_fields(&db, &store, &id, doc! {"lastModified": two_minutes_ago}).await;
    // A new instance: this one remembers the write it made itself.
    let store = windowed().built().await;
    assert!(store.touch(&id, hours(2)).await.unwrap());
    let after = only_document(&db).await;
    let data = (after.get("data"), before.get("data"));
    assert_eq!(data.0, data.1, "touch never rewrites data");
    assert!(after.get_datetime("expires").unwrap() > before.get_datetime("expires").unwrap());
}

#[tokio::test]
async fn a_touch_inside_touch_after_of_a_loaded_session_sends_no_command() {
    let db = TestDb::new("touchhint").await;
    let (client, log) = CommandLog::client().await;
    let logged = MongoSessionStore::from_client(client).database(&db.name);
    let store = logged.touch_after(MINUTE).built().await;
    let id = new_session(&store, json!({"a": 1}), hours(1)).await;
    let other = builder(&db).built().await;
    assert!(other.load(&id).await.unwrap().is_some());
    log.clear();
    for _ in 0..10 {
        store.load(&id).await.unwrap();
        assert!(!store.touch(&id, hours(2)).await.unwrap());
    }
    assert_eq!(log.writes(), 0, "no update was sent");
    assert_eq!(log.commands("find").len(), 10);
}

#[tokio::test]
async fn touching_a_missing_session_is_not_an_error() {
    let (db, store) = db_and_store("touchmissing").await;
    assert!(!store.touch("never-existed", None).await.unwrap());
    let id = store.create(&Map::new(), hours(1)).await.unwrap();
    store.delete(&id).await.unwrap();
    assert!(!store.touch(&id, None).await.unwrap());
    assert_eq!(count(&db).await, 0);
}

#[tokio::test]
async fn json_string_codec_stores_connect_mongo_strings() {
    let db = TestDb::new("jsoncodec").await;
    let store = builder(&db).codec(Codec::JsonString).built().await;
    let id = new_session(&store, json!({"n": 1, "s": "x"}), hours(1)).await;
    let document = only_document(&db).await;
    assert_eq!(document.get_str("data").unwrap(), r#"{"n":1,"s":"x"}"#);

    let mut tracked = loaded(&store, &id).await;
    tracked.insert("n".into(), json!(2));
    let saved = store.save(&id, &tracked, hours(1)).await.unwrap();
    assert_eq!(saved, SaveOutcome::Updated);
    assert_eq!(data(&store, &id).await, map(json!({"n": 2, "s": "x"})));
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
    let reversed = Codec::Custom(Arc::new(Reversed));
    let store = builder(&db).codec(reversed).built().await;
    let id = new_session(&store, json!({"k": "v"}), hours(1)).await;
    let document = only_document(&db).await;
    assert_eq!(document.get_str("data").unwrap(), r#"}"v":"k"{"#);
    assert_eq!(data(&store, &id).await, map(json!({"k": "v"})));

    set_fields(&db, &store, &id, doc! {"data": 5}).await;
    let err = store.load(&id).await.unwrap_err();
    assert!(
        err.is_decode() && err.decode_field() == Some("data"),
        "{err}"
    );
}

#[tokio::test]
async fn timestamps_off_writes_neither_unless_touch_after_needs_last_modified() {
    let db = TestDb::new("timestamps").await;
    let untimed = builder(&db).timestamps(false).built().await;
    untimed.create(&Map::new(), hours(1)).await.unwrap();
    let document = only_document(&db).await;
    assert!(!document.contains_key("createdAt") && !document.contains_key("lastModified"));
    let sessions = db.collection("sessions");
    sessions.delete_many(doc! {}).await.unwrap();

    let windowed = builder(&db).timestamps(false).touch_after(MINUTE);
    let store = windowed.built().await;
    store.create(&Map::new(), hours(1)).await.unwrap();
    let document = only_document(&db).await;
    assert!(!document.contains_key("createdAt") && document.contains_key("lastModified"));
}

#[tokio::test]
async fn timestamp_fields_can_be_renamed_like_connect_mongo_6() {
    let db = TestDb::new("tsnames").await;
    let renamed = builder(&db).timestamp_fields("createdAt", "updatedAt");
    let store = renamed.built().await;
    store.create(&Map::new(), hours(1)).await.unwrap();
    let document = only_document(&db).await;
    assert!(document.contains_key("updatedAt") && !document.contains_key("lastModified"));
}

#[tokio::test]
async fn transform_id_changes_the_stored_id_only() {
    let db = TestDb::new("transform").await;
    let prefixed = builder(&db).transform_id(|id| format!("app1:{id}"));
    let store = prefixed.built().await;
    let id = new_session(&store, json!({"a": 1}), hours(1)).await;
    let stored_id = only_document(&db).await.get_str("_id").unwrap().to_string();
    assert_eq!(stored_id, format!("app1:{id}"));
    assert!(store.load(&id).await.unwrap().is_some());
    assert!(store.delete(&id).await.unwrap());
}

#[tokio::test]
async fn custom_id_data_and_expires_fields_with_a_unique_id_index() {
    let db = TestDb::new("fields").await;
    let fields = builder(&db).id_field("sid").data_field("session");
    let store = fields.expires_field("expiresAt").built().await;
    let a1 = map(json!({"a": 1}));
    let one = store.create_with_ids(|| "one".into(), &a1, hours(1)).await;
    one.unwrap();
    let document = only_document(&db).await;
    assert_eq!(document.get_str("sid").unwrap(), store.stored_id("one"));
    assert!(document.get_document("session").is_ok() && document.get_datetime("expiresAt").is_ok());

    // Collision-safe on the custom id field too.
    let mut ids = ["one", "two"].into_iter();
    let a2 = map(json!({"a": 2}));
    let second = store.create_with_ids(|| ids.next().unwrap().into(), &a2, hours(1));
    assert_eq!(second.await.unwrap(), "two");
    assert_eq!(data(&store, "one").await, a1);
    let sid = index_on(&db, "sid").await;
    assert!(sid.is_some_and(|ix| ix.get_bool("unique").unwrap_or(false)));
    assert!(index_on(&db, "expiresAt").await.is_some());
}

#[tokio::test]
async fn a_custom_id_field_without_index_and_without_permission_to_create_is_refused() {
    let db = TestDb::new("noidindex").await;
    let sid = builder(&db).id_field("sid");
    let err = sid.auto_remove(AutoRemove::Disabled).refused().await;
    assert!(
        err.is_config() && err.to_string().contains("unique: true"),
        "{err}"
    );
}

#[tokio::test]
async fn expire_after_sets_the_ttl_index_delay() {
    let db = TestDb::new("expireafter").await;
    let delayed = builder(&db).expire_after(Duration::from_secs(3600));
    delayed.built().await;
    let ttl = indexes(&db).await.into_iter().find_map(|ix| seconds(&ix));
    assert_eq!(ttl, Some(3600));
}

#[tokio::test]
async fn the_cosmos_db_profile_puts_the_ttl_on_ts_with_the_session_ttl() {
    let db = TestDb::new("cosmos").await;
    let cosmos = builder(&db).cosmos_db();
    let store = cosmos.idle_timeout(Duration::from_secs(1800)).built().await;
    let ts = index_on(&db, "_ts").await.expect("a TTL index on _ts");
    assert_eq!(seconds(&ts), Some(1800));
    // Expiry is still checked on load through `expires`.
    let id = store.create(&Map::new(), a_second_ago()).await.unwrap();
    assert!(store.load(&id).await.unwrap().is_none());
}

/// Whether each write a store sends on a client it opens from the test
/// server's URI (no `retryWrites` in it) carries a transaction number, the
/// mark of a retryable write; `profile` is applied to the builder.
async fn writes_are_retryable(db: &TestDb, profile: fn(StoreBuilder) -> StoreBuilder) -> Vec<bool> {
    let (options, log) = CommandLog::options(&db.uri(), None).await;
    assert_eq!(options.retry_writes, None, "the URI leaves it to the store");
    let store = profile(MongoSessionStore::from_client_options(options));
    let store = store.built().await;
    let id = new_session(&store, json!({"a": 1}), hours(1)).await;
    let a2 = map(json!({"a": 2}));
    store.save(&id, &a2, hours(1)).await.unwrap();
    store.delete(&id).await.unwrap();
    store.close().await;
    let all = log.all().into_iter();
    let writes = all.filter(|(name, _)| ["insert", "update", "delete"].contains(&name.as_str()));
    let seen: Vec<bool> = writes
        .map(|(_, body)| body.contains_key("txnNumber"))
        .collect();
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
}

#[tokio::test]
async fn concerns_and_read_preference_apply_to_the_collection() {
    let db = TestDb::new("concerns").await;
    let default = store(&db).await;
    assert!(matches!(
        default.raw_collection().selection_criteria(),
        Some(SelectionCriteria::ReadPreference(
            mongodb::options::ReadPreference::Primary
        ))
    ));
    let majority = WriteConcern::builder().w(Acknowledgment::Majority).build();
    let concerned = builder(&db).write_concern(majority.clone());
    let store = concerned
        .read_concern(ReadConcern::majority())
        .built()
        .await;
    assert_eq!(store.raw_collection().write_concern(), Some(&majority));
    assert_eq!(
        store.raw_collection().read_concern(),
        Some(&ReadConcern::majority())
    );
    let id = new_session(&store, json!({"a": 1}), hours(1)).await;
    assert!(store.load(&id).await.unwrap().is_some());
}

#[tokio::test]
async fn client_options_build_a_store_that_owns_its_client() {
    let db = TestDb::new("clientoptions").await;
    let mut options = mongodb::options::ClientOptions::parse(db.uri())
        .await
        .unwrap();
    options.app_name = Some("my-service".into());
    let store = MongoSessionStore::from_client_options(options)
        .built()
        .await;
    let id = new_session(&store, json!({"a": 1}), hours(1)).await;
    assert!(store.load(&id).await.unwrap().is_some());
    store.close().await;
}

#[tokio::test]
async fn every_event_is_delivered_with_a_redacted_id() {
    let (_db, store) = db_and_store("events").await;
    let mut events = store.subscribe();

    let id = new_session(&store, json!({"a": 1}), hours(1)).await;
    let mut tracked = loaded(&store, &id).await;
    tracked.insert("a".into(), json!(2));
    store.save(&id, &tracked, hours(1)).await.unwrap();
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
}

#[tokio::test]
async fn all_streams_live_sessions_and_length_counts_them() {
    let (_db, store) = db_and_store("all").await;
    for n in 0..5 {
        new_session(&store, json!({"n": n}), hours(1)).await;
    }
    new_session(&store, json!({"n": -1}), a_second_ago()).await;

    let all = store.all().await.unwrap();
    let n = all.map_ok(|s| s.data["n"].as_i64().unwrap());
    let mut seen: Vec<i64> = n.try_collect().await.unwrap();
    seen.sort_unstable();
    assert_eq!(seen, [0, 1, 2, 3, 4]);
    assert_eq!(store.length().await.unwrap(), 5);
}

#[tokio::test]
async fn clear_deletes_every_session_and_keeps_the_ttl_index() {
    let (db, store) = db_and_store("clear").await;
    for _ in 0..3 {
        store.create(&Map::new(), hours(1)).await.unwrap();
    }
    assert_eq!(store.clear().await.unwrap(), 3);
    assert_eq!(store.length().await.unwrap(), 0);
    let kept = indexes(&db).await;
    assert!(
        kept.iter().any(|ix| seconds(ix) == Some(0)),
        "TTL index kept"
    );
}

#[tokio::test]
async fn close_stops_tasks_and_leaves_a_user_supplied_client_usable() {
    let db = TestDb::new("close").await;
    let interval = AutoRemove::Interval(Duration::from_millis(100));
    let store = builder(&db).auto_remove(interval).built().await;
    store.close().await;
    db.database().run_command(doc! {"ping": 1}).await.unwrap();
    let sessions = db.collection("sessions");
    sessions.insert_one(doc! {"_id": "x"}).await.unwrap();
}
