//! One login across Express and Rust: the real Express app and this
//! service on the same collection, one browser, one `connect.sid`.

use serde_json::json;
use testkit::{ExpressApp, TestDb};

const SECRETS: &str = "current-secret,previous-secret";

async fn start_rust(db: &TestDb, layout: &'static str) -> String {
    let vars = [
        ("MONGODB_URI", testkit::mongodb_uri()),
        ("SESSION_DATABASE", db.name.clone()),
        ("SESSION_SECRET", SECRETS.to_string()),
        ("STORE_LAYOUT", layout.to_string()),
    ];
    let settings: testkit::suite::Settings = Box::new(move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    });
    let address = testkit::spawn_binary(env!("CARGO_BIN_EXE_express-compat"), settings)
        .await
        .expect("starting express-compat");
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn express_and_rust_share_one_login_for_every_layout() {
    for layout in [
        "connect-mongo",
        "connect-mongo-object",
        "connect-mongodb-session",
    ] {
        let db = TestDb::new(&format!("interop{}", layout.len())).await;
        let express = ExpressApp::start(&db.name, layout, SECRETS).await;
        let rust = express.browser.at(start_rust(&db, layout).await);

        // Logged in on Express, known to Rust.
        express
            .browser
            .post("/api/login", Some(json!({"user": "ada"})))
            .await;
        assert_eq!(
            rust.get("/api/session").await.body,
            json!({"data": {"user": "ada"}}),
            "{layout}"
        );

        // Changed in Rust, seen by Express; and back.
        rust.put("/api/session/cart", json!(["book"])).await;
        let seen = express.browser.get("/api/session").await.body;
        assert_eq!(
            seen,
            json!({"data": {"user": "ada", "cart": ["book"]}}),
            "{layout}"
        );
        express
            .browser
            .put("/api/session/theme", json!("dark"))
            .await;
        assert_eq!(
            rust.get("/api/session").await.body["data"]["theme"],
            "dark",
            "{layout}"
        );

        // A tampered cookie is nobody on either side.
        let real = rust.cookie().unwrap();
        rust.set_cookie(Some(real.replacen("s%3A", "s%3AX", 1)));
        assert_eq!(
            rust.get("/api/session").await.body,
            json!({"data": {}}),
            "{layout}"
        );
        assert_eq!(
            express.browser.get("/api/session").await.body,
            json!({"data": {}}),
            "{layout}"
        );
        rust.set_cookie(Some(real));

        // Logged out in Rust: gone on Express too.
        assert_eq!(rust.post("/api/logout", None).await.status, 200);
        assert_eq!(
            express.browser.get("/api/session").await.body,
            json!({"data": {}}),
            "{layout}"
        );
        assert!(db.documents("sessions").await.is_empty(), "{layout}");
        db.cleanup().await;
    }
}
