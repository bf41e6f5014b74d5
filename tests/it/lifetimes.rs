//! Issue 23 item 2: a session's own lifetime (remember-me), stored in its
//! document and honoured by load, save, touch, `touch_after`, the
//! server-side cap and every instance; bounded by `lifetime_limit`.
//! Adapter cases (tower-sessions, actix-session) are in `lifetimes/`.

#[cfg(all(feature = "tower-sessions", feature = "actix-session"))]
mod adapters;

use std::time::{Duration, SystemTime};

use mongodb::bson::{doc, Bson, Document};
use mongodb_session_store::{
    session::SaveOutcome, session::LIFETIME_KEY, MongoSessionStore, SessionLifetime, StoreBuilder,
};
use serde_json::{json, Map, Value};
use testkit::TestDb;

use crate::common::{
    ago, builder, from_now, loaded, map, new_session, raw, set_fields, Build, DAY, HOUR, MINUTE,
};

fn with_lifetime(value: Value, lifetime: SessionLifetime) -> Map<String, Value> {
    let mut data = map(value);
    data.insert(LIFETIME_KEY.into(), lifetime.to_value());
    data
}

/// A new session of `value` with a lifetime of its own: its id.
async fn remembered(store: &MongoSessionStore, value: Value, lifetime: SessionLifetime) -> String {
    let data = with_lifetime(value, lifetime);
    store.create(&data, two_weeks()).await.unwrap()
}

