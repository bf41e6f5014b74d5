//! Issue 23 item 2: a session's own lifetime (remember-me), stored in its
//! document and honoured by load, save, touch, `touch_after`, the
//! server-side cap and every instance; bounded by `lifetime_limit`.
//! Adapter cases (tower-sessions, actix-session) are in `lifetimes/`.

#[cfg(all(feature = "tower-sessions", feature = "actix-session"))]
mod adapters;

use std::time::{Duration, SystemTime};

use mongodb::bson::{doc, Bson, DateTime, Document};
use mongodb_session_store::{
    session::SaveOutcome, session::LIFETIME_KEY, MongoSessionStore, SessionLifetime, StoreBuilder,
};
use serde_json::{json, Map, Value};
use testkit::TestDb;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

fn map(value: Value) -> Map<String, Value> {
    value.as_object().expect("an object").clone()
}

fn with_lifetime(value: Value, lifetime: SessionLifetime) -> Map<String, Value> {
    let mut data = map(value);
    data.insert(LIFETIME_KEY.into(), lifetime.to_value());
    data
}

fn builder(db: &TestDb) -> StoreBuilder {
    MongoSessionStore::from_client(db.client.clone()).database(&db.name)
}

/// What framework asks for: two weeks (tower-sessions' default).
fn two_weeks() -> Option<SystemTime> {
    Some(SystemTime::now() + 14 * DAY)
}

async fn raw(db: &TestDb, store: &MongoSessionStore, id: &str) -> Document {
    db.collection("sessions")
        .find_one(doc! { "_id": store.stored_id(id) })
        .await
        .unwrap()
        .expect("the session's document")
}

/// How far from now (+ `expected`) the stored expiry is: a value, not a
/// duration of anything.
fn expires_near(document: &Document, expected: Duration) -> bool {
    let expires = document.get_datetime("expires").unwrap().to_system_time();
    let target = SystemTime::now() + expected;
    let gap = match expires.duration_since(target) {
        Ok(later) => later,
        Err(earlier) => earlier.duration(),
    };
    gap < 5 * MINUTE
}

async fn set_dates(db: &TestDb, store: &MongoSessionStore, id: &str, set: Document) {
    db.collection("sessions")
        .update_one(doc! { "_id": store.stored_id(id) }, doc! { "$set": set })
        .await
        .unwrap();
}

fn ago(d: Duration) -> DateTime {
    DateTime::from_system_time(SystemTime::now() - d)
}

#[tokio::test]
async fn an_own_idle_window_replaces_the_asked_expiry_on_every_write_of_every_instance() {
    let db = TestDb::new("lifeidle").await;
    let one = builder(&db).build().await.unwrap();
    let two = builder(&db).build().await.unwrap();
    let short = SessionLifetime::new().idle_timeout(HOUR);
    let id = one
        .create(&with_lifetime(json!({"n": 1}), short), two_weeks())
        .await
        .unwrap();
    let document = raw(&db, &one, &id).await;
    assert_eq!(
        document.get_document("lifetime").unwrap(),
        &doc! { "idleTimeout": 3_600_000_i64 }
    );
    assert_eq!(document.get("format"), Some(&Bson::Int32(2)));
    assert!(expires_near(&document, HOUR), "create: {document}");

    // A save on the other instance, a change: its own window, not the asked 14 days.
    let loaded = two.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.lifetime, Some(short));
    let mut tracked = loaded.into_map();
    tracked.insert("n".into(), json!(2));
    assert_eq!(
        two.save(&id, &tracked, two_weeks()).await.unwrap(),
        SaveOutcome::Updated
    );
    assert!(expires_near(&raw(&db, &one, &id).await, HOUR), "save");

    // A touch by id (actix-session's `update_ttl`, connect-mongo's touch):
    // the server applies the stored window.
    set_dates(
        &db,
        &one,
        &id,
        doc! { "expires": DateTime::from_system_time(SystemTime::now() + MINUTE) },
    )
    .await;
    assert!(one.touch(&id, two_weeks()).await.unwrap());
    assert!(expires_near(&raw(&db, &one, &id).await, HOUR), "touch");

    // An unchanged save (tower-sessions' always_save): the same.
    let tracked = two.load(&id).await.unwrap().unwrap().into_map();
    set_dates(
        &db,
        &one,
        &id,
        doc! { "expires": DateTime::from_system_time(SystemTime::now() + MINUTE) },
    )
    .await;
    let unchanged = two.save(&id, &tracked, two_weeks()).await.unwrap();
    assert_eq!(unchanged, SaveOutcome::Touched);
    assert!(
        expires_near(&raw(&db, &one, &id).await, HOUR),
        "touch by save"
    );

    // Removing the entry gives the session back to the store's settings.
    let mut tracked = two.load(&id).await.unwrap().unwrap().into_map();
    tracked.remove(LIFETIME_KEY);
    two.save(&id, &tracked, two_weeks()).await.unwrap();
    let document = raw(&db, &one, &id).await;
    assert!(!document.contains_key("lifetime"));
    assert!(expires_near(&document, 14 * DAY), "{document}");
    db.cleanup().await;
}

