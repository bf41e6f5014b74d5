//! Issue 23 item 3: the document format. Every layout this crate ever wrote
//! (tests/fixtures/formats, written by the commits that wrote them) loads
//! and is upgraded by its next write; a document of a newer format is
//! answered with a typed error and left untouched by every write path; an
//! instance writing format 1 and one writing format 2 share sessions both
//! ways.

use std::time::SystemTime;

use base64::Engine as _;
use futures_util::StreamExt;
use mongodb::{
    bson::{doc, Bson, DateTime, Document},
    Collection,
};
use mongodb_session_store::{
    session::SaveOutcome, session::LIFETIME_KEY, Codec, ConflictPolicy, DocumentFormat, KeyRing,
    MongoSessionStore, SessionLifetime, StoreBuilder, UserInfo,
};
use serde_json::{json, Map, Value};
use testkit::TestDb;

use crate::common::{
    builder, data, hours, loaded, map, new_session, raw, set_fields, Build, DAY, HOUR,
};

fn key_ring(encryption: &Value) -> KeyRing {
    let decode = |b64: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap()
    };
    let primary = encryption["primary"].as_u64().unwrap() as u32;
    let keys = encryption["keys"].as_array().unwrap();
    let key = |id: u32| {
        let entry = keys.iter().find(|k| k[0].as_u64() == Some(u64::from(id)));
        decode(&entry.unwrap()[1])
    };
    let mut ring = KeyRing::new(primary, key(primary)).unwrap();
    for entry in keys {
        let id = entry[0].as_u64().unwrap() as u32;
        if id != primary {
            ring = ring.with_key(id, decode(&entry[1])).unwrap();
        }
    }
    ring
}

/// A store configured as a fixture's `read_with` says.
fn configured(builder: StoreBuilder, read_with: &Value) -> StoreBuilder {
    let mut builder = builder;
    if read_with["hash_ids"] == json!(false) {
        builder = builder.hash_ids(false);
    }
    if read_with["codec"] == json!("json_string") {
        builder = builder.codec(Codec::JsonString);
    }
    if read_with["timestamps"] == json!(false) {
        builder = builder.timestamps(false);
    }
    if let Some(secret) = read_with["id_hash_key"].as_str() {
        builder = builder.id_hash_key(secret);
    }
    if read_with["encryption"].is_object() {
        builder = builder.encryption(key_ring(&read_with["encryption"]));
    }
    builder
}

/// Every fixture, by name.
fn fixtures() -> Vec<Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/formats");
    let mut fixtures: Vec<Value> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap())
        .collect();
    fixtures.sort_by_key(|f| f["name"].as_str().unwrap().to_string());
    fixtures
}

/// The fixture's document, its dates moved so that it is live now (the
/// gaps between them kept; dates are outside every ciphertext's binding).
fn rebased(fixture: &Value) -> Document {
    let Bson::Document(mut document) = Bson::try_from(fixture["document"].clone()).unwrap() else {
        panic!("a document")
    };
    let shift = |name: &str, document: &mut Document, to: DateTime| {
        if document.contains_key(name) {
            document.insert(name, to);
        }
    };
    let now = SystemTime::now();
    let (later, earlier) = (now + HOUR, now - HOUR);
    shift("expires", &mut document, DateTime::from_system_time(later));
    shift(
        "createdAt",
        &mut document,
        DateTime::from_system_time(earlier),
    );
    let modified = DateTime::from_system_time(earlier);
    shift("lastModified", &mut document, modified);
    document
}

