//! Issue 23 item 3: the document format. Every layout this crate ever wrote
//! (tests/fixtures/formats, written by the commits that wrote them) loads
//! and is upgraded by its next write; a document of a newer format is
//! answered with a typed error and left untouched by every write path; an
//! instance writing format 1 and one writing format 2 share sessions both
//! ways.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use futures_util::StreamExt;
use mongodb::bson::{doc, Bson, DateTime, Document};
use mongodb_session_store::{
    session::SaveOutcome, session::LIFETIME_KEY, Codec, ConflictPolicy, DocumentFormat, KeyRing,
    MongoSessionStore, SessionLifetime, StoreBuilder,
};
use serde_json::{json, Map, Value};
use testkit::TestDb;

const HOUR: Duration = Duration::from_secs(3600);

fn map(value: Value) -> Map<String, Value> {
    value.as_object().expect("an object").clone()
}

fn in_hours(hours: u32) -> Option<SystemTime> {
    Some(SystemTime::now() + hours * HOUR)
}

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
    shift(
        "expires",
        &mut document,
        DateTime::from_system_time(now + HOUR),
    );
    shift(
        "createdAt",
        &mut document,
        DateTime::from_system_time(now - HOUR),
    );
    shift(
        "lastModified",
        &mut document,
        DateTime::from_system_time(now - HOUR),
    );
    document
}

