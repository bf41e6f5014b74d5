//! Index reconciliation against the server's real answers: a TTL index with
//! another `expireAfterSeconds` is changed in place (`collMod`, never a
//! drop); what `collMod` cannot change (a partial filter) or what the
//! server refuses to change is dropped and recreated only when the caller
//! allows it; every change is logged; two instances starting together end
//! with one agreed index.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::TryStreamExt;
use mongodb::{
    bson::{doc, Document},
    event::{command::CommandEvent, EventHandler},
    options::ClientOptions,
};
use mongodb_session_store::{
    admin::IndexAction, admin::IndexPurpose, IndexRepair, MongoSessionStore, StoreBuilder,
};
use testkit::{
    fault::{FailPoint, Times},
    TestDb,
};
use tracing::{
    field::{Field, Visit},
    Event, Subscriber,
};
use tracing_subscriber::{layer::Context, prelude::*, Layer, Registry};

/// The names of the commands a client sent, in order.
#[derive(Clone, Default)]
struct Commands(Arc<Mutex<Vec<String>>>);

impl Commands {
    /// Options for a client named `app` on the test server, recording here.
    async fn options(app: &str) -> (ClientOptions, Self) {
        let log = Self::default();
        let mut options = ClientOptions::parse(testkit::mongodb_uri()).await.unwrap();
        options.app_name = Some(app.into());
        let sink = log.clone();
        options.command_event_handler = Some(EventHandler::callback(move |event| {
            if let CommandEvent::Started(started) = event {
                sink.0.lock().unwrap().push(started.command_name);
            }
        }));
        (options, log)
    }

    fn sent(&self, name: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|n| *n == name).count()
    }
}