fn data_names(document: &Document) -> Vec<String> {
    match document.get("data") {
        Some(Bson::Document(data)) => data.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// An owner as JSON, as a fixture lists it (`null` for none).
fn owner(user: Option<&UserInfo>) -> Value {
    user.map(UserInfo::to_value).unwrap_or(Value::Null)
}

/// Loads the fixture's session `id` and checks that it holds what the
/// fixture says (its data, its owner, no lifetime of its own): the map a
/// request would save back.
async fn loaded_as_written(
    store: &MongoSessionStore,
    fixture: &Value,
    id: &str,
) -> Map<String, Value> {
    let name = fixture["name"].as_str().unwrap();
    let loaded = store
        .load(id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{name}: not found"));
    let data = Value::Object(loaded.data.clone());
    assert_eq!(data, fixture["data"], "{name}: data");
    assert_eq!(
        owner(loaded.user.as_ref()),
        fixture["user"],
        "{name}: owner"
    );
    assert_eq!(loaded.lifetime, None, "{name}");
    loaded.into_map()
}

/// Changes the fixture's session (a key added, one removed) and checks that
/// the write upgraded its document and kept its data and owner: the
/// document as written.
async fn changed_and_upgraded(
    store: &MongoSessionStore,
    sessions: &Collection<Document>,
    fixture: &Value,
    id: &str,
) -> Document {
    let name = fixture["name"].as_str().unwrap();
    let mut changed = loaded(store, id).await;
    changed.insert("upgraded".into(), json!(true));
    changed.remove("n");
    let outcome = store.save(id, &changed, hours(2)).await.unwrap();
    assert_eq!(outcome, SaveOutcome::Updated, "{name}");
    let written = sessions.find_one(doc! {}).await.unwrap().unwrap();
    assert_eq!(written.get("format"), Some(&Bson::Int32(2)), "{name}");
    let mut expected = map(fixture["data"].clone());
    expected.insert("upgraded".into(), json!(true));
    expected.remove("n");
    let reloaded = store.load(id).await.unwrap().unwrap();
    assert_eq!(reloaded.data, expected, "{name}: after the upgrade");
    assert_eq!(owner(reloaded.user.as_ref()), fixture["user"], "{name}");
    written
}

#[tokio::test]
async fn every_earlier_format_loads_and_is_upgraded_by_its_next_writes() {
    let all = fixtures();
    assert!(all.len() >= 9, "a fixture of every layout: {}", all.len());
    for fixture in all {
        let name = fixture["name"].as_str().unwrap();
        let db = TestDb::new(&format!("fmt{}", name.replace('-', ""))).await;
        let store = configured(builder(&db), &fixture["read_with"]);
        let store = store.built().await;
        let original = rebased(&fixture);
        let sessions = db.collection("sessions");
        sessions.insert_one(original.clone()).await.unwrap();
        let id = fixture["id"].as_str().unwrap();
        let tracked = loaded_as_written(&store, &fixture, id).await;

        // An unchanged save (a touch) upgrades the document...
        let outcome = store.save(id, &tracked, hours(2)).await.unwrap();
        assert_eq!(outcome, SaveOutcome::Touched, "{name}");
        let touched = sessions.find_one(doc! {}).await.unwrap().unwrap();
        let format = touched.get("format");
        assert_eq!(format, Some(&Bson::Int32(2)), "{name}: {touched}");

        // ... and so does a change, written per key (or swapped whole).
        let written = changed_and_upgraded(&store, &sessions, &fixture, id).await;
        if fixture["read_with"]["encryption"].is_object() {
            // Every value under the primary key and its current name: none
            // of the names the fixture used is left.
            let old = data_names(&original);
            let stale: Vec<_> = data_names(&written)
                .into_iter()
                .filter(|n| old.contains(n))
                .collect();
            assert!(
                stale.is_empty(),
                "{name}: still stored the old way: {stale:?}"
            );
        }
        // A key removed is removed under every name it had.
        let mut removed = loaded(&store, id).await;
        removed.remove("cart");
        store.save(id, &removed, hours(2)).await.unwrap();
        let data = data(&store, id).await;
        assert!(!data.contains_key("cart"), "{name}: {data:?}");
        store.close().await;
    }
}

/// Each instance loads the newer-format session `id` as a typed error that
/// says what it found and what it reads.
async fn loads_refuse_the_newer_format(instances: [&MongoSessionStore; 2], id: &str) {
    for instance in instances {
        let error = instance.load(id).await.unwrap_err();
        assert!(error.is_newer_format() && !error.is_decode(), "{error}");
        assert_eq!(error.found_format(), Some(99));
        let text = error.to_string();
        assert!(
            text.contains("newer mongodb-session-store (format 99)"),
            "{text}"
        );
        assert!(text.contains("reads formats up to 2"), "{text}");
    }
}

/// Every other operation meets the newer-format session `id` without
/// writing it: touches find nothing, rewrap counts it undecodable, a purge
/// leaves it, create never takes its id over, a listing reports it.
async fn nothing_else_writes_the_newer_format(
    store: &MongoSessionStore,
    v1: &MongoSessionStore,
    id: &str,
) {
    assert!(!store.touch(id, hours(5)).await.unwrap(), "touch");
    assert!(!v1.touch(id, hours(5)).await.unwrap(), "touch");
    let report = store.rewrap().await.unwrap();
    assert_eq!((report.rewrapped, report.undecodable), (0, 1), "rewrap");
    assert_eq!(store.delete_expired().await.unwrap(), 0);
    let taken = id.to_string();
    let mut ids = [taken, mongodb_session_store::id::generate_id()].into_iter();
    let plain = map(json!({"n": 3}));
    let other = store
        .create_with_ids(|| ids.next().unwrap(), &plain, hours(1))
        .await
        .unwrap();
    assert_ne!(other, id, "create never takes the id over");
    let listed: Vec<_> = store.all().await.unwrap().collect().await;
    assert!(listed
        .iter()
        .any(|item| item.as_ref().is_err_and(|e| e.is_newer_format())));
}

/// Through tower-sessions, a session of a newer format loads as an error,
/// not a fresh session whose cookie would replace the user's.
#[cfg(feature = "tower-sessions")]
async fn tower_answers_a_newer_format_with_an_error(db: &TestDb, store: &MongoSessionStore) {
    use tower_sessions_core::SessionStore as Tower;
    let record = crate::common::tower_session(store, json!({"n": 1})).await;
    let id = record.id.to_string();
    set_fields(db, store, &id, doc! { "format": 3 }).await;
    let error = Tower::load(store, &record.id).await.unwrap_err();
    assert!(error.to_string().contains("format 3"), "{error}");
}

#[tokio::test]
async fn a_newer_format_is_answered_with_a_typed_error_and_never_written() {
    let db = TestDb::new("fmtnewer").await;
    let ring = KeyRing::new(1, [3u8; 32]).unwrap();
    let build = || builder(&db).encryption(ring.clone());
    let store = build().built().await;
    let strict = build().on_conflict(ConflictPolicy::Fail).built().await;
    let v1 = build().document_format(DocumentFormat::V1).built().await;
    // Maps loaded before a newer release rewrote the session.
    let id = new_session(&store, json!({"n": 1, "cart": ["apple"]}), hours(1)).await;
    let tracked = loaded(&store, &id).await;
    let future = doc! { "format": 99, "future": { "meaning": "unknown" } };
    set_fields(&db, &store, &id, future).await;
    let newer = raw(&db, &store, &id).await;

    loads_refuse_the_newer_format([&store, &v1], &id).await;
    let mut changed = tracked.clone();
    changed.insert("n".into(), json!(2));
    let plain = map(json!({"n": 3}));
    for (what, instance, data) in [
        ("per key", &store, &changed),
        ("unchanged (a touch)", &store, &tracked),
        ("whole", &store, &plain),
        ("compare-and-swap", &strict, &changed),
        ("per key, writing format 1", &v1, &changed),
    ] {
        let error = instance.save(&id, data, hours(5)).await.unwrap_err();
        assert!(error.is_newer_format(), "{what}: {error}");
    }
    nothing_else_writes_the_newer_format(&store, &v1, &id).await;
    #[cfg(feature = "tower-sessions")]
    tower_answers_a_newer_format_with_an_error(&db, &store).await;

    let after = raw(&db, &store, &id).await;
    assert_eq!(
        after, newer,
        "a newer-format document left exactly as it was"
    );
}

/// Written by the format-1 instance: no `format`; the format-2 instance
/// reads it and upgrades it; the format-1 one reads that, and its writes
/// neither downgrade it nor lose the other's change.
async fn a_format_1_session_is_upgraded_and_never_downgraded(
    db: &TestDb,
    old: &MongoSessionStore,
    new: &MongoSessionStore,
) {
    let a = new_session(old, json!({"who": "old"}), hours(1)).await;
    assert!(!raw(db, old, &a).await.contains_key("format"));
    let mut by_new = loaded(new, &a).await;
    by_new.insert("by_new".into(), json!(1));
    new.save(&a, &by_new, hours(1)).await.unwrap();
    assert_eq!(raw(db, old, &a).await.get("format"), Some(&Bson::Int32(2)));
    let mut by_old = loaded(old, &a).await;
    by_old.insert("by_old".into(), json!(2));
    old.save(&a, &by_old, hours(1)).await.unwrap();
    let format = raw(db, old, &a).await.get("format").cloned();
    assert_eq!(format, Some(Bson::Int32(2)), "never downgraded");
    let data = data(new, &a).await;
    assert_eq!(
        Value::Object(data),
        json!({"who": "old", "by_new": 1, "by_old": 2})
    );
}

/// When a stored document expires.
fn expires_at(document: &Document) -> SystemTime {
    document.get_datetime("expires").unwrap().to_system_time()
}

/// A session with a lifetime of its own, written by the format-2 instance:
/// the format-1 instance honours it (it reads format 2), and keeps it
/// through a regeneration.
async fn an_own_lifetime_is_honoured_by_the_format_1_instance(
    db: &TestDb,
    old: &MongoSessionStore,
    new: &MongoSessionStore,
    remembered: SessionLifetime,
) {
    let mut data = map(json!({"who": "new"}));
    data.insert(LIFETIME_KEY.into(), remembered.to_value());
    let b = new.create(&data, hours(24 * 14)).await.unwrap();
    let on_old = old.load(&b).await.unwrap().unwrap();
    assert_eq!(on_old.lifetime, Some(remembered));
    let tracked = on_old.into_map();
    let outcome = old.save(&b, &tracked, hours(24 * 14)).await.unwrap();
    assert_eq!(outcome, SaveOutcome::Touched);
    let document = raw(db, old, &b).await;
    let within = expires_at(&document) < SystemTime::now() + 3 * HOUR;
    assert!(within, "its own window, not 14 days");
    assert_eq!(document.get("format"), Some(&Bson::Int32(2)));
    assert!(old.touch(&b, hours(24 * 14)).await.unwrap());
    let within = expires_at(&raw(db, old, &b).await) < SystemTime::now() + 3 * HOUR;
    assert!(within, "touch by id too");

    // The format-1 instance keeps it through a regeneration.
    let tracked = loaded(old, &b).await;
    assert!(old.delete(&b).await.unwrap());
    let c = old.create(&tracked, hours(24 * 14)).await.unwrap();
    let document = raw(db, old, &c).await;
    assert_eq!(document.get("format"), Some(&Bson::Int32(2)));
    assert!(document.contains_key("lifetime"));
}

/// The format-1 instance will not give a format-1 session a lifetime (an
/// instance of the release before would ignore it): nothing is written.
/// The format-2 instance may: the session is then format 2 for both.
async fn only_the_format_2_instance_gives_a_session_a_lifetime(
    db: &TestDb,
    old: &MongoSessionStore,
    new: &MongoSessionStore,
    remembered: SessionLifetime,
) {
    let d = new_session(old, json!({"x": 1}), hours(1)).await;
    let before = raw(db, old, &d).await;
    let mut tracked = loaded(old, &d).await;
    tracked.insert(LIFETIME_KEY.into(), remembered.to_value());
    tracked.insert("x".into(), json!(2));
    let error = old.save(&d, &tracked, hours(1)).await.unwrap_err();
    assert!(error.is_config(), "{error}");
    assert!(error.to_string().contains("DocumentFormat::V2"), "{error}");
    assert_eq!(raw(db, old, &d).await, before);
    let mut fresh = map(json!({"x": 1}));
    fresh.insert(LIFETIME_KEY.into(), remembered.to_value());
    assert!(old.create(&fresh, hours(1)).await.unwrap_err().is_config());
    let outcome = new.save(&d, &tracked, hours(1)).await.unwrap();
    assert_eq!(outcome, SaveOutcome::Updated);
    let on_old = old.load(&d).await.unwrap().unwrap();
    assert_eq!(on_old.lifetime, Some(remembered));
}

#[tokio::test]
async fn instances_writing_format_1_and_format_2_share_sessions_both_ways() {
    let db = TestDb::new("fmtmixed").await;
    let build = |format| {
        let builder = builder(&db).lifetime_limit(30 * DAY);
        builder.document_format(format).built()
    };
    let (old, new) = (
        build(DocumentFormat::V1).await,
        build(DocumentFormat::V2).await,
    );
    a_format_1_session_is_upgraded_and_never_downgraded(&db, &old, &new).await;
    let remembered = SessionLifetime::new().idle_timeout(2 * HOUR);
    an_own_lifetime_is_honoured_by_the_format_1_instance(&db, &old, &new, remembered).await;
    only_the_format_2_instance_gives_a_session_a_lifetime(&db, &old, &new, remembered).await;
}

/// The Express layouts are shared with a Node store that knows no format:
/// they write format 1, and store no lifetime of a session's own (the Node
/// side would ignore it).
#[cfg(feature = "express")]
#[tokio::test]
async fn express_layouts_write_format_1_and_refuse_own_lifetimes() {
    use mongodb_session_store::express::ExpressLayout;
    let db = TestDb::new("fmtexpress").await;
    let layout = || builder(&db).express_layout(ExpressLayout::ConnectMongodbSession);
    let error = layout().document_format(DocumentFormat::V2).refused().await;
    assert!(error.is_config(), "{error}");
    let store = layout().built().await;
    let id = new_session(&store, json!({"n": 1}), hours(1)).await;
    let document = raw(&db, &store, &id).await;
    assert!(!document.contains_key("format"), "{document}");
    let mut tracked = loaded(&store, &id).await;
    let hour = SessionLifetime::new().idle_timeout(HOUR).to_value();
    tracked.insert(LIFETIME_KEY.into(), hour);
    let error = store.save(&id, &tracked, hours(1)).await.unwrap_err();
    assert!(
        error.is_config() && error.to_string().contains("Express"),
        "{error}"
    );
}
