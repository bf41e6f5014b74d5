//! Issue 23, item 1: at most `n` sessions per user, decided after the write
//! that gives a session its owner — through both adapters, on two store
//! instances, with concurrent logins.

use actix_session::storage::SessionStore as Actix;
use mongodb_session_store::{
    session::USER_KEY, users::EndReason, MongoSessionStore, OverLimit, UserInfo,
};
use serde_json::json;
use testkit::TestDb;
use tower_sessions_core::SessionStore as Tower;

use crate::common::{instance, map, state, tower_session, Build, ACTIX_TTL};

async fn limited(db: &TestDb, policy: OverLimit) -> MongoSessionStore {
    let builder = instance(db).max_sessions_per_user(3, policy);
    builder.built().await
}

fn owner(device: &str) -> serde_json::Value {
    UserInfo::new("ada").user_agent(device).to_value()
}

/// A login through tower-sessions: an anonymous session, loaded, given an
/// owner (`tower::set_user` puts it in the map), saved.
async fn tower_login(store: &MongoSessionStore, device: &str) -> (String, bool) {
    let record = tower_session(store, json!({"cart": 1})).await;
    let mut loaded = Tower::load(store, &record.id).await.unwrap().unwrap();
    loaded.data.insert(USER_KEY.to_string(), owner(device));
    let ok = Tower::save(store, &loaded).await.is_ok();
    (record.id.to_string(), ok)
}

/// A login through actix-session: an anonymous session, loaded, given an
/// owner (`actix::set_user` inserts it as JSON text), updated.
async fn actix_login(store: &MongoSessionStore, device: &str) -> (String, bool) {
    let ttl = ACTIX_TTL;
    let key = Actix::save(store, state(&[("cart", "1")]), &ttl)
        .await
        .unwrap();
    let mut loaded = Actix::load(store, &key).await.unwrap().unwrap();
    loaded.insert(USER_KEY.to_string(), owner(device).to_string());
    let id = key.as_ref().to_string();
    let ok = Actix::update(store, key, loaded, &ttl).await.is_ok();
    (id, ok)
}

async fn eight_logins(one: &MongoSessionStore, two: &MongoSessionStore) -> Vec<(String, bool)> {
    let logins = (0..8).map(|i| {
        let store = if i % 2 == 0 { one } else { two };
        let device = format!("device {i}");
        async move {
            if i < 4 {
                tower_login(store, &device).await
            } else {
                actix_login(store, &device).await
            }
        }
    });
    futures_util::future::join_all(logins).await
}

async fn owned(store: &MongoSessionStore, ids: &[(String, bool)]) -> Vec<String> {
    let mut owned = Vec::new();
    for (id, _) in ids {
        if let Some(loaded) = store.load(id).await.unwrap() {
            if loaded.user.is_some() {
                owned.push(id.clone());
            }
        }
    }
    owned
}

#[tokio::test]
async fn eight_concurrent_logins_on_two_instances_leave_the_three_most_recent() {
    let db = TestDb::new("limitend").await;
    let one = limited(&db, OverLimit::EndLeastRecentlyActive).await;
    let two = limited(&db, OverLimit::EndLeastRecentlyActive).await;
    // Two devices already signed in.
    let earlier = [
        tower_login(&one, "old 1").await,
        actix_login(&two, "old 2").await,
    ];
    let logins = eight_logins(&one, &two).await;
    assert!(
        logins.iter().all(|(_, ok)| *ok),
        "this policy never refuses"
    );
    let listed = one.user_sessions("ada", None).await.unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(
        owned(&two, &earlier).await.is_empty(),
        "the oldest went first"
    );
    assert_eq!(owned(&one, &logins).await.len(), 3);
    // The devices signed out say so.
    let signed_out = two.signed_out("ada").await.unwrap();
    assert_eq!(signed_out.len(), 7, "{signed_out:?}");
    assert!(signed_out
        .iter()
        .all(|d| d.reason == EndReason::SessionLimit));
    assert!(signed_out
        .iter()
        .any(|d| d.user_agent.as_deref() == Some("old 1")));
}

#[tokio::test]
async fn refusing_new_logins_admits_exactly_three_of_eight_concurrent_ones() {
    let db = TestDb::new("limitrefuse").await;
    let one = limited(&db, OverLimit::RefuseNewLogin).await;
    let two = limited(&db, OverLimit::RefuseNewLogin).await;
    let logins = eight_logins(&one, &two).await;
    let kept = owned(&one, &logins).await;
    assert_eq!(kept.len(), 3, "{logins:?}");
    // Five were refused; none was admitted and then undone.
    let refused = logins.iter().filter(|(_, ok)| !ok).count();
    assert_eq!(refused, 5, "{logins:?}");
    assert!(two.signed_out("ada").await.unwrap().is_empty());
    // A refused login keeps its (anonymous) session.
    for (id, ok) in &logins {
        if !ok {
            let loaded = two.load(id).await.unwrap();
            assert!(loaded.is_none_or(|l| l.user.is_none()), "{id}");
        }
    }
    // The login page can ask first.
    assert!(one
        .check_session_limit("ada")
        .await
        .unwrap_err()
        .is_session_limit());
    assert!(one.check_session_limit("bob").await.is_ok());
    // A fourth through the core API is refused with the typed error.
    let fourth = map(json!({ USER_KEY: owner("fourth") }));
    let error = two.create(&fourth, None).await.unwrap_err();
    assert!(error.is_session_limit(), "{error}");
    assert_eq!(one.user_sessions("ada", None).await.unwrap().len(), 3);
}

#[tokio::test]
async fn without_a_limit_nothing_is_ended_and_zero_is_refused_at_build() {
    let db = TestDb::new("limitnone").await;
    let store = instance(&db).built().await;
    let one = limited(&db, OverLimit::EndLeastRecentlyActive).await;
    eight_logins(&store, &store).await;
    assert_eq!(store.user_sessions("ada", None).await.unwrap().len(), 8);
    // Only a write that gives a session its owner enforces the limit.
    assert!(
        one.check_session_limit("ada").await.is_ok(),
        "not RefuseNewLogin"
    );
    let zero = instance(&db).max_sessions_per_user(0, OverLimit::RefuseNewLogin);
    let error = zero.refused().await;
    assert!(error.is_config(), "{error}");
}
