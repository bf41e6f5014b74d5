//! The cookie-signing key comes from the environment or a file, never from
//! the database: a copy of the database holds nothing that signs cookies.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use mongodb::bson::doc;
use serde_json::json;
use testkit::suite::App;

const KEY: &str =
    "c2lnbmluZyBrZXkgdXNlZCBvbmx5IGJ5IHRoZSBzaWduaW5nX2tleSB0ZXN0IG9mIGRlbW8tYWN0aXghISEhIQ==";

async fn start(test: &str, extra: &[(&str, &str)]) -> App {
    App::start(
        test,
        |s| testkit::spawn_binary(env!("CARGO_BIN_EXE_demo-actix"), s),
        extra,
    )
    .await
}

/// Uses the app as a user would, so that anything it might store is there.
async fn exercise(app: &App) {
    app.browser.put("/api/session/kept", json!(true)).await;
    let reply = app
        .browser
        .post("/api/login", Some(json!({"user": "ada"})))
        .await;
    assert_eq!(reply.status, 200);
}

/// Every collection of the app's database and, as extended JSON, every
/// document in them.
async fn database_contents(app: &App) -> (Vec<String>, String) {
    let db = app.db.database();
    let mut names = db.list_collection_names().await.unwrap();
    names.sort();
    let mut text = String::new();
    for name in &names {
        for document in app.db.documents(name).await {
            let json = mongodb::bson::Bson::Document(document).into_relaxed_extjson();
            text.push_str(&json.to_string());
        }
    }
    (names, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_signing_material_is_stored_in_the_database() {
    let app = start("signingkeyenv", &[("SESSION_SIGNING_KEY", KEY)]).await;
    exercise(&app).await;
    let (collections, contents) = database_contents(&app).await;
    // The sessions, and the record of ended ones.
    assert_eq!(
        collections,
        ["sessions", "sessions.endings"],
        "nothing but sessions is stored"
    );
    let raw = STANDARD.decode(KEY).unwrap();
    // actix's Key: the first half signs, the second encrypts.
    for secret in [
        KEY.to_string(),
        STANDARD.encode(&raw[..32]),
        STANDARD.encode(&raw[32..]),
    ] {
        assert!(!contents.contains(&secret), "key material in the database");
    }
    // The key really is in use: another instance with it reads the session.
    let second = app.another_instance().await;
    assert_eq!(
        second.get("/api/session").await.body["data"]["kept"],
        json!(true)
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_key_each_process_signs_with_its_own() {
    let app = start("signingkeynone", &[]).await;
    exercise(&app).await;
    let (collections, _) = database_contents(&app).await;
    assert_eq!(
        collections,
        ["sessions", "sessions.endings"],
        "no key was put in the database"
    );
    // A cookie signed by one process means nothing to another.
    let second = app.another_instance().await;
    let reply = second.get("/api/session").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, json!({"data": {}}));
    assert_eq!(
        app.documents().await.len(),
        1,
        "the session itself is intact"
    );
    let stored = app
        .db
        .collection("sessions")
        .find_one(doc! {})
        .await
        .unwrap();
    assert!(stored.is_some());
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_is_shared_by_instances() {
    let path = std::env::temp_dir().join(format!("demo-actix-signing-{}", std::process::id()));
    std::fs::write(&path, KEY).unwrap();
    let file = path.to_string_lossy().into_owned();
    let app = start("signingkeyfile", &[("SESSION_SIGNING_KEY_FILE", &file)]).await;
    exercise(&app).await;
    let second = app.another_instance().await;
    assert_eq!(
        second.get("/api/session").await.body["data"]["kept"],
        json!(true)
    );
    std::fs::remove_file(&path).unwrap();
    app.cleanup().await;
}

#[tokio::test]
async fn a_malformed_key_stops_the_demo() {
    let db = testkit::TestDb::new("signingkeybad").await;
    let uri = testkit::mongodb_uri();
    let name = db.name.clone();
    let settings = move |var: &str| match var {
        "MONGODB_URI" => Some(uri.clone()),
        "SESSION_DATABASE" => Some(name.clone()),
        "SESSION_SIGNING_KEY" => Some(STANDARD.encode([1u8; 32])),
        _ => None,
    };
    let started = testkit::spawn_binary(env!("CARGO_BIN_EXE_demo-actix"), Box::new(settings)).await;
    let error = started.expect_err("a 32-byte key is refused");
    assert!(error.contains("exited"), "{error}");
    db.cleanup().await;
}
