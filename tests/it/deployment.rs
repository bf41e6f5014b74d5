//! What `docs/deployment.md` recommends, one test per recommendation (the
//! guide names each test beside what it recommends), and the two
//! measurements it quotes (sizes, and the cost of a write concern), on a
//! real server.

use std::time::{Duration, Instant, SystemTime};

use futures_util::{StreamExt, TryStreamExt};
use mongodb::{
    bson::{doc, Bson, Document},
    options::{Acknowledgment, WriteConcern},
    Client,
};
use mongodb_session_store::{
    admin::CacheMode, session::SaveOutcome, session::USER_KEY, Codec, ConflictPolicy, KeyRing,
    MongoSessionStore, ReadCache, StoreBuilder, UserInfo,
};
use serde_json::{json, Map, Value};
use testkit::{CommandLog, Proxy, TestDb};

use crate::common::{
    builder, expire_after_seconds, in_an_hour, index_on, indexes, instance, loaded, map,
    new_session, Build,
};

/// The connection-string options the guide recommends for a replica set,
/// a sharded cluster and Atlas.
const RECOMMENDED: &str = "w=majority&journal=true&readPreference=primary&retryWrites=true";

/// `db`'s URI with `params` added to its query.
fn uri_with(db: &TestDb, params: &str) -> String {
    let base = db.uri();
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}{params}")
}

/// `uri` parsed, with every command the client starts recorded.
async fn recorded(uri: &str) -> (mongodb::options::ClientOptions, CommandLog) {
    CommandLog::options(uri, None).await
}

/// The commands `log` recorded on the `sessions` collection, one of
/// `names`.
fn on_sessions(log: &CommandLog, names: &[&str]) -> Vec<(String, Document)> {
    let all = log.all().into_iter();
    all.filter(|(name, body)| {
        names.contains(&name.as_str()) && body.get_str(name.as_str()) == Ok("sessions")
    })
    .collect()
}

/// The writes `log` recorded on the `sessions` collection.
fn writes(log: &CommandLog) -> Vec<(String, Document)> {
    on_sessions(log, &["insert", "update", "delete", "findAndModify"])
}

