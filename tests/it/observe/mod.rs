//! Issue 15: every store operation runs in a `tracing` span with its
//! outcome, round trips and a redacted id; the adapters' spans nest under
//! the framework's request span; with the `metrics` feature, operations,
//! latencies, cache figures and errors reach the `metrics` recorder.

#[cfg(any(feature = "tower-sessions", feature = "actix-session"))]
mod adapters;
mod metrics;
mod spans;

use mongodb_session_store::{ConflictPolicy, MongoSessionStore, ReadCache};
use serde_json::{json, Map, Value};
use testkit::TestDb;

use crate::common::{builder, loaded, new_session, Build};

/// A cached store, and the id of a session `{"n": 1}` created through
/// another, uncached one: a create through the cached store would cache it,
/// and its first load would not miss.
async fn cached_store_and_uncached_session(db: &TestDb) -> (MongoSessionStore, String) {
    let store = builder(db).cache(ReadCache::new()).built().await;
    let elsewhere = builder(db).built().await;
    let id = new_session(&elsewhere, json!({"n": 1}), None).await;
    (store, id)
}

/// A store with `ConflictPolicy::Fail`, a session `{"n": 1}` on it, and
/// what a request that loaded it wants to save (`n` = 3) after another
/// request, loaded at the same time, saved `n` = 2: a save that conflicts.
async fn strict_store_and_a_losing_save(
    db: &TestDb,
) -> (MongoSessionStore, String, Map<String, Value>) {
    let strict = builder(db).on_conflict(ConflictPolicy::Fail);
    let store = strict.built().await;
    let id = new_session(&store, json!({"n": 1}), None).await;
    let mut first = loaded(&store, &id).await;
    let mut second = loaded(&store, &id).await;
    first.insert("n".into(), json!(2));
    second.insert("n".into(), json!(3));
    store.save(&id, &first, None).await.unwrap();
    (store, id, second)
}