/// The store's index events (target `mongodb_session_store::index`), each
/// as its fields.
#[derive(Clone, Default)]
struct IndexLog(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

impl IndexLog {
    fn install() -> (Self, tracing::subscriber::DefaultGuard) {
        let log = Self::default();
        let guard = tracing::subscriber::set_default(Registry::default().with(log.clone()));
        (log, guard)
    }

    /// The `action` field of every event about the sessions collection
    /// (not its endings record's), in order.
    fn actions(&self) -> Vec<String> {
        let events = self.0.lock().unwrap();
        events
            .iter()
            .filter(|e| e.get("collection").is_none_or(|c| !c.ends_with(".endings")))
            .filter_map(|e| e.get("action").cloned())
            .collect()
    }

    fn events(&self) -> Vec<BTreeMap<String, String>> {
        self.0.lock().unwrap().clone()
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: Subscriber> Layer<S> for IndexLog {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "mongodb_session_store::index" {
            return;
        }
        let mut fields = BTreeMap::new();
        fields.insert("level".into(), event.metadata().level().to_string());
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(fields);
    }
}

fn builder(db: &TestDb, options: ClientOptions) -> StoreBuilder {
    MongoSessionStore::from_client_options(options).database(&db.name)
}

/// Creates an index on `sessions` from its raw specification.
async fn create(db: &TestDb, spec: Document) {
    db.database()
        .run_command(doc! {"createIndexes": "sessions", "indexes": [spec]})
        .await
        .unwrap();
}

/// The index on `{expires: 1}` as the server lists it.
async fn expires_index(db: &TestDb) -> Option<Document> {
    let indexes: Vec<Document> = db
        .database()
        .run_cursor_command(doc! {"listIndexes": "sessions"})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut on_expires = indexes
        .into_iter()
        .filter(|ix| ix.get_document("key").unwrap() == &doc! {"expires": 1});
    let index = on_expires.next();
    assert!(on_expires.next().is_none(), "one index on expires");
    index
}

fn seconds(index: &Document) -> Option<i64> {
    let value = index.get("expireAfterSeconds")?;
    value.as_i64().or(value.as_i32().map(i64::from))
}

#[tokio::test]
async fn build_changes_another_ttl_in_place_with_coll_mod_and_logs_it() {
    let (log, _guard) = IndexLog::install();
    let db = TestDb::new("ttlinplace").await;
    create(
        &db,
        doc! {"key": {"expires": 1}, "name": "expires_1", "expireAfterSeconds": 3600},
    )
    .await;
    let (options, commands) = Commands::options("ttlinplace").await;
    builder(&db, options).build().await.unwrap();
    let index = expires_index(&db).await.unwrap();
    assert_eq!(seconds(&index), Some(0), "{index}");
    assert_eq!(commands.sent("collMod"), 1);
    assert_eq!(commands.sent("dropIndexes"), 0, "in place: never dropped");
    let events = log.events();
    let changed = events
        .iter()
        .find(|e| e.get("action").map(String::as_str) == Some("change-in-place"))
        .unwrap_or_else(|| panic!("no change-in-place event: {events:?}"));
    assert_eq!(changed["level"], "WARN");
    assert_eq!(changed["index"], "expires_1");
    assert!(changed["before"].contains("3600"), "{changed:?}");
    assert!(changed["message"].contains("collMod"), "{changed:?}");

    // A plain index on the field becomes a TTL index the same way
    // (MongoDB 5.1+; an older server refuses, see the fallback test).
    let db2 = TestDb::new("plaininplace").await;
    create(&db2, doc! {"key": {"expires": 1}, "name": "by_ops"}).await;
    let (options, commands) = Commands::options("plaininplace").await;
    builder(&db2, options).build().await.unwrap();
    let index = expires_index(&db2).await.unwrap();
    assert_eq!(
        (index.get_str("name"), seconds(&index)),
        (Ok("by_ops"), Some(0))
    );
    assert_eq!(commands.sent("dropIndexes"), 0);
    db.cleanup().await;
    db2.cleanup().await;
}

#[tokio::test]
async fn another_partial_filter_is_dropped_and_recreated_only_when_told() {
    let (log, _guard) = IndexLog::install();
    let db = TestDb::new("ttlpartial").await;
    let partial = doc! {"key": {"expires": 1}, "name": "expires_1", "expireAfterSeconds": 0,
    "partialFilterExpression": {"kind": "web"}};
    create(&db, partial).await;
    let (options, commands) = Commands::options("ttlpartial").await;
    let plan = builder(&db, options.clone())
        .manage_collection(false)
        .build()
        .await
        .unwrap()
        .index_plan()
        .await
        .unwrap();
    assert_eq!(plan.indexes[0].action, IndexAction::Replace, "{plan:?}");
    assert!(plan.replaces());

    let err = builder(&db, options.clone()).build().await.unwrap_err();
    assert!(err.is_index_conflict(), "{err}");
    let message = err.to_string();
    for names in [
        "partialFilterExpression",
        "IndexRepair::Recreate",
        "--recreate",
    ] {
        assert!(message.contains(names), "{message}");
    }
    let untouched = expires_index(&db).await.unwrap();
    assert!(untouched.contains_key("partialFilterExpression"));
    assert_eq!(commands.sent("dropIndexes"), 0);

    builder(&db, options)
        .index_repair(IndexRepair::Recreate)
        .build()
        .await
        .unwrap();
    let index = expires_index(&db).await.unwrap();
    assert!(!index.contains_key("partialFilterExpression"), "{index}");
    assert_eq!(seconds(&index), Some(0));
    assert_eq!(commands.sent("dropIndexes"), 1);
    assert_eq!(log.actions(), ["replace"]);
    db.cleanup().await;
}

#[tokio::test]
async fn refuse_changes_nothing_and_the_error_names_the_fixes() {
    let db = TestDb::new("ttlrefuse").await;
    create(
        &db,
        doc! {"key": {"expires": 1}, "name": "expires_1", "expireAfterSeconds": 60},
    )
    .await;
    let (options, commands) = Commands::options("ttlrefuse").await;
    let err = builder(&db, options)
        .index_repair(IndexRepair::Refuse)
        .build()
        .await
        .unwrap_err();
    assert!(err.is_index_conflict(), "{err}");
    let message = err.to_string();
    assert!(message.contains("collMod: \"sessions\""), "{message}");
    assert!(message.contains("expireAfterSeconds: 60"), "{message}");
    assert_eq!(commands.sent("collMod"), 0);
    assert_eq!(seconds(&expires_index(&db).await.unwrap()), Some(60));
    db.cleanup().await;
}

/// An Express app's Node store recreates `expires_1` with its own options on
/// every start (and fails every request if they differ): with the Express
/// layout the store leaves the shared index alone unless told.
#[cfg(feature = "express")]
#[tokio::test]
async fn with_the_express_layout_a_shared_ttl_index_is_left_alone_by_default() {
    use mongodb_session_store::express::ExpressLayout;
    let db = TestDb::new("ttlexpress").await;
    create(
        &db,
        doc! {"key": {"expires": 1}, "name": "expires_1", "expireAfterSeconds": 0},
    )
    .await;
    let (options, _) = Commands::options("ttlexpress").await;
    let express = || {
        builder(&db, options.clone())
            .express_layout(ExpressLayout::ConnectMongo)
            .expire_after(Duration::from_secs(30))
    };
    let err = express().build().await.unwrap_err();
    assert!(err.is_index_conflict(), "{err}");
    assert_eq!(seconds(&expires_index(&db).await.unwrap()), Some(0));
    express()
        .index_repair(IndexRepair::InPlace)
        .build()
        .await
        .unwrap();
    assert_eq!(seconds(&expires_index(&db).await.unwrap()), Some(30));
    db.cleanup().await;
}

/// A server that refuses `collMod` (MongoDB before 5.1 making a plain index
/// a TTL index answers 72 InvalidOptions; a user without the `collMod`
/// privilege gets 13 Unauthorized): reported, and recreated only when told.
#[tokio::test]
async fn a_refused_coll_mod_becomes_a_recreate_only_when_told() {
    let db = TestDb::new("ttlrefused").await;
    create(
        &db,
        doc! {"key": {"expires": 1}, "name": "expires_1", "expireAfterSeconds": 3600},
    )
    .await;
    let app = "ttlrefused";
    let refuse = FailPoint::fail_command(
        &db.client,
        app,
        &["collMod"],
        Times::Always,
        doc! {"errorCode": 72},
    )
    .await;
    let refuse = match refuse {
        Ok(failpoint) => failpoint,
        Err(reason) => {
            eprintln!("{reason}");
            db.cleanup().await;
            return;
        }
    };
    let (options, commands) = Commands::options(app).await;
    let err = builder(&db, options.clone()).build().await.unwrap_err();
    let message = err.to_string();
    assert!(err.is_index_conflict(), "{err}");
    assert!(
        message.contains("refused to change it in place"),
        "{message}"
    );
    assert!(message.contains("code 72"), "{message}");
    assert_eq!(seconds(&expires_index(&db).await.unwrap()), Some(3600));

    // The operator's calls: the plan says in place; ensuring it without
    // consent to recreate fails; with consent it reports the recreate.
    let tool = builder(&db, options.clone())
        .manage_collection(false)
        .build()
        .await
        .unwrap();
    let plan = tool.index_plan().await.unwrap();
    assert_eq!(plan.indexes[0].action, IndexAction::ChangeInPlace);
    assert!(tool
        .ensure_indexes(false)
        .await
        .unwrap_err()
        .is_index_conflict());
    let done = tool.ensure_indexes(true).await.unwrap();
    refuse.off().await;
    let expiry = &done.indexes[0];
    assert_eq!(
        (expiry.purpose, expiry.action),
        (IndexPurpose::Expiry, IndexAction::Replace)
    );
    assert_eq!(seconds(&expires_index(&db).await.unwrap()), Some(0));
    assert_eq!(commands.sent("dropIndexes"), 1);
    db.cleanup().await;
}

/// Instances of one configuration starting at once on a disagreeing index
/// all build, and the collection ends with the index they want (they race
/// to drop it: an index another one dropped first is as good).
#[tokio::test]
async fn instances_starting_together_end_with_the_one_index_they_want() {
    const INSTANCES: usize = 4;
    let db = TestDb::new("ttltwo").await;
    create(
        &db,
        doc! {"key": {"expires": 1}, "name": "expires_1", "expireAfterSeconds": 0,
        "partialFilterExpression": {"kind": "web"}},
    )
    .await;
    let (options, _) = Commands::options("ttltwo").await;
    let instance = || {
        builder(&db, options.clone())
            .expire_after(Duration::from_secs(120))
            .index_repair(IndexRepair::Recreate)
            .build()
    };
    let built = futures_util::future::join_all((0..INSTANCES).map(|_| instance())).await;
    for store in built {
        store.unwrap();
    }
    let index = expires_index(&db).await.unwrap();
    assert_eq!(seconds(&index), Some(120));
    assert!(!index.contains_key("partialFilterExpression"));

    let instance = || {
        builder(&db, options.clone())
            .expire_after(Duration::from_secs(300))
            .build()
    };
    let built = futures_util::future::join_all((0..INSTANCES).map(|_| instance())).await;
    for store in built {
        store.unwrap();
    }
    assert_eq!(seconds(&expires_index(&db).await.unwrap()), Some(300));
    db.cleanup().await;
}

#[tokio::test]
async fn an_expire_after_past_what_mongodb_accepts_is_refused_before_connecting() {
    let err = MongoSessionStore::from_uri("mongodb://127.0.0.1:1/app")
        .expire_after(Duration::from_secs(u64::from(u32::MAX)))
        .build()
        .await
        .unwrap_err();
    assert!(err.is_config(), "{err}");
    assert!(err.to_string().contains("2147483647"), "{err}");
}