fn data_names(document: &Document) -> Vec<String> {
    match document.get("data") {
        Some(Bson::Document(data)) => data.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn every_earlier_format_loads_and_is_upgraded_by_its_next_writes() {
    let all = fixtures();
    assert!(all.len() >= 9, "a fixture of every layout: {}", all.len());
    for fixture in all {
        let name = fixture["name"].as_str().unwrap();
        let db = TestDb::new(&format!("fmt{}", name.replace('-', ""))).await;
        let builder = MongoSessionStore::from_client(db.client.clone()).database(&db.name);
        let store = configured(builder, &fixture["read_with"])
            .build()
            .await
            .unwrap();
        let original = rebased(&fixture);
        let sessions = db.collection("sessions");
        sessions.insert_one(original.clone()).await.unwrap();
        let id = fixture["id"].as_str().unwrap();

        let loaded = store
            .load(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: not found"));
        assert_eq!(
            Value::Object(loaded.data.clone()),
            fixture["data"],
            "{name}: data"
        );
        let user = loaded
            .user
            .as_ref()
            .map(|u| u.to_value())
            .unwrap_or(Value::Null);
        assert_eq!(user, fixture["user"], "{name}: owner");
        assert_eq!(loaded.lifetime, None, "{name}");

        // An unchanged save (a touch) upgrades the document...
        let tracked = loaded.into_map();
        let outcome = store.save(id, &tracked, in_hours(2)).await.unwrap();
        assert_eq!(outcome, SaveOutcome::Touched, "{name}");
        let touched = sessions.find_one(doc! {}).await.unwrap().unwrap();
        assert_eq!(
            touched.get("format"),
            Some(&Bson::Int32(2)),
            "{name}: {touched}"
        );

        // ... and so does a change, written per key (or swapped whole).
        let mut changed = store.load(id).await.unwrap().unwrap().into_map();
        changed.insert("upgraded".into(), json!(true));
        changed.remove("n");
        let outcome = store.save(id, &changed, in_hours(2)).await.unwrap();
        assert_eq!(outcome, SaveOutcome::Updated, "{name}");
        let written = sessions.find_one(doc! {}).await.unwrap().unwrap();
        assert_eq!(written.get("format"), Some(&Bson::Int32(2)), "{name}");
        let mut expected = map(fixture["data"].clone());
        expected.insert("upgraded".into(), json!(true));
        expected.remove("n");
        let reloaded = store.load(id).await.unwrap().unwrap();
        assert_eq!(reloaded.data, expected, "{name}: after the upgrade");
        assert_eq!(
            reloaded.user.map(|u| u.to_value()).unwrap_or(Value::Null),
            fixture["user"],
            "{name}"
        );
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
        let mut removed = store.load(id).await.unwrap().unwrap().into_map();
        removed.remove("cart");
        store.save(id, &removed, in_hours(2)).await.unwrap();
        let data = store.load(id).await.unwrap().unwrap().data;
        assert!(!data.contains_key("cart"), "{name}: {data:?}");
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_newer_format_is_answered_with_a_typed_error_and_never_written() {
    let db = TestDb::new("fmtnewer").await;
    let ring = KeyRing::new(1, [3u8; 32]).unwrap();
    let build = || {
        MongoSessionStore::from_client(db.client.clone())
            .database(&db.name)
            .encryption(ring.clone())
    };
    let store = build().build().await.unwrap();
    let strict = build()
        .on_conflict(ConflictPolicy::Fail)
        .build()
        .await
        .unwrap();
    let v1 = build()
        .document_format(DocumentFormat::V1)
        .build()
        .await
        .unwrap();
    // Maps loaded before a newer release rewrote the session.
    let id = store
        .create(&map(json!({"n": 1, "cart": ["apple"]})), in_hours(1))
        .await
        .unwrap();
    let tracked = store.load(&id).await.unwrap().unwrap().into_map();
    let sessions = db.collection("sessions");
    let filter = doc! { "_id": store.stored_id(&id) };
    let update = doc! { "$set": { "format": 99, "future": { "meaning": "unknown" } } };
    sessions.update_one(filter.clone(), update).await.unwrap();
    let newer = sessions.find_one(filter.clone()).await.unwrap().unwrap();

    for instance in [&store, &v1] {
        let error = instance.load(&id).await.unwrap_err();
        assert!(error.is_newer_format() && !error.is_decode(), "{error}");
        assert_eq!(error.found_format(), Some(99));
        let text = error.to_string();
        assert!(
            text.contains("newer mongodb-session-store (format 99)"),
            "{text}"
        );
        assert!(text.contains("reads formats up to 2"), "{text}");
    }
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
        let error = instance.save(&id, data, in_hours(5)).await.unwrap_err();
        assert!(error.is_newer_format(), "{what}: {error}");
    }
    assert!(!store.touch(&id, in_hours(5)).await.unwrap(), "touch");
    assert!(!v1.touch(&id, in_hours(5)).await.unwrap(), "touch");
    let report = store.rewrap().await.unwrap();
    assert_eq!((report.rewrapped, report.undecodable), (0, 1), "rewrap");
    assert_eq!(store.delete_expired().await.unwrap(), 0);
    let taken = id.clone();
    let mut ids = [taken, mongodb_session_store::id::generate_id()].into_iter();
    let other = store
        .create_with_ids(|| ids.next().unwrap(), &plain, in_hours(1))
        .await
        .unwrap();
    assert_ne!(other, id, "create never takes the id over");
    let listed: Vec<_> = store.all().await.unwrap().collect().await;
    assert!(listed
        .iter()
        .any(|item| item.as_ref().is_err_and(|e| e.is_newer_format())));
    // Through tower-sessions: an error, not a fresh session whose cookie
    // would replace the user's.
    #[cfg(feature = "tower-sessions")]
    {
        use tower_sessions_core::{session::Record, SessionStore as Tower};
        let mut record = Record {
            id: Default::default(),
            data: Default::default(),
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        };
        record.data.insert("n".into(), json!(1));
        Tower::create(&store, &mut record).await.unwrap();
        let filter = doc! { "_id": store.stored_id(&record.id.to_string()) };
        sessions
            .update_one(filter, doc! { "$set": { "format": 3 } })
            .await
            .unwrap();
        let error = Tower::load(&store, &record.id).await.unwrap_err();
        assert!(error.to_string().contains("format 3"), "{error}");
    }

    let after = sessions.find_one(filter).await.unwrap().unwrap();
    assert_eq!(
        after, newer,
        "a newer-format document left exactly as it was"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn instances_writing_format_1_and_format_2_share_sessions_both_ways() {
    let db = TestDb::new("fmtmixed").await;
    let build = |format| {
        MongoSessionStore::from_client(db.client.clone())
            .database(&db.name)
            .lifetime_limit(30 * 24 * HOUR)
            .document_format(format)
            .build()
    };
    let (old, new) = (
        build(DocumentFormat::V1).await.unwrap(),
        build(DocumentFormat::V2).await.unwrap(),
    );
    let sessions = db.collection("sessions");
    let raw = |store: &MongoSessionStore, id: &str| {
        let filter = doc! { "_id": store.stored_id(id) };
        let sessions = sessions.clone();
        async move { sessions.find_one(filter).await.unwrap().unwrap() }
    };

    // Written by the format-1 instance: no `format`; the format-2 instance
    // reads it and upgrades it; the format-1 one reads that, and its writes
    // neither downgrade it nor lose the other's change.
    let a = old
        .create(&map(json!({"who": "old"})), in_hours(1))
        .await
        .unwrap();
    assert!(!raw(&old, &a).await.contains_key("format"));
    let mut loaded = new.load(&a).await.unwrap().unwrap().into_map();
    loaded.insert("by_new".into(), json!(1));
    new.save(&a, &loaded, in_hours(1)).await.unwrap();
    assert_eq!(raw(&old, &a).await.get("format"), Some(&Bson::Int32(2)));
    let mut loaded = old.load(&a).await.unwrap().unwrap().into_map();
    loaded.insert("by_old".into(), json!(2));
    old.save(&a, &loaded, in_hours(1)).await.unwrap();
    let document = raw(&old, &a).await;
    assert_eq!(
        document.get("format"),
        Some(&Bson::Int32(2)),
        "never downgraded"
    );
    let data = new.load(&a).await.unwrap().unwrap().data;
    assert_eq!(
        Value::Object(data),
        json!({"who": "old", "by_new": 1, "by_old": 2})
    );

    // A session with a lifetime of its own, written by the format-2
    // instance: the format-1 instance honours it (it reads format 2).
    let remembered = SessionLifetime::new().idle_timeout(2 * HOUR);
    let mut data = map(json!({"who": "new"}));
    data.insert(LIFETIME_KEY.into(), remembered.to_value());
    let b = new.create(&data, in_hours(24 * 14)).await.unwrap();
    let loaded = old.load(&b).await.unwrap().unwrap();
    assert_eq!(loaded.lifetime, Some(remembered));
    let expires_at =
        |document: &Document| document.get_datetime("expires").unwrap().to_system_time();
    let tracked = loaded.into_map();
    assert_eq!(
        old.save(&b, &tracked, in_hours(24 * 14)).await.unwrap(),
        SaveOutcome::Touched
    );
    let document = raw(&old, &b).await;
    assert!(
        expires_at(&document) < SystemTime::now() + 3 * HOUR,
        "its own window, not 14 days"
    );
    assert_eq!(document.get("format"), Some(&Bson::Int32(2)));
    assert!(old.touch(&b, in_hours(24 * 14)).await.unwrap());
    assert!(
        expires_at(&raw(&old, &b).await) < SystemTime::now() + 3 * HOUR,
        "touch by id too"
    );

    // The format-1 instance keeps it through a regeneration ...
    let tracked = old.load(&b).await.unwrap().unwrap().into_map();
    assert!(old.delete(&b).await.unwrap());
    let c = old.create(&tracked, in_hours(24 * 14)).await.unwrap();
    let document = raw(&old, &c).await;
    assert_eq!(document.get("format"), Some(&Bson::Int32(2)));
    assert!(document.contains_key("lifetime"));

    // ... but will not give a format-1 session a lifetime: an instance of
    // the release before would ignore it. Nothing is written.
    let d = old
        .create(&map(json!({"x": 1})), in_hours(1))
        .await
        .unwrap();
    let before = raw(&old, &d).await;
    let mut tracked = old.load(&d).await.unwrap().unwrap().into_map();
    tracked.insert(LIFETIME_KEY.into(), remembered.to_value());
    tracked.insert("x".into(), json!(2));
    let error = old.save(&d, &tracked, in_hours(1)).await.unwrap_err();
    assert!(error.is_config(), "{error}");
    assert!(error.to_string().contains("DocumentFormat::V2"), "{error}");
    assert_eq!(raw(&old, &d).await, before);
    let mut fresh = map(json!({"x": 1}));
    fresh.insert(LIFETIME_KEY.into(), remembered.to_value());
    assert!(old
        .create(&fresh, in_hours(1))
        .await
        .unwrap_err()
        .is_config());
    // The format-2 instance may: the session is then format 2 for both.
    assert_eq!(
        new.save(&d, &tracked, in_hours(1)).await.unwrap(),
        SaveOutcome::Updated
    );
    assert_eq!(
        old.load(&d).await.unwrap().unwrap().lifetime,
        Some(remembered)
    );
    db.cleanup().await;
}

/// The Express layouts are shared with a Node store that knows no format:
/// they write format 1, and store no lifetime of a session's own (the Node
/// side would ignore it).
#[cfg(feature = "express")]
#[tokio::test]
async fn express_layouts_write_format_1_and_refuse_own_lifetimes() {
    use mongodb_session_store::express::ExpressLayout;
    let db = TestDb::new("fmtexpress").await;
    let builder = || {
        MongoSessionStore::from_client(db.client.clone())
            .database(&db.name)
            .express_layout(ExpressLayout::ConnectMongodbSession)
    };
    let error = builder()
        .document_format(DocumentFormat::V2)
        .build()
        .await
        .unwrap_err();
    assert!(error.is_config(), "{error}");
    let store = builder().build().await.unwrap();
    let id = store
        .create(&map(json!({"n": 1})), in_hours(1))
        .await
        .unwrap();
    let document = db
        .collection("sessions")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    assert!(!document.contains_key("format"), "{document}");
    let mut tracked = store.load(&id).await.unwrap().unwrap().into_map();
    tracked.insert(
        LIFETIME_KEY.into(),
        SessionLifetime::new().idle_timeout(HOUR).to_value(),
    );
    let error = store.save(&id, &tracked, in_hours(1)).await.unwrap_err();
    assert!(
        error.is_config() && error.to_string().contains("Express"),
        "{error}"
    );
    db.cleanup().await;
}