/// Creates, reads, changes, touches and deletes one session, checking each
/// answer: the whole life of a session, one call of each kind.
async fn one_session_lifecycle(store: &MongoSessionStore) {
    let id = new_session(store, json!({"cart": [1]}), in_an_hour()).await;
    let mut data = loaded(store, &id).await;
    data.insert("theme".into(), json!("dark"));
    let saved = store.save(&id, &data, in_an_hour()).await.unwrap();
    assert_eq!(saved, SaveOutcome::Updated);
    let loaded = store.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.data.get("theme"), Some(&json!("dark")));
    let later = SystemTime::now() + Duration::from_secs(7200);
    assert!(store.touch(&id, Some(later)).await.unwrap());
    assert!(store.delete(&id).await.unwrap());
    assert!(store.load(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn recommended_uri_options_reach_every_write() {
    let db = TestDb::new("deployrecommended").await;
    let (options, log) = recorded(&uri_with(&db, RECOMMENDED)).await;
    let store = MongoSessionStore::from_client_options(options)
        .built()
        .await;
    one_session_lifecycle(&store).await;
    let writes = writes(&log);
    assert!(
        writes.len() >= 4,
        "insert, update, touch, delete: {writes:?}"
    );
    for (name, body) in &writes {
        let concern = body.get_document("writeConcern").ok();
        assert_eq!(
            concern,
            Some(&doc! {"w": "majority", "j": true}),
            "{name}: {body}"
        );
        // A transaction number is what makes the driver's one retry after a
        // failover safe: the server applies the write once.
        assert!(body.contains_key("txnNumber"), "not retryable: {body}");
    }
    store.close().await;
}

#[tokio::test]
async fn write_concern_majority_through_the_builder_reaches_every_write() {
    let db = TestDb::new("deploymajority").await;
    let (options, log) = recorded(&db.uri()).await;
    let client = Client::with_options(options).unwrap();
    let majority = WriteConcern::builder()
        .w(Acknowledgment::Majority)
        .journal(true)
        .build();
    let store = MongoSessionStore::from_client(client).write_concern(majority);
    let store = store.built().await;
    one_session_lifecycle(&store).await;
    let writes = writes(&log);
    assert!(writes.len() >= 4, "{writes:?}");
    for (name, body) in writes {
        let concern = body.get_document("writeConcern").ok();
        assert_eq!(concern, Some(&doc! {"w": "majority", "j": true}), "{name}");
    }
}

/// `uri` without `directConnection=true`, so the driver sees the replica
/// set (the test server advertises a one-member set) and honours read
/// preferences.
fn discovering(uri: &str) -> String {
    let (head, query) = uri.split_once('?').unwrap_or((uri, ""));
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.eq_ignore_ascii_case("directConnection=true"))
        .collect();
    if kept.is_empty() {
        head.to_string()
    } else {
        format!("{head}?{}", kept.join("&"))
    }
}

#[tokio::test]
async fn a_client_reading_from_secondaries_still_reads_its_own_writes() {
    let db = TestDb::new("deploysecondary").await;
    let uri = discovering(&uri_with(
        &db,
        "readPreference=secondary&serverSelectionTimeoutMS=2000",
    ));
    let (options, log) = recorded(&uri).await;
    let client = Client::with_options(options).unwrap();
    let store = MongoSessionStore::from_client(client.clone()).built().await;
    for n in 0..10 {
        let id = new_session(&store, json!({"n": n}), in_an_hour()).await;
        let mut data = loaded(&store, &id).await;
        data.insert("n".into(), json!(n + 100));
        store.save(&id, &data, in_an_hour()).await.unwrap();
        let loaded = store.load(&id).await.unwrap().unwrap();
        assert_eq!(
            loaded.data.get("n"),
            Some(&json!(n + 100)),
            "read-your-writes"
        );
    }
    let finds = on_sessions(&log, &["find"]);
    assert!(!finds.is_empty());
    for (_, body) in finds {
        let mode = body
            .get_document("$readPreference")
            .ok()
            .and_then(|p| p.get_str("mode").ok());
        assert!(
            matches!(mode, None | Some("primary")),
            "a session read went to {mode:?}: {body}"
        );
    }
    // The client's own default really is a secondary: on a one-member set
    // (this server), its own reads find no server at all.
    let hello = client
        .database("admin")
        .run_command(doc! {"hello": 1})
        .await
        .unwrap();
    let members = hello.get_array("hosts").map_or(1, Vec::len);
    let own = client
        .database(&db.name)
        .collection::<Document>("sessions")
        .find_one(doc! {})
        .await;
    if members == 1 {
        let err = own.expect_err("a secondary read on a set without secondaries");
        eprintln!("the client's own secondary read: {err}");
    }
}

/// Whether `filter` selects one document by `_id` equality, the only
/// filter a hashed `_id` shard key routes to a single shard.
fn by_id(filter: &Document) -> bool {
    matches!(filter.get("_id"), Some(Bson::String(_)))
}

/// The filters (or inserted documents) of every statement of `body`.
fn statements(name: &str, body: &Document) -> Vec<Document> {
    let list = |field: &str, inner: &str| -> Vec<Document> {
        body.get_array(field)
            .unwrap()
            .iter()
            .map(|s| {
                let s = s.as_document().unwrap();
                if inner.is_empty() {
                    s.clone()
                } else {
                    s.get_document(inner).unwrap().clone()
                }
            })
            .collect()
    };
    match name {
        "find" => vec![body.get_document("filter").unwrap().clone()],
        "findAndModify" => vec![body.get_document("query").unwrap().clone()],
        "insert" => list("documents", ""),
        "update" => list("updates", "q"),
        "delete" => list("deletes", "q"),
        other => panic!("unexpected command {other}"),
    }
}

/// A store on `client` for every write path: per-key updates, the
/// version-checked one, the compare-and-swap of an opaque codec, the
/// server-capped expiry of an absolute lifetime (a pipeline update), and
/// encryption.
async fn on_every_write_path(db: &TestDb, client: &Client) -> [MongoSessionStore; 5] {
    let builder = || MongoSessionStore::from_client(client.clone()).database(&db.name);
    let day = Duration::from_secs(86_400);
    let ring = KeyRing::new(1, [1u8; 32]).unwrap();
    [
        builder().built().await,
        builder().on_conflict(ConflictPolicy::Fail).built().await,
        builder().codec(Codec::JsonString).built().await,
        builder().absolute_timeout(day).built().await,
        builder().encryption(ring).built().await,
    ]
}

/// Two sessions of user "ada" on `store`, a phone's and a laptop's: the
/// phone's handle.
async fn two_devices_of_ada(store: &MongoSessionStore) -> String {
    let owned = |agent: &str| {
        let info = UserInfo::new("ada").user_agent(agent);
        json!({"n": 1, USER_KEY: info.to_value()})
    };
    let phone = new_session(store, owned("phone"), in_an_hour()).await;
    new_session(store, owned("laptop"), in_an_hour()).await;
    store.load(&phone).await.unwrap().unwrap().handle
}

#[tokio::test]
async fn per_session_operations_select_by_id_equality_and_user_operations_do_not() {
    let db = TestDb::new("deployshardkey").await;
    let (options, log) = recorded(&db.uri()).await;
    let client = Client::with_options(options).unwrap();
    let stores = on_every_write_path(&db, &client).await;
    log.clear();
    for store in &stores {
        one_session_lifecycle(store).await;
    }
    let commands = on_sessions(
        &log,
        &["find", "insert", "update", "delete", "findAndModify"],
    );
    assert!(commands.len() >= 5 * 6, "{commands:?}");
    for (name, body) in &commands {
        for filter in statements(name, body) {
            assert!(by_id(&filter), "{name} does not select by _id: {filter}");
        }
    }

    // A user's sessions are found by owner: on a collection sharded by
    // hashed _id that query goes to every shard.
    let store = &stores[0];
    let keep = two_devices_of_ada(store).await;
    log.clear();
    let listed = store.user_sessions("ada", Some(&keep)).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(store.revoke_others("ada", &keep).await.unwrap(), 1);
    for (name, body) in on_sessions(&log, &["find", "delete"]) {
        for filter in statements(&name, &body) {
            if name == "delete" {
                // The revocation itself deletes by id: mongos sends each
                // delete only to the shard that owns it.
                assert!(by_id(&filter), "{filter}");
            } else {
                assert_eq!(filter.get_str("user"), Ok("ada"), "{name}: {filter}");
                assert!(!filter.contains_key("_id"), "{filter}");
            }
        }
    }
}

/// The plan the server chose for a command the store sent (`explain`,
/// without the driver's session and concern fields), or `None` where the
/// server does not explain.
async fn winning_plan(db: &TestDb, body: &Document) -> Option<Document> {
    let mut inner = Document::new();
    for (key, value) in body {
        let generic = matches!(
            key.as_str(),
            "lsid" | "txnNumber" | "writeConcern" | "readConcern" | "apiVersion"
        );
        if !key.starts_with('$') && !generic {
            inner.insert(key, value.clone());
        }
    }
    let explain = doc! {"explain": inner, "verbosity": "queryPlanner"};
    match db.database().run_command(explain).await {
        Ok(reply) => reply
            .get_document("queryPlanner")
            .and_then(|planner| planner.get_document("winningPlan"))
            .ok()
            .cloned(),
        Err(e) => {
            eprintln!("skipped: the server does not explain: {e}");
            None
        }
    }
}

/// Whether `plan` reads one document through `_id`: on a sharded cluster,
/// from one shard; elsewhere, through the `_id` index.
fn reads_by_id(plan: &Document) -> bool {
    match plan.get_array("shards") {
        Ok(shards) => shards.len() == 1,
        Err(_) => {
            let text = plan.to_string();
            text.contains("\"_id_\"") || text.contains("IDHACK")
        }
    }
}

/// On a sharded cluster (`MONGODB_URI` naming a `mongos`), shards the
/// sessions collection as the guide recommends; elsewhere does nothing.
async fn shard_as_recommended(db: &TestDb) {
    let admin = db.client.database("admin");
    let hello = admin.run_command(doc! {"hello": 1}).await.unwrap();
    if hello.get_str("msg") != Ok("isdbgrid") {
        return;
    }
    // Needed before MongoDB 6.0, harmless after.
    let _ = admin.run_command(doc! {"enableSharding": &db.name}).await;
    let namespace = format!("{}.sessions", db.name);
    let shard = doc! {"shardCollection": namespace, "key": {"_id": "hashed"}};
    admin
        .run_command(shard)
        .await
        .expect("sharding the collection");
}

#[tokio::test]
async fn the_server_plans_session_operations_on_id_and_owner_lookups_on_the_user_index() {
    let db = TestDb::new("deployexplain").await;
    shard_as_recommended(&db).await;
    let (options, log) = recorded(&db.uri()).await;
    let client = Client::with_options(options).unwrap();
    let day = Duration::from_secs(86_400);
    let store = MongoSessionStore::from_client(client).absolute_timeout(day);
    let store = store.built().await;
    // Other owners' sessions, all live: the expiry index cannot narrow a
    // lookup by owner, the owner index can.
    for n in 0..40 {
        let info = UserInfo::new(format!("user{n}"));
        let data = json!({"n": n, USER_KEY: info.to_value()});
        new_session(&store, data, in_an_hour()).await;
    }
    log.clear();
    one_session_lifecycle(&store).await;
    let per_session = on_sessions(&log, &["find", "update", "delete"]);
    assert!(per_session.len() >= 4, "{per_session:?}");
    for (name, body) in &per_session {
        let Some(plan) = winning_plan(&db, body).await else {
            return;
        };
        assert!(reads_by_id(&plan), "{name} planned as {plan}");
    }

    log.clear();
    let info = UserInfo::new("ada");
    let data = json!({"n": 1, USER_KEY: info.to_value()});
    new_session(&store, data, in_an_hour()).await;
    log.clear();
    assert_eq!(store.user_sessions("ada", None).await.unwrap().len(), 1);
    let (_, lookup) = on_sessions(&log, &["find"])
        .pop()
        .expect("the owner lookup");
    let plan = winning_plan(&db, &lookup).await.expect("explained above");
    match plan.get_array("shards") {
        // Scatter-gather on a cluster: every shard, each on its own index.
        Ok(shards) => {
            for shard in shards {
                let shard = shard.as_document().unwrap().to_string();
                assert!(shard.contains("user_1"), "{shard}");
            }
        }
        Err(_) => assert!(plan.to_string().contains("user_1"), "{plan}"),
    }
}

#[tokio::test]
async fn build_creates_the_ttl_and_user_indexes_the_guide_lists() {
    let db = TestDb::new("deployindexes").await;
    builder(&db).built().await;
    let indexes = indexes(&db).await;
    let on = |field: &str| {
        indexes
            .iter()
            .find(|ix| ix.get_document("key").unwrap() == &doc! {field: 1})
            .unwrap_or_else(|| panic!("no index on {field}: {indexes:?}"))
    };
    let ttl = on("expires");
    assert_eq!(expire_after_seconds(ttl), Some(0), "{ttl}");
    let user = on("user");
    assert_eq!(
        user.get_document("partialFilterExpression").ok(),
        Some(&doc! {"user": {"$exists": true}}),
        "{user}"
    );
    assert!(!user.contains_key("unique"), "{user}");
    assert_eq!(indexes.len(), 3, "_id, expires, user: {indexes:?}");
}

#[tokio::test]
async fn a_client_of_your_own_with_server_selection_below_the_operation_timeout_reports_an_outage_as_unreachable(
) {
    let proxy = match Proxy::start().await {
        Ok(proxy) => proxy,
        Err(reason) => return eprintln!("skipped: {reason}"),
    };
    let db = TestDb::new("deployselection").await;
    let operation_timeout = Duration::from_secs(5);
    let uri = format!(
        "{}&serverSelectionTimeoutMS=1000&serverMonitoringMode=poll",
        proxy.uri(&db.name)
    );
    let client = Client::with_uri_str(uri).await.unwrap();
    let store = MongoSessionStore::from_client(client).operation_timeout(operation_timeout);
    let store = store.connect_timeout(Duration::from_secs(5)).built().await;
    let id = store.create(&Map::new(), in_an_hour()).await.unwrap();
    proxy.cut();
    for _ in 0..3 {
        let started = Instant::now();
        let err = store.load(&id).await.unwrap_err();
        let took = started.elapsed();
        assert!(err.is_unreachable(), "{err}");
        assert!(err.is_transient(), "{err}");
        assert!(took < Duration::from_secs(3), "{took:?}: {err}");
    }
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store.load(&id).await {
            Ok(found) => break assert!(found.is_some()),
            Err(e) if Instant::now() > deadline => panic!("never recovered: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test]
async fn a_client_of_your_own_that_polls_retries_a_state_change_error_at_once() {
    let db = TestDb::new("deploypoll").await;
    let app = format!("deploy-poll-{}", db.name);
    let uri = uri_with(&db, &format!("appName={app}&serverMonitoringMode=poll"));
    let client = Client::with_uri_str(uri).await.unwrap();
    let store = MongoSessionStore::from_client(client)
        .operation_timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    let id = store
        .create(&map(json!({"n": 1})), in_an_hour())
        .await
        .unwrap();
    // What a step-down answers the request in flight; without a real state
    // change, a streaming monitor would not look again for 10 s (this test
    // with serverMonitoringMode=stream times out at the 5 s bound).
    let point = testkit::fault::FailPoint::fail_command(
        &db.client,
        &app,
        &["find"],
        testkit::fault::Times::Next(1),
        doc! {"errorCode": 10107},
    )
    .await;
    let point = match point {
        Ok(point) => point,
        Err(reason) => return eprintln!("{reason}"),
    };
    let started = Instant::now();
    let loaded = store.load(&id).await;
    let took = started.elapsed();
    point.off().await;
    assert!(loaded.unwrap().is_some());
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// The key id of every ciphertext in the collection, per document.
async fn key_ids(db: &TestDb) -> Vec<Vec<u32>> {
    db.documents("sessions")
        .await
        .iter()
        .map(|document| {
            document
                .get_document("data")
                .unwrap()
                .iter()
                .map(|(_, value)| match value {
                    Bson::Binary(b) => u32::from_be_bytes(b.bytes[1..5].try_into().unwrap()),
                    other => panic!("not a ciphertext: {other}"),
                })
                .collect()
        })
        .collect()
}

/// How many documents hold at least one value under key `id`.
async fn documents_under(db: &TestDb, id: u32) -> usize {
    key_ids(db)
        .await
        .iter()
        .filter(|keys| keys.contains(&id))
        .count()
}

const OLD_KEY: [u8; 32] = [1; 32];
const NEW_KEY: [u8; 32] = [2; 32];

#[tokio::test]
async fn key_rotation_runbook_retires_the_old_key_without_logging_anyone_out() {
    let db = TestDb::new("deployrotation").await;
    let instance = |ring: KeyRing| builder(&db).encryption(ring).built();
    let before = instance(KeyRing::new(1, OLD_KEY).unwrap()).await;
    let mut ids = Vec::new();
    for n in 0..12 {
        let data = json!({"n": n, "theme": "dark"});
        ids.push((new_session(&before, data, in_an_hour()).await, n));
    }

    // Step 1: every instance learns the new key, still encrypting with the
    // old one.
    let step1 = KeyRing::new(1, OLD_KEY).unwrap().with_key(2, NEW_KEY);
    let step1 = instance(step1.unwrap()).await;
    // Step 2, rolling: the new key becomes the primary, one instance at a
    // time. What the upgraded instances write, the others still read.
    let step2 = KeyRing::new(1, OLD_KEY).unwrap().with_primary(2, NEW_KEY);
    let step2 = instance(step2.unwrap()).await;
    let during = new_session(&step2, json!({"n": 100}), in_an_hour()).await;
    let on_step1 = step1.load(&during).await.unwrap().unwrap();
    assert_eq!(on_step1.data.get("n"), Some(&json!(100)));
    // Skipping step 1 is the mistake the runbook prevents: an instance
    // that does not hold the new key cannot read what the others write.
    let err = before.load(&during).await.unwrap_err();
    assert!(err.is_decode(), "{err}");

    // A session's own next write moves it to the new key.
    let (first, _) = &ids[0];
    let data = loaded(&step2, first).await;
    step2.save(first, &data, in_an_hour()).await.unwrap();
    let under_the_old = documents_under(&db, 1).await;
    assert_eq!(under_the_old, 11, "12 minus the one written");

    // Step 3: rewrap the rest, until nothing is left under the old key.
    let report = step2.rewrap().await.unwrap();
    assert_eq!(
        (report.examined, report.rewrapped, report.undecodable),
        (13, 11, 0)
    );
    assert_eq!(documents_under(&db, 1).await, 0);
    assert_eq!(step2.rewrap().await.unwrap().rewrapped, 0, "nothing left");

    // Step 4: the old key goes; every session still loads.
    let after = instance(KeyRing::new(2, NEW_KEY).unwrap()).await;
    for (id, n) in &ids {
        let loaded = after.load(id).await.unwrap().expect("still logged in");
        assert_eq!(loaded.data.get("n"), Some(&json!(n)));
    }
    assert!(after.load(&during).await.unwrap().is_some());
}

#[tokio::test]
async fn the_id_hash_key_cannot_be_rotated_changing_it_ends_every_session() {
    let db = TestDb::new("deployidhashkey").await;
    let keyed = |secret: &'static str| builder(&db).id_hash_key(secret).built();
    let old = keyed("old secret").await;
    let id = new_session(&old, json!({"n": 1}), in_an_hour()).await;
    let new = keyed("new secret").await;
    assert!(new.load(&id).await.unwrap().is_none(), "orphaned");
    assert!(old.load(&id).await.unwrap().is_some(), "still stored");
}

/// Store options on top of a builder.
type Profile = fn(StoreBuilder) -> StoreBuilder;

/// A service without retryable writes or usable change streams: the URI
/// turns retryable writes off and the cache relies on its staleness bound.
async fn without_retries_or_streams(db: &TestDb, profile: Profile) {
    let (options, log) = recorded(&uri_with(db, "retryWrites=false")).await;
    let builder = MongoSessionStore::from_client_options(options)
        .cache(ReadCache::new().change_streams(false));
    let store = profile(builder).built().await;
    assert_eq!(store.cache_mode(), Some(CacheMode::StalenessBound));
    one_session_lifecycle(&store).await;
    let writes = writes(&log);
    assert!(writes.len() >= 4, "{writes:?}");
    for (name, body) in writes {
        assert!(
            !body.contains_key("txnNumber"),
            "{name} is retryable: {body}"
        );
    }
    store.close().await;
}

/// The `expireAfterSeconds` of the index on `field`; `None` if there is no
/// such index or it is no TTL index.
async fn ttl_index_on(db: &TestDb, field: &str) -> Option<i64> {
    expire_after_seconds(&index_on(db, field).await?)
}

#[tokio::test]
async fn the_cosmos_db_profile_works_without_retryable_writes_or_change_streams() {
    let db = TestDb::new("deploycosmos").await;
    without_retries_or_streams(&db, |b| {
        b.cosmos_db().idle_timeout(Duration::from_secs(86_400))
    })
    .await;
    assert_eq!(ttl_index_on(&db, "_ts").await, Some(86_400));
    assert_eq!(ttl_index_on(&db, "expires").await, None);
}

#[tokio::test]
async fn the_documentdb_profile_works_without_retryable_writes_or_change_streams() {
    let db = TestDb::new("deploydocumentdb").await;
    without_retries_or_streams(&db, |b| b).await;
    assert_eq!(ttl_index_on(&db, "expires").await, Some(0));
}

// ---------------------------------------------------------------------------
// Measurements quoted by the guide. They assert only what must hold on any
// server; the figures are printed (run with `--nocapture`).

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                      (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// A signed-in visitor's session: who they are, a CSRF token, two
/// preferences, a small cart, where they were, and the owner fields.
fn typical(i: usize) -> Map<String, Value> {
    let user = format!("user-{i:07}");
    let info = UserInfo::new(&user).user_agent(CHROME).ip("203.0.113.7");
    map(json!({
        "user_id": user,
        "csrf": "hWk1v6oZ0oQ3a2m8mE4u3s4d2nq7YgGk9tE0wq1pXyA",
        "locale": "en-GB",
        "theme": "dark",
        "cart": [{"sku": "SKU-10492", "qty": 2}, {"sku": "SKU-20017", "qty": 1}],
        "last_path": "/account/orders?page=2",
        USER_KEY: info.to_value(),
    }))
}

fn sessions_to_measure() -> usize {
    std::env::var("DEPLOYMENT_SIZING_SESSIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

/// The server's statistics for `collection`: `collStats` where the server
/// has it, else the `$collStats` stage, else nothing.
async fn server_stats(db: &TestDb, collection: &str) -> Option<Document> {
    if let Ok(stats) = db
        .database()
        .run_command(doc! {"collStats": collection})
        .await
    {
        return Some(stats);
    }
    let pipeline = [doc! {"$collStats": {"storageStats": {}}}];
    let mut cursor = db.collection(collection).aggregate(pipeline).await.ok()?;
    let first = cursor.try_next().await.ok()??;
    first.get_document("storageStats").ok().cloned()
}

fn number(stats: &Document, field: &str) -> Option<f64> {
    match stats.get(field)? {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(n) => Some(*n),
        _ => None,
    }
}

/// Average, and largest, BSON size of the documents of `collection`.
async fn bson_sizes(db: &TestDb, collection: &str) -> (f64, usize) {
    let documents = db.documents(collection).await;
    let sizes: Vec<usize> = documents
        .iter()
        .map(|d| mongodb::bson::to_vec(d).unwrap().len())
        .collect();
    let total: usize = sizes.iter().sum();
    (
        total as f64 / sizes.len() as f64,
        sizes.into_iter().max().unwrap(),
    )
}

#[tokio::test]
async fn sizing_bytes_per_session_and_index_sizes() {
    let db = TestDb::new("deploysizing").await;
    let n = sessions_to_measure();
    let variants: [(&str, Profile); 3] = [
        ("hashed ids (default)", |b| b),
        ("hashed ids + encryption", |b| {
            b.encryption(KeyRing::new(1, [7u8; 32]).unwrap())
        }),
        ("raw ids (hash_ids(false))", |b| b.hash_ids(false)),
    ];
    let mut averages = Vec::new();
    for (i, (label, profile)) in variants.into_iter().enumerate() {
        let collection = format!("sessions{i}");
        let builder = builder(&db).collection(&collection);
        let store = profile(builder).built().await;
        futures_util::stream::iter(0..n)
            .map(|k| {
                let store = &store;
                async move { store.create(&typical(k), in_an_hour()).await.unwrap() }
            })
            .buffer_unordered(32)
            .for_each(|_| async {})
            .await;
        let (average, largest) = bson_sizes(&db, &collection).await;
        averages.push(average);
        let per_gib = (1u64 << 30) as f64 / average;
        println!(
            "sizing {label}: {n} sessions, {average:.0} B average BSON (max {largest}), \
             {per_gib:.0} documents per GiB of BSON"
        );
        match server_stats(&db, &collection).await {
            Some(stats) => {
                let get = |f: &str| number(&stats, f).map_or("-".into(), |v| format!("{v:.0}"));
                let indexes = stats
                    .get_document("indexSizes")
                    .map(|d| d.to_string())
                    .unwrap_or_default();
                println!(
                    "sizing {label}: collStats count {} size {} avgObjSize {} storageSize {} \
                     totalIndexSize {} indexSizes {indexes}",
                    get("count"),
                    get("size"),
                    get("avgObjSize"),
                    get("storageSize"),
                    get("totalIndexSize"),
                );
            }
            None => println!("sizing {label}: the server has neither collStats nor $collStats"),
        }
    }
    // What holds anywhere: a typical session is a few hundred bytes, and
    // encryption makes it bigger (a nonce, a tag and a key id per value).
    assert!((300.0..2000.0).contains(&averages[0]), "{averages:?}");
    assert!(averages[1] > averages[0], "{averages:?}");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank]
}

#[tokio::test]
async fn write_concern_cost_per_save_on_this_server() {
    let db = TestDb::new("deploywcost").await;
    let concerns = [
        (
            "w:1",
            WriteConcern::builder().w(Acknowledgment::Nodes(1)).build(),
        ),
        (
            "w:1, j:true",
            WriteConcern::builder()
                .w(Acknowledgment::Nodes(1))
                .journal(true)
                .build(),
        ),
        (
            "w:majority, j:true",
            WriteConcern::builder()
                .w(Acknowledgment::Majority)
                .journal(true)
                .build(),
        ),
    ];
    let mut stores = Vec::new();
    for (label, concern) in concerns {
        let store = instance(&db).write_concern(concern).built().await;
        let id = store.create(&typical(0), in_an_hour()).await.unwrap();
        let data = loaded(&store, &id).await;
        stores.push((label, store, id, data, Vec::new()));
    }
    let rounds = sessions_to_measure() / 2;
    // Round-robin, so that drift in the machine's load hits every concern.
    for round in 0..rounds {
        for (_, store, id, data, latencies) in &mut stores {
            data.insert("n".into(), json!(round));
            let started = Instant::now();
            let outcome = store.save(id, data, in_an_hour()).await.unwrap();
            latencies.push(started.elapsed());
            assert_eq!(outcome, SaveOutcome::Updated);
        }
    }
    for (label, store, _, _, mut latencies) in stores {
        latencies.sort();
        println!(
            "write concern {label}: {rounds} saves, median {:?}, p99 {:?}",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
        store.close().await;
    }
}