#[tokio::test]
async fn an_own_absolute_lifetime_outlives_the_stores_and_ends_the_session_at_its_own() {
    let db = TestDb::new("lifeabsolute").await;
    let store = || builder(&db).absolute_timeout(HOUR).lifetime_limit(30 * DAY);
    let (one, two) = (
        store().build().await.unwrap(),
        store().build().await.unwrap(),
    );
    let remembered = SessionLifetime::new().absolute_timeout(3 * HOUR);
    let kept = one
        .create(
            &with_lifetime(json!({"who": "kept"}), remembered),
            two_weeks(),
        )
        .await
        .unwrap();
    let plain = one
        .create(&map(json!({"who": "plain"})), two_weeks())
        .await
        .unwrap();
    assert!(
        expires_near(&raw(&db, &one, &kept).await, 3 * HOUR),
        "capped at its own"
    );
    assert!(
        expires_near(&raw(&db, &one, &plain).await, HOUR),
        "capped at the store's"
    );

    // Born two hours ago: past the store's hour, within its own three.
    let born = doc! { "createdAt": ago(2 * HOUR), "expires": DateTime::from_system_time(SystemTime::now() + DAY) };
    set_dates(&db, &one, &kept, born.clone()).await;
    set_dates(&db, &one, &plain, born).await;
    assert!(two.load(&plain).await.unwrap().is_none());
    assert!(two.load(&kept).await.unwrap().is_some());
    assert_eq!(two.length().await.unwrap(), 1, "listings agree");
    // A touch by id caps on the server, from the stored creation time and
    // the stored lifetime: born + 3 h, one hour from now.
    assert!(two.touch(&kept, two_weeks()).await.unwrap());
    assert!(
        expires_near(&raw(&db, &one, &kept).await, HOUR),
        "server-side cap"
    );
    // A whole save (no snapshot, creation time unknown) is capped on the
    // server by the lifetime it writes.
    let mut whole = with_lifetime(json!({"who": "whole"}), remembered);
    whole.insert("x".into(), json!(1));
    assert_eq!(
        two.save(&kept, &whole, two_weeks()).await.unwrap(),
        SaveOutcome::Updated
    );
    assert!(
        expires_near(&raw(&db, &one, &kept).await, HOUR),
        "whole save"
    );
    assert!(
        !two.touch(&plain, two_weeks()).await.unwrap(),
        "the plain one is over"
    );

    // Shorter than the store's: born 45 minutes ago, over at 30, though
    // within the store's hour (and its expiry moved past it by hand).
    let brief = SessionLifetime::new().absolute_timeout(30 * 60 * Duration::from_secs(1));
    let short = one
        .create(&with_lifetime(json!({"who": "brief"}), brief), two_weeks())
        .await
        .unwrap();
    let born = doc! { "createdAt": ago(45 * MINUTE), "expires": DateTime::from_system_time(SystemTime::now() + DAY) };
    set_dates(&db, &one, &short, born).await;
    assert!(two.load(&short).await.unwrap().is_none());
    assert!(!two.touch(&short, two_weeks()).await.unwrap());
    assert_eq!(two.length().await.unwrap(), 1, "only the kept one");
    let gone = one.delete_expired().await.unwrap();
    assert_eq!(gone, 2, "the plain and the brief one");

    // Born four hours ago: over for good, whatever its expiry says.
    set_dates(&db, &one, &kept, doc! { "createdAt": ago(4 * HOUR), "expires": DateTime::from_system_time(SystemTime::now() + DAY) }).await;
    assert!(one.load(&kept).await.unwrap().is_none());
    assert!(!one.touch(&kept, two_weeks()).await.unwrap());
    assert_eq!(
        one.save(&kept, &whole, two_weeks()).await.unwrap(),
        SaveOutcome::Missing
    );
    assert_eq!(
        one.delete_expired().await.unwrap(),
        1,
        "past its own lifetime"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn own_values_above_the_limit_are_clamped_and_the_default_limit_only_shortens() {
    let db = TestDb::new("lifelimit").await;
    let limited = builder(&db).lifetime_limit(2 * HOUR).build().await.unwrap();
    let huge = SessionLifetime::new()
        .idle_timeout(365 * DAY)
        .absolute_timeout(365 * DAY);
    let id = limited
        .create(&with_lifetime(json!({}), huge), two_weeks())
        .await
        .unwrap();
    let document = raw(&db, &limited, &id).await;
    assert_eq!(
        document.get_document("lifetime").unwrap(),
        &doc! { "idleTimeout": 7_200_000_i64, "absoluteTimeout": 7_200_000_i64 }
    );
    assert!(expires_near(&document, 2 * HOUR));
    // Without lifetime_limit: the longer of ttl and absolute_timeout.
    let default = builder(&db)
        .collection("other")
        .idle_timeout(HOUR)
        .build()
        .await
        .unwrap();
    let id = default
        .create(
            &with_lifetime(json!({}), SessionLifetime::new().idle_timeout(30 * DAY)),
            None,
        )
        .await
        .unwrap();
    let document = db
        .collection("other")
        .find_one(doc! { "_id": default.stored_id(&id) })
        .await
        .unwrap()
        .unwrap();
    assert!(expires_near(&document, HOUR), "{document}");
    for bad in [Duration::ZERO, 101 * 365 * DAY] {
        let error = builder(&db).lifetime_limit(bad).build().await.unwrap_err();
        assert!(
            error.is_config() && error.to_string().contains("lifetime_limit"),
            "{error}"
        );
    }
    db.cleanup().await;
}

#[tokio::test]
async fn a_lifetime_changed_by_another_request_is_not_overruled_by_a_stale_write() {
    let db = TestDb::new("lifestale").await;
    let (one, two) = (
        builder(&db).lifetime_limit(30 * DAY).build().await.unwrap(),
        builder(&db).lifetime_limit(30 * DAY).build().await.unwrap(),
    );
    let remembered = SessionLifetime::new().idle_timeout(30 * DAY);
    let id = one
        .create(
            &with_lifetime(json!({"a": 0, "b": 0}), remembered),
            two_weeks(),
        )
        .await
        .unwrap();
    // Two requests load it; one of them (a "forget this device" page)
    // shortens its window; the other then writes, from what it loaded.
    let stale = one.load(&id).await.unwrap().unwrap().into_map();
    let mut shorten = two.load(&id).await.unwrap().unwrap().into_map();
    shorten.insert(
        LIFETIME_KEY.into(),
        SessionLifetime::new().idle_timeout(HOUR).to_value(),
    );
    two.save(&id, &shorten, two_weeks()).await.unwrap();

    let mut change = stale.clone();
    change.insert("a".into(), json!(1));
    assert_eq!(
        one.save(&id, &change, two_weeks()).await.unwrap(),
        SaveOutcome::Updated
    );
    let document = raw(&db, &one, &id).await;
    assert!(expires_near(&document, HOUR), "a change: {document}");
    assert_eq!(
        document.get_document("lifetime").unwrap(),
        &doc! { "idleTimeout": 3_600_000_i64 }
    );
    assert_eq!(one.load(&id).await.unwrap().unwrap().data["a"], json!(1));
    // An unchanged save from the same stale load: a touch by the new window.
    set_dates(
        &db,
        &one,
        &id,
        doc! { "expires": DateTime::from_system_time(SystemTime::now() + MINUTE) },
    )
    .await;
    let outcome = one.save(&id, &stale, two_weeks()).await.unwrap();
    assert_eq!(outcome, SaveOutcome::Touched);
    assert!(expires_near(&raw(&db, &one, &id).await, HOUR), "a touch");
    db.cleanup().await;
}

#[tokio::test]
async fn touch_after_skips_at_most_half_of_a_sessions_own_window() {
    let db = TestDb::new("lifetouchafter").await;
    let store = builder(&db).touch_after(HOUR).build().await.unwrap();
    let short = SessionLifetime::new().idle_timeout(20 * MINUTE);
    let id = store
        .create(&with_lifetime(json!({}), short), two_weeks())
        .await
        .unwrap();
    let plain = store.create(&map(json!({})), two_weeks()).await.unwrap();
    // Last written 15 minutes ago: inside touch_after (an hour), but past
    // half of its own 20 minutes.
    for session in [&id, &plain] {
        let dates = doc! { "lastModified": ago(15 * MINUTE), "expires": DateTime::from_system_time(SystemTime::now() + 5 * MINUTE) };
        set_dates(&db, &store, session, dates).await;
    }
    let tracked = store.load(&id).await.unwrap().unwrap().into_map();
    let outcome = store.save(&id, &tracked, two_weeks()).await.unwrap();
    assert_eq!(outcome, SaveOutcome::Touched, "by save");
    assert!(expires_near(&raw(&db, &store, &id).await, 20 * MINUTE));
    let dates = doc! { "lastModified": ago(15 * MINUTE), "expires": DateTime::from_system_time(SystemTime::now() + 5 * MINUTE) };
    set_dates(&db, &store, &id, dates).await;
    store.load(&id).await.unwrap().unwrap(); // a load as actix-session's, before its update_ttl
    assert!(store.touch(&id, two_weeks()).await.unwrap(), "by id");
    assert!(expires_near(&raw(&db, &store, &id).await, 20 * MINUTE));
    // A session without one: skipped inside touch_after, as ever.
    store.load(&plain).await.unwrap().unwrap();
    assert!(!store.touch(&plain, two_weeks()).await.unwrap());
    db.cleanup().await;
}

#[tokio::test]
async fn a_lifetime_is_kept_across_id_regeneration_with_the_creation_time() {
    let db = TestDb::new("liferegen").await;
    let (one, two) = (
        builder(&db).lifetime_limit(30 * DAY).build().await.unwrap(),
        builder(&db).lifetime_limit(30 * DAY).build().await.unwrap(),
    );
    let remembered = SessionLifetime::new()
        .idle_timeout(7 * DAY)
        .absolute_timeout(30 * DAY);
    let old = one
        .create(
            &with_lifetime(json!({"user": "ada"}), remembered),
            two_weeks(),
        )
        .await
        .unwrap();
    set_dates(&db, &one, &old, doc! { "createdAt": ago(DAY) }).await;
    let tracked = one.load(&old).await.unwrap().unwrap().into_map();
    assert!(one.delete(&old).await.unwrap());
    let new = one.create(&tracked, two_weeks()).await.unwrap();
    let document = raw(&db, &one, &new).await;
    assert_eq!(
        document.get_document("lifetime").unwrap(),
        &doc! { "idleTimeout": 7 * 86_400_000_i64, "absoluteTimeout": 30 * 86_400_000_i64 }
    );
    let born = document.get_datetime("createdAt").unwrap().to_system_time();
    assert!(
        born < SystemTime::now() - 23 * HOUR,
        "the creation time is kept"
    );
    assert!(expires_near(&document, 7 * DAY));
    assert_eq!(
        two.load(&new).await.unwrap().unwrap().lifetime,
        Some(remembered)
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_malformed_lifetime_entry_is_refused_and_a_stored_one_is_a_decode_error() {
    let db = TestDb::new("lifebad").await;
    let store = builder(&db).build().await.unwrap();
    let mut forged = map(json!({"n": 1}));
    forged.insert(LIFETIME_KEY.into(), json!({"idleTimeout": "forever"}));
    let error = store.create(&forged, None).await.unwrap_err();
    assert!(error.is_reserved_key(), "{error}");
    let id = store.create(&map(json!({"n": 1})), None).await.unwrap();
    set_dates(
        &db,
        &store,
        &id,
        doc! { "lifetime": { "idleTimeout": "forever" } },
    )
    .await;
    let error = store.load(&id).await.unwrap_err();
    assert_eq!(
        error.decode_field(),
        Some("lifetime.idleTimeout"),
        "{error}"
    );
    // Without timestamps there is nothing to count an absolute lifetime from.
    let untimed = builder(&db)
        .collection("untimed")
        .timestamps(false)
        .build()
        .await
        .unwrap();
    let data = with_lifetime(json!({}), SessionLifetime::new().absolute_timeout(HOUR));
    assert!(untimed.create(&data, None).await.unwrap_err().is_config());
    db.cleanup().await;
}
