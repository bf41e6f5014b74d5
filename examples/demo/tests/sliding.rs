//! Sliding expiry through the demo, counting the commands the store sends.

use std::time::Duration;

use demo_contract::Settings;
use mongodb::bson::doc;
use mongodb_session_store::MongoSessionStore;
use serde_json::json;
use testkit::{Browser, CommandLog, TestDb};

struct Demo {
    browser: Browser,
    log: CommandLog,
    db: TestDb,
}

async fn start(test: &str, touch_after_secs: &str) -> Demo {
    let db = TestDb::new(test).await;
    let (client, log) = CommandLog::client().await;
    let vars = [
        ("MONGODB_URI", testkit::mongodb_uri()),
        ("SESSION_DATABASE", db.name.clone()),
        ("SESSION_TOUCH_AFTER_SECS", touch_after_secs.to_string()),
    ];
    let settings = Settings::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    let store = settings
        .configure(MongoSessionStore::from_client(client))
        .unwrap()
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(axum_serve(listener, demo::router(store, &settings)));
    Demo {
        browser: Browser::new(format!("http://{address}"), "sid"),
        log,
        db,
    }
}

async fn axum_serve(listener: tokio::net::TcpListener, router: axum::Router) {
    axum::serve(listener, router).await.unwrap();
}

async fn expires(db: &TestDb) -> i64 {
    let document = db
        .collection("sessions")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    document.get_datetime("expires").unwrap().timestamp_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_touch_after_read_only_requests_cause_no_writes_and_one_read_each() {
    let demo = start("touchafter", "3600").await;
    demo.browser.put("/api/session/user", json!("ada")).await;
    let before = expires(&demo.db).await;
    demo.log.clear();

    for _ in 0..200 {
        let reply = demo.browser.get("/api/session").await;
        assert_eq!(reply.body, json!({"data": {"user": "ada"}}));
    }

    assert_eq!(
        demo.log.writes(),
        0,
        "no insert/update/delete for unchanged sessions"
    );
    assert_eq!(
        demo.log.commands("find").len(),
        200,
        "one round trip per read"
    );
    assert_eq!(expires(&demo.db).await, before);
    demo.db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_touch_after_each_read_moves_the_expiry_and_never_rewrites_data() {
    let demo = start("slides", "0").await;
    demo.browser.put("/api/session/user", json!("ada")).await;
    let mut last = expires(&demo.db).await;
    demo.log.clear();

    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(3)).await;
        let reply = demo.browser.get("/api/session").await;
        assert_eq!(reply.body, json!({"data": {"user": "ada"}}));
        let now = expires(&demo.db).await;
        assert!(now > last, "expires moved forward: {last} -> {now}");
        last = now;
    }

    let updates = demo.log.commands("update");
    assert_eq!(updates.len(), 20);
    for command in updates {
        let update = command.get_array("updates").unwrap()[0]
            .as_document()
            .unwrap();
        let set = update
            .get_document("u")
            .unwrap()
            .get_document("$set")
            .unwrap();
        let mut fields: Vec<&str> = set.keys().map(String::as_str).collect();
        // A write also stamps the document's format (it upgrades an older
        // one); the data is never rewritten.
        fields.retain(|f| *f != "format");
        assert_eq!(
            fields,
            ["expires", "lastModified"],
            "only the expiry is written"
        );
    }
    demo.db.cleanup().await;
}
