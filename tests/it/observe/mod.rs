//! Issue 15: every store operation runs in a `tracing` span with its
//! outcome, round trips and a redacted id; the adapters' spans nest under
//! the framework's request span; with the `metrics` feature, operations,
//! latencies, cache figures and errors reach the `metrics` recorder.

mod adapters;
mod capture;
mod metrics;
mod spans;

use mongodb_session_store::{MongoSessionStore, ReadCache};
use serde_json::{json, Map, Value};
use testkit::TestDb;

fn map(value: Value) -> Map<String, Value> {
    value.as_object().expect("an object").clone()
}

/// A cached store, and the id of a session `{"n": 1}` created through
/// another, uncached one: a create through the cached store would cache it,
/// and its first load would not miss.
async fn cached_store_and_uncached_session(db: &TestDb) -> (MongoSessionStore, String) {
    let build = |cache: Option<ReadCache>| {
        let mut builder = MongoSessionStore::from_client(db.client.clone()).database(&db.name);
        if let Some(cache) = cache {
            builder = builder.cache(cache);
        }
        builder.build()
    };
    let store = build(Some(ReadCache::new())).await.unwrap();
    let elsewhere = build(None).await.unwrap();
    let id = elsewhere.create(&map(json!({"n": 1})), None).await.unwrap();
    (store, id)
}
