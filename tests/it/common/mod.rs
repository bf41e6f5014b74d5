//! What the integration tests share: session maps from JSON, times, stores
//! and their builders on a test database, two instances on one collection,
//! the stored documents and indexes as the server holds them, and the
//! frameworks' own session types.
//!
//! The database itself is `testkit::TestDb`: one per test, dropped when the
//! test is done with it (also when it panics), so no test cleans up by hand.

// Each test module uses a part of this, and some modules are compiled only
// with their framework's feature.
#![allow(dead_code, unused_imports)]

pub mod capture;
mod frameworks;
mod indexes;

use std::{
    future::Future,
    time::{Duration, SystemTime},
};

use mongodb::{
    bson::{doc, DateTime, Document},
    options::ClientOptions,
};
use mongodb_session_store::{Error, MongoSessionStore, StoreBuilder};
use serde_json::{Map, Value};
use testkit::TestDb;

#[cfg(feature = "actix-session")]
pub use frameworks::{key, state, ACTIX_TTL};
#[cfg(feature = "tower-sessions")]
pub use frameworks::{record, record_with_id, tower_session};
pub use indexes::{expire_after_seconds, index_on, indexes, indexes_on};

pub const MINUTE: Duration = Duration::from_secs(60);
pub const HOUR: Duration = Duration::from_secs(3600);
pub const DAY: Duration = Duration::from_secs(24 * 3600);

/// A session's values from a JSON object.
pub fn map(value: Value) -> Map<String, Value> {
    value.as_object().expect("an object").clone()
}

/// The expiry a framework asks for: `n` hours from now.
pub fn hours(n: u32) -> Option<SystemTime> {
    Some(SystemTime::now() + n * HOUR)
}

/// The expiry a framework asks for: an hour from now.
pub fn in_an_hour() -> Option<SystemTime> {
    hours(1)
}

/// An expiry a second ago: a session that is over but not yet removed.
pub fn a_second_ago() -> Option<SystemTime> {
    Some(SystemTime::now() - Duration::from_secs(1))
}

/// A stored date `d` before now.
pub fn ago(d: Duration) -> DateTime {
    DateTime::from_system_time(SystemTime::now() - d)
}

/// A stored date `d` after now.
pub fn from_now(d: Duration) -> DateTime {
    DateTime::from_system_time(SystemTime::now() + d)
}

/// `time` as a stored date's milliseconds.
pub fn millis(time: SystemTime) -> i64 {
    DateTime::from_system_time(time).timestamp_millis()
}

/// A builder for a store on the test database, on the test's own client.
pub fn builder(db: &TestDb) -> StoreBuilder {
    MongoSessionStore::from_client(db.client.clone()).database(&db.name)
}

/// A store on the test database with the default settings.
pub async fn store(db: &TestDb) -> MongoSessionStore {
    builder(db).built().await
}

/// A fresh database named after `test`, and a store on it with the default
/// settings. (Bind the database to a name, `_db` at least: it is dropped
/// with its binding.)
pub async fn db_and_store(test: &str) -> (TestDb, MongoSessionStore) {
    let db = TestDb::new(test).await;
    let store = store(&db).await;
    (db, store)
}

/// A builder for another app instance: a store on the test database that
/// opens a client (a connection pool) of its own.
pub fn instance(db: &TestDb) -> StoreBuilder {
    MongoSessionStore::from_uri(db.uri())
}

/// Two app instances with the default settings on one collection (behind a
/// load balancer), each with a client of its own.
pub async fn instances(db: &TestDb) -> (MongoSessionStore, MongoSessionStore) {
    (instance(db).built().await, instance(db).built().await)
}

/// A store reading `collection` as connect-mongo writes it (an Express
/// app's sessions), leaving the TTL index to the Express side.
#[cfg(feature = "express")]
pub async fn connect_mongo(db: &TestDb, collection: &str) -> MongoSessionStore {
    use mongodb_session_store::{express::ExpressLayout, AutoRemove};
    let builder = builder(db).collection(collection);
    let builder = builder.auto_remove(AutoRemove::Disabled);
    builder
        .express_layout(ExpressLayout::ConnectMongo)
        .built()
        .await
}

/// Options for a client of its own on `uri`, named `app` (so a failpoint
/// can single it out).
pub async fn named(uri: &str, app: &str) -> ClientOptions {
    let mut options = ClientOptions::parse(uri).await.expect("a valid URI");
    options.app_name = Some(app.into());
    options
}

/// Building a store the test expects to build, or to be refused.
pub trait Build {
    /// The store; panics if building fails.
    fn built(self) -> impl Future<Output = MongoSessionStore>;

    /// Why building was refused; panics if it was not.
    fn refused(self) -> impl Future<Output = Error>;
}

impl Build for StoreBuilder {
    async fn built(self) -> MongoSessionStore {
        self.build().await.expect("building the store")
    }

    async fn refused(self) -> Error {
        match self.build().await {
            Ok(_) => panic!("the store was built"),
            Err(error) => error,
        }
    }
}

/// A new session of `values` (a JSON object) on `store`, expiring at
/// `expires`: its id.
pub async fn new_session(
    store: &MongoSessionStore,
    values: Value,
    expires: Option<SystemTime>,
) -> String {
    store.create(&map(values), expires).await.unwrap()
}

/// A store's loaded session `id`, as the map a request would save back;
/// panics if there is none.
pub async fn loaded(store: &MongoSessionStore, id: &str) -> Map<String, Value> {
    store
        .load(id)
        .await
        .unwrap()
        .expect("a live session")
        .into_map()
}

/// The values of a store's session `id`; panics if there is none.
pub async fn data(store: &MongoSessionStore, id: &str) -> Map<String, Value> {
    store.load(id).await.unwrap().expect("a live session").data
}

/// The collection of `store`'s sessions, on the test's own client (so a
/// store's command log does not see what the test reads).
fn collection_of(db: &TestDb, store: &MongoSessionStore) -> mongodb::Collection<Document> {
    let namespace = store.namespace();
    let (_, name) = namespace.split_once('.').expect("database.collection");
    db.collection(name)
}

/// The document of `store`'s session `id`, as the server holds it.
pub async fn stored(db: &TestDb, store: &MongoSessionStore, id: &str) -> Option<Document> {
    let filter = doc! {"_id": store.stored_id(id)};
    collection_of(db, store).find_one(filter).await.unwrap()
}

/// The document of `store`'s session `id`, as the server holds it; panics
/// if there is none.
pub async fn raw(db: &TestDb, store: &MongoSessionStore, id: &str) -> Document {
    let document = stored(db, store, id).await;
    document.expect("the session's document")
}

/// Sets `fields` on the document of `store`'s session `id` directly, as
/// another program (or time passing) would.
pub async fn set_fields(db: &TestDb, store: &MongoSessionStore, id: &str, fields: Document) {
    let filter = doc! {"_id": store.stored_id(id)};
    let update = doc! {"$set": fields};
    collection_of(db, store)
        .update_one(filter, update)
        .await
        .unwrap();
}

/// The one document in `sessions`; panics if there are more or none.
pub async fn only_document(db: &TestDb) -> Document {
    let mut all = db.documents("sessions").await;
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

/// How many documents `sessions` holds.
pub async fn count(db: &TestDb) -> u64 {
    let sessions = db.collection("sessions");
    sessions.count_documents(doc! {}).await.unwrap()
}