/// What framework asks for: two weeks (tower-sessions' default).
fn two_weeks() -> Option<SystemTime> {
    Some(SystemTime::now() + 14 * DAY)
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

/// Whether the stored expiry of `store`'s session `id` is `expected` from
/// now.
async fn expiry_near(db: &TestDb, store: &MongoSessionStore, id: &str, expected: Duration) -> bool {
    expires_near(&raw(db, store, id).await, expected)
}

/// Moves the stored expiry of session `id` to a minute from now, so the
/// next write shows which window it applied.
async fn expire_soon(db: &TestDb, store: &MongoSessionStore, id: &str) {
    set_fields(db, store, id, doc! { "expires": from_now(MINUTE) }).await;
}

/// Moves the session's creation back by `age`, its expiry a day ahead.
async fn born_ago(db: &TestDb, store: &MongoSessionStore, id: &str, age: Duration) {
    let born = doc! { "createdAt": ago(age), "expires": from_now(DAY) };
    set_fields(db, store, id, born).await;
}

/// The stored `lifetime` of a session's document.
fn lifetime_of(document: &Document) -> &Document {
    document.get_document("lifetime").unwrap()
}

/// Two instances on one collection, from `builder`.
async fn two(builder: impl Fn() -> StoreBuilder) -> (MongoSessionStore, MongoSessionStore) {
    (builder().built().await, builder().built().await)
}

// One scenario: every write path of both instances, in order, on one session.
#[tokio::test]
async fn an_own_idle_window_replaces_the_asked_expiry_on_every_write_of_every_instance() {
    let db = TestDb::new("lifeidle").await;
    let (one, two) = two(|| builder(&db)).await;
    let short = SessionLifetime::new().idle_timeout(HOUR);
    let id = remembered(&one, json!({"n": 1}), short).await;
    let document = raw(&db, &one, &id).await;
    let own = doc! { "idleTimeout": 3_600_000_i64 };
    assert_eq!(lifetime_of(&document), &own);
    assert_eq!(document.get("format"), Some(&Bson::Int32(2)));
    assert!(expires_near(&document, HOUR), "create: {document}");

    // A save on the other instance, a change: its own window, not the asked 14 days.
    let on_two = two.load(&id).await.unwrap().unwrap();
    assert_eq!(on_two.lifetime, Some(short));
    let mut tracked = on_two.into_map();
    tracked.insert("n".into(), json!(2));
    let saved = two.save(&id, &tracked, two_weeks()).await.unwrap();
    assert_eq!(saved, SaveOutcome::Updated);
    assert!(expiry_near(&db, &one, &id, HOUR).await, "save");

    // A touch by id (actix-session's `update_ttl`, connect-mongo's touch):
    // the server applies the stored window.
    expire_soon(&db, &one, &id).await;
    assert!(one.touch(&id, two_weeks()).await.unwrap());
    assert!(expiry_near(&db, &one, &id, HOUR).await, "touch");

    // An unchanged save (tower-sessions' always_save): the same.
    let tracked = loaded(&two, &id).await;
    expire_soon(&db, &one, &id).await;
    let unchanged = two.save(&id, &tracked, two_weeks()).await.unwrap();
    assert_eq!(unchanged, SaveOutcome::Touched);
    assert!(expiry_near(&db, &one, &id, HOUR).await, "touch by save");

    // Removing the entry gives the session back to the store's settings.
    let mut tracked = loaded(&two, &id).await;
    tracked.remove(LIFETIME_KEY);
    two.save(&id, &tracked, two_weeks()).await.unwrap();
    let document = raw(&db, &one, &id).await;
    assert!(!document.contains_key("lifetime"));
    assert!(expires_near(&document, 14 * DAY), "{document}");
}

// One scenario: three sessions' lives, in order, on two instances.
#[tokio::test]
async fn an_own_absolute_lifetime_outlives_the_stores_and_ends_the_session_at_its_own() {
    let db = TestDb::new("lifeabsolute").await;
    let (one, two) = two(|| builder(&db).absolute_timeout(HOUR).lifetime_limit(30 * DAY)).await;
    let three_hours = SessionLifetime::new().absolute_timeout(3 * HOUR);
    let kept = remembered(&one, json!({"who": "kept"}), three_hours).await;
    let plain = new_session(&one, json!({"who": "plain"}), two_weeks()).await;
    let own = expiry_near(&db, &one, &kept, 3 * HOUR).await;
    assert!(own, "capped at its own");
    let stores = expiry_near(&db, &one, &plain, HOUR).await;
    assert!(stores, "capped at the store's");

    // Born two hours ago: past the store's hour, within its own three.
    born_ago(&db, &one, &kept, 2 * HOUR).await;
    born_ago(&db, &one, &plain, 2 * HOUR).await;
    assert!(two.load(&plain).await.unwrap().is_none());
    assert!(two.load(&kept).await.unwrap().is_some());
    assert_eq!(two.length().await.unwrap(), 1, "listings agree");
    // A touch by id caps on the server, from the stored creation time and
    // the stored lifetime: born + 3 h, one hour from now.
    assert!(two.touch(&kept, two_weeks()).await.unwrap());
    let capped = expiry_near(&db, &one, &kept, HOUR).await;
    assert!(capped, "server-side cap");
    // A whole save (no snapshot, creation time unknown) is capped on the
    // server by the lifetime it writes.
    let mut whole = with_lifetime(json!({"who": "whole"}), three_hours);
    whole.insert("x".into(), json!(1));
    let saved = two.save(&kept, &whole, two_weeks()).await.unwrap();
    assert_eq!(saved, SaveOutcome::Updated);
    assert!(expiry_near(&db, &one, &kept, HOUR).await, "whole save");
    let over = two.touch(&plain, two_weeks()).await.unwrap();
    assert!(!over, "the plain one is over");

    // Shorter than the store's: born 45 minutes ago, over at 30, though
    // within the store's hour (and its expiry moved past it by hand).
    let brief = SessionLifetime::new().absolute_timeout(30 * MINUTE);
    let short = remembered(&one, json!({"who": "brief"}), brief).await;
    born_ago(&db, &one, &short, 45 * MINUTE).await;
    assert!(two.load(&short).await.unwrap().is_none());
    assert!(!two.touch(&short, two_weeks()).await.unwrap());
    assert_eq!(two.length().await.unwrap(), 1, "only the kept one");
    let gone = one.delete_expired().await.unwrap();
    assert_eq!(gone, 2, "the plain and the brief one");

    // Born four hours ago: over for good, whatever its expiry says.
    born_ago(&db, &one, &kept, 4 * HOUR).await;
    assert!(one.load(&kept).await.unwrap().is_none());
    assert!(!one.touch(&kept, two_weeks()).await.unwrap());
    let missing = one.save(&kept, &whole, two_weeks()).await.unwrap();
    assert_eq!(missing, SaveOutcome::Missing);
    let removed = one.delete_expired().await.unwrap();
    assert_eq!(removed, 1, "past its own lifetime");
}

#[tokio::test]
async fn own_values_above_the_limit_are_clamped_and_the_default_limit_only_shortens() {
    let db = TestDb::new("lifelimit").await;
    let limited = builder(&db).lifetime_limit(2 * HOUR).built().await;
    let year = 365 * DAY;
    let huge = SessionLifetime::new()
        .idle_timeout(year)
        .absolute_timeout(year);
    let id = remembered(&limited, json!({}), huge).await;
    let document = raw(&db, &limited, &id).await;
    let clamped = doc! { "idleTimeout": 7_200_000_i64, "absoluteTimeout": 7_200_000_i64 };
    assert_eq!(lifetime_of(&document), &clamped);
    assert!(expires_near(&document, 2 * HOUR));
    // Without lifetime_limit: the longer of ttl and absolute_timeout.
    let other = builder(&db).collection("other").idle_timeout(HOUR);
    let default = other.built().await;
    let month = SessionLifetime::new().idle_timeout(30 * DAY);
    let data = with_lifetime(json!({}), month);
    let id = default.create(&data, None).await.unwrap();
    let document = raw(&db, &default, &id).await;
    assert!(expires_near(&document, HOUR), "{document}");
    for bad in [Duration::ZERO, 101 * 365 * DAY] {
        let error = builder(&db).lifetime_limit(bad).refused().await;
        assert!(
            error.is_config() && error.to_string().contains("lifetime_limit"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_lifetime_changed_by_another_request_is_not_overruled_by_a_stale_write() {
    let db = TestDb::new("lifestale").await;
    let (one, two) = two(|| builder(&db).lifetime_limit(30 * DAY)).await;
    let month = SessionLifetime::new().idle_timeout(30 * DAY);
    let id = remembered(&one, json!({"a": 0, "b": 0}), month).await;
    // Two requests load it; one of them (a "forget this device" page)
    // shortens its window; the other then writes, from what it loaded.
    let stale = loaded(&one, &id).await;
    let mut shorten = loaded(&two, &id).await;
    let hour = SessionLifetime::new().idle_timeout(HOUR).to_value();
    shorten.insert(LIFETIME_KEY.into(), hour);
    two.save(&id, &shorten, two_weeks()).await.unwrap();

    let mut change = stale.clone();
    change.insert("a".into(), json!(1));
    let saved = one.save(&id, &change, two_weeks()).await.unwrap();
    assert_eq!(saved, SaveOutcome::Updated);
    let document = raw(&db, &one, &id).await;
    assert!(expires_near(&document, HOUR), "a change: {document}");
    let shortened = doc! { "idleTimeout": 3_600_000_i64 };
    assert_eq!(lifetime_of(&document), &shortened);
    assert_eq!(one.load(&id).await.unwrap().unwrap().data["a"], json!(1));
    // An unchanged save from the same stale load: a touch by the new window.
    expire_soon(&db, &one, &id).await;
    let outcome = one.save(&id, &stale, two_weeks()).await.unwrap();
    assert_eq!(outcome, SaveOutcome::Touched);
    assert!(expiry_near(&db, &one, &id, HOUR).await, "a touch");
}

/// Last written 15 minutes ago, expiring in 5.
async fn written_a_quarter_hour_ago(db: &TestDb, store: &MongoSessionStore, id: &str) {
    let dates = doc! { "lastModified": ago(15 * MINUTE), "expires": from_now(5 * MINUTE) };
    set_fields(db, store, id, dates).await;
}

#[tokio::test]
async fn touch_after_skips_at_most_half_of_a_sessions_own_window() {
    let db = TestDb::new("lifetouchafter").await;
    let store = builder(&db).touch_after(HOUR).built().await;
    let short = SessionLifetime::new().idle_timeout(20 * MINUTE);
    let id = remembered(&store, json!({}), short).await;
    let plain = new_session(&store, json!({}), two_weeks()).await;
    // Last written 15 minutes ago: inside touch_after (an hour), but past
    // half of its own 20 minutes.
    for session in [&id, &plain] {
        written_a_quarter_hour_ago(&db, &store, session).await;
    }
    let tracked = loaded(&store, &id).await;
    let outcome = store.save(&id, &tracked, two_weeks()).await.unwrap();
    assert_eq!(outcome, SaveOutcome::Touched, "by save");
    assert!(expiry_near(&db, &store, &id, 20 * MINUTE).await);
    written_a_quarter_hour_ago(&db, &store, &id).await;
    store.load(&id).await.unwrap().unwrap(); // a load as actix-session's, before its update_ttl
    assert!(store.touch(&id, two_weeks()).await.unwrap(), "by id");
    assert!(expiry_near(&db, &store, &id, 20 * MINUTE).await);
    // A session without one: skipped inside touch_after, as ever.
    store.load(&plain).await.unwrap().unwrap();
    assert!(!store.touch(&plain, two_weeks()).await.unwrap());
}

#[tokio::test]
async fn a_lifetime_is_kept_across_id_regeneration_with_the_creation_time() {
    let db = TestDb::new("liferegen").await;
    let (one, two) = two(|| builder(&db).lifetime_limit(30 * DAY)).await;
    let week_and_month = SessionLifetime::new()
        .idle_timeout(7 * DAY)
        .absolute_timeout(30 * DAY);
    let old = remembered(&one, json!({"user": "ada"}), week_and_month).await;
    set_fields(&db, &one, &old, doc! { "createdAt": ago(DAY) }).await;
    let tracked = loaded(&one, &old).await;
    assert!(one.delete(&old).await.unwrap());
    let new = one.create(&tracked, two_weeks()).await.unwrap();
    let document = raw(&db, &one, &new).await;
    let kept = doc! { "idleTimeout": 7 * 86_400_000_i64, "absoluteTimeout": 30 * 86_400_000_i64 };
    assert_eq!(lifetime_of(&document), &kept);
    let born = document.get_datetime("createdAt").unwrap().to_system_time();
    let a_day_ago = born < SystemTime::now() - 23 * HOUR;
    assert!(a_day_ago, "the creation time is kept");
    assert!(expires_near(&document, 7 * DAY));
    let elsewhere = two.load(&new).await.unwrap().unwrap();
    assert_eq!(elsewhere.lifetime, Some(week_and_month));
}

#[tokio::test]
async fn a_malformed_lifetime_entry_is_refused_and_a_stored_one_is_a_decode_error() {
    let db = TestDb::new("lifebad").await;
    let store = builder(&db).built().await;
    let mut forged = map(json!({"n": 1}));
    forged.insert(LIFETIME_KEY.into(), json!({"idleTimeout": "forever"}));
    let error = store.create(&forged, None).await.unwrap_err();
    assert!(error.is_reserved_key(), "{error}");
    let id = new_session(&store, json!({"n": 1}), None).await;
    let forever = doc! { "lifetime": { "idleTimeout": "forever" } };
    set_fields(&db, &store, &id, forever).await;
    let error = store.load(&id).await.unwrap_err();
    let field = error.decode_field();
    assert_eq!(field, Some("lifetime.idleTimeout"), "{error}");
    // Without timestamps there is nothing to count an absolute lifetime from.
    let untimed = builder(&db).collection("untimed").timestamps(false);
    let untimed = untimed.built().await;
    let data = with_lifetime(json!({}), SessionLifetime::new().absolute_timeout(HOUR));
    assert!(untimed.create(&data, None).await.unwrap_err().is_config());
}
