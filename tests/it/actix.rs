//! The actix-session adapter, through actix-session's own trait.

use std::time::Duration;

use actix_session::storage::SessionStore;
use mongodb::bson::doc;
use mongodb_session_store::{session::TRACKING_KEY, MongoSessionStore};
use testkit::{CommandLog, TestDb};

use crate::common::{
    builder, count, db_and_store, instance, key, only_document, state, Build, ACTIX_TTL,
};

#[tokio::test]
async fn keys_come_from_a_csprng_with_256_bits() {
    let (_db, store) = db_and_store("actixkeys").await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        let saved = SessionStore::save(&store, state(&[("a", "1")]), &ACTIX_TTL);
        let key = saved.await.unwrap();
        let text: &str = key.as_ref();
        assert_eq!(text.len(), 43, "32 random bytes, base64url");
        let url_safe = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        assert!(text.bytes().all(url_safe));
        assert!(seen.insert(text.to_string()));
    }
}

#[tokio::test]
async fn state_round_trips_and_data_is_queryable_bson() {
    let (db, store) = db_and_store("actixstate").await;
    let saved = state(&[("user", r#""ada""#), ("cart", r#"{"items":[1,2]}"#)]);
    let key = SessionStore::save(&store, saved.clone(), &ACTIX_TTL).await;
    let mut loaded = SessionStore::load(&store, &key.unwrap()).await.unwrap();
    loaded.as_mut().unwrap().remove(TRACKING_KEY);
    assert_eq!(loaded.unwrap(), saved);
    let document = only_document(&db).await;
    let data = document.get_document("data").unwrap();
    assert_eq!(data.get_str("user").unwrap(), "ada");
}

#[tokio::test]
async fn update_of_a_deleted_session_does_not_resurrect_it() {
    let (db, store) = db_and_store("actixresurrect").await;
    let ada = state(&[("user", r#""ada""#)]);
    let key1 = SessionStore::save(&store, ada, &ACTIX_TTL).await.unwrap();
    let mut loaded = SessionStore::load(&store, &key1).await.unwrap().unwrap();
    SessionStore::delete(&store, &key1).await.unwrap();

    loaded.insert("user".into(), r#""mallory""#.into());
    let update = SessionStore::update(&store, key(key1.as_ref()), loaded, &ACTIX_TTL);
    let returned = update.await.unwrap();

    assert_eq!(returned.as_ref(), key1.as_ref(), "no new session was made");
    assert!(SessionStore::load(&store, &key1).await.unwrap().is_none());
    assert_eq!(count(&db).await, 0);
}

#[tokio::test]
async fn update_writes_only_changed_keys() {
    let (_db, store) = db_and_store("actixperkey").await;
    let zeros = state(&[("a", "0"), ("b", "0")]);
    let key1 = SessionStore::save(&store, zeros, &ACTIX_TTL).await.unwrap();
    let mut first = SessionStore::load(&store, &key1).await.unwrap().unwrap();
    let mut second = SessionStore::load(&store, &key1).await.unwrap().unwrap();
    first.insert("a".into(), "1".into());
    second.insert("b".into(), "2".into());
    for changed in [first, second] {
        let update = SessionStore::update(&store, key(key1.as_ref()), changed, &ACTIX_TTL);
        update.await.unwrap();
    }
    let mut merged = SessionStore::load(&store, &key1).await.unwrap().unwrap();
    merged.remove(TRACKING_KEY);
    assert_eq!(merged, state(&[("a", "1"), ("b", "2")]));
}

#[tokio::test]
async fn update_ttl_is_a_touch_that_honours_touch_after() {
    let db = TestDb::new("actixttl").await;
    let (client, log) = CommandLog::client().await;
    let on_log = || MongoSessionStore::from_client(client.clone()).database(&db.name);
    let store = on_log().touch_after(Duration::from_secs(60)).built().await;
    let one = state(&[("a", "1")]);
    let key1 = SessionStore::save(&store, one, &ACTIX_TTL).await.unwrap();
    let before = only_document(&db).await;
    log.clear();
    let five_hours = time::Duration::hours(5);
    for _ in 0..20 {
        SessionStore::load(&store, &key1).await.unwrap().unwrap();
        SessionStore::update_ttl(&store, &key1, &five_hours)
            .await
            .unwrap();
    }
    let writes = log.writes();
    assert_eq!(
        writes, 0,
        "inside touch_after nothing is written or even sent"
    );

    // Without touch_after every update_ttl moves the expiry, never the data.
    let sliding = on_log().built().await;
    SessionStore::update_ttl(&sliding, &key1, &five_hours)
        .await
        .unwrap();
    let after = only_document(&db).await;
    assert_eq!(after.get("data"), before.get("data"));
    assert!(after.get_datetime("expires").unwrap() > before.get_datetime("expires").unwrap());
    // A pipeline: the server applies the session's own idle window, if it
    // has one (a touch by id does not know it).
    let update = log.commands("update").pop().expect("one update");
    let statement = update.get_array("updates").unwrap()[0].as_document();
    let stages = statement.unwrap().get_array("u").unwrap().clone();
    assert_eq!(stages.len(), 1, "{stages:?}");
    let set = stages[0].as_document().unwrap().get_document("$set");
    let fields: Vec<_> = set.unwrap().keys().collect();
    assert_eq!(fields, ["expires", "lastModified", "format"]);
    // A touch of a missing session is not an error.
    let gone = key("gone");
    SessionStore::update_ttl(&sliding, &gone, &ACTIX_TTL)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_undecodable_session_loads_as_none() {
    let (db, store) = db_and_store("actixcorrupt").await;
    let one = state(&[("a", "1")]);
    let key1 = SessionStore::save(&store, one, &ACTIX_TTL).await.unwrap();
    let garbage = doc! {"$set": {"data": "garbage"}};
    let sessions = db.collection("sessions");
    sessions.update_one(doc! {}, garbage).await.unwrap();
    assert!(SessionStore::load(&store, &key1).await.unwrap().is_none());
}

/// An update parses only the values whose text changed (issue 25); what
/// it writes is still exactly what changed, merged with another instance's
/// change of a value this request left alone, with a removal and an
/// addition, in plain and encrypted stores.
#[tokio::test]
async fn an_update_of_some_values_merges_with_another_instances_change() {
    let db = TestDb::new("actixpartial").await;
    let keys = || mongodb_session_store::KeyRing::new(1, [7; 32]).unwrap();
    for (first, second) in [
        (instance(&db).built().await, instance(&db).built().await),
        (
            instance(&db).encryption(keys()).built().await,
            instance(&db).encryption(keys()).built().await,
        ),
    ] {
        let loaded = state(&[("a", "1"), ("b", r#"{"x":[1]}"#), ("c", r#""c""#)]);
        let key1 = SessionStore::save(&first, loaded, &ACTIX_TTL)
            .await
            .unwrap();
        let mut mine = SessionStore::load(&first, &key1).await.unwrap().unwrap();
        let mut theirs = SessionStore::load(&second, &key1).await.unwrap().unwrap();
        theirs.insert("b".into(), r#"{"x":[2]}"#.into());
        SessionStore::update(&second, key(key1.as_ref()), theirs, &ACTIX_TTL)
            .await
            .unwrap();
        mine.insert("a".into(), "2".into());
        mine.remove("c");
        mine.insert("d".into(), "true".into());
        SessionStore::update(&first, key(key1.as_ref()), mine, &ACTIX_TTL)
            .await
            .unwrap();
        let mut now = SessionStore::load(&second, &key1).await.unwrap().unwrap();
        now.remove(TRACKING_KEY);
        let expected = state(&[("a", "2"), ("b", r#"{"x":[2]}"#), ("d", "true")]);
        assert_eq!(now, expected);
    }
}

/// The size limit counts the values an update did not parse: a change that
/// takes the whole session over it is refused.
#[tokio::test]
async fn an_update_counts_the_values_it_did_not_parse_against_the_size_limit() {
    let db = TestDb::new("actixpartialsize").await;
    let store = builder(&db).max_session_bytes(1_000).built().await;
    let big = format!("{:?}", "x".repeat(600));
    let saved = state(&[("big", &big), ("small", "1")]);
    let key1 = SessionStore::save(&store, saved, &ACTIX_TTL).await.unwrap();
    let mut loaded = SessionStore::load(&store, &key1).await.unwrap().unwrap();
    loaded.insert("small".into(), format!("{:?}", "y".repeat(500)));
    let update = SessionStore::update(&store, key(key1.as_ref()), loaded.clone(), &ACTIX_TTL);
    let refused = update
        .await
        .expect_err("over the limit with the value left alone");
    let refusal = format!("{refused:?}");
    assert!(refusal.contains("max_session_bytes"), "{refusal}");
    loaded.insert("small".into(), format!("{:?}", "y".repeat(300)));
    let update = SessionStore::update(&store, key(key1.as_ref()), loaded, &ACTIX_TTL);
    update.await.expect("under the limit");
}
