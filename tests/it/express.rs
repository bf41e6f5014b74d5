//! Sharing sessions with a real Express app (express 4, express-session
//! 1.19, connect-mongo 5.1, connect-mongodb-session 5.0, pinned in
//! compat/express-app), for every Node layout.

use mongodb_session_store::{
    express::{decode_cookie_value, encode_cookie_value, sign, unsign, ExpressLayout},
    AutoRemove, MongoSessionStore,
};
use serde_json::json;
use testkit::{ExpressApp, TestDb};

use crate::common::{builder, new_session, Build};

const LAYOUTS: [&str; 3] = [
    "connect-mongo",
    "connect-mongo-object",
    "connect-mongodb-session",
];
const SECRETS: [&str; 2] = ["new-secret", "old-secret"];

struct Shared {
    /// Dropped (with its database) after the test's layout is done.
    _db: TestDb,
    express: ExpressApp,
    store: MongoSessionStore,
}

async fn shared(test: &str, layout: &str) -> Shared {
    let db = TestDb::new(&format!("{test}{}", layout.len())).await;
    let express = ExpressApp::start(&db.name, layout, &SECRETS.join(",")).await;
    // The Express store owns the TTL index. (SecantusDB, unlike mongod 4.2+,
    // treats connect-mongo's `background: true` as a different index spec,
    // so two creators would race; in production, mongod accepts both.)
    let layout = layout.parse::<ExpressLayout>().unwrap();
    let store = builder(&db).auto_remove(AutoRemove::Disabled);
    let store = store.express_layout(layout).built().await;
    Shared {
        _db: db,
        express,
        store,
    }
}

/// The session id behind the Express browser's cookie.
fn session_id(express: &ExpressApp) -> Option<String> {
    let raw = express.browser.cookie()?;
    unsign(&decode_cookie_value(&raw), &SECRETS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_created_in_express_is_read_by_rust_and_rust_changes_are_seen_by_express() {
    for layout in LAYOUTS {
        let Shared {
            _db,
            express,
            store,
        } = shared("bothways", layout).await;
        express
            .browser
            .put("/api/session/greeting", json!("hello from express"))
            .await;
        let id = session_id(&express).expect("a signed Express cookie");

        let loaded = store
            .load(&id)
            .await
            .unwrap()
            .expect("Rust reads the Express session");
        assert_eq!(loaded.data["greeting"], "hello from express", "{layout}");
        assert!(
            loaded.data["cookie"]["originalMaxAge"].is_number(),
            "{layout}: the cookie object"
        );

        let mut data = loaded.into_map();
        data.insert("fromRust".into(), json!({"n": 42}));
        store.save(&id, &data, None).await.unwrap();

        let seen = express.browser.get("/api/session").await.body;
        assert_eq!(
            seen,
            json!({"data": {"greeting": "hello from express", "fromRust": {"n": 42}}}),
            "{layout}"
        );
        // Express can keep writing to it.
        express.browser.put("/api/session/again", json!(true)).await;
        assert_eq!(
            store.load(&id).await.unwrap().unwrap().data["again"],
            true,
            "{layout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_created_in_rust_is_accepted_by_express() {
    for layout in LAYOUTS {
        let Shared {
            _db,
            express,
            store,
        } = shared("fromrust", layout).await;
        let id = new_session(&store, json!({"user": "ada"}), None).await;
        express
            .browser
            .set_cookie(Some(encode_cookie_value(&sign(&id, SECRETS[0]))));
        let seen = express.browser.get("/api/session").await.body;
        assert_eq!(seen, json!({"data": {"user": "ada"}}), "{layout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_either_side_ends_the_session_on_both() {
    for layout in LAYOUTS {
        let Shared {
            _db,
            express,
            store,
        } = shared("logout", layout).await;
        // Express logs out: Rust sees no session.
        express.browser.put("/api/session/x", json!(1)).await;
        let id = session_id(&express).unwrap();
        assert!(store.load(&id).await.unwrap().is_some());
        assert_eq!(express.browser.post("/api/logout", None).await.status, 200);
        assert!(store.load(&id).await.unwrap().is_none(), "{layout}");

        // Rust logs out: Express sees no session.
        express.browser.set_cookie(None);
        express.browser.put("/api/session/y", json!(2)).await;
        let id = session_id(&express).unwrap();
        assert!(store.delete(&id).await.unwrap());
        assert_eq!(
            express.browser.get("/api/session").await.body,
            json!({"data": {}}),
            "{layout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_signed_with_a_rotated_out_secret_verifies_while_it_is_listed() {
    for layout in LAYOUTS {
        let Shared {
            _db,
            express,
            store,
        } = shared("rotated", layout).await;
        let id = new_session(&store, json!({"k": "v"}), None).await;
        let old_cookie = sign(&id, "old-secret");
        assert_eq!(unsign(&old_cookie, &SECRETS).as_deref(), Some(id.as_str()));
        express
            .browser
            .set_cookie(Some(encode_cookie_value(&old_cookie)));
        assert_eq!(
            express.browser.get("/api/session").await.body,
            json!({"data": {"k": "v"}}),
            "{layout}"
        );
        // Once the old secret leaves the list, the same cookie is nothing.
        assert_eq!(unsign(&old_cookie, &["new-secret"]), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_cookie_gets_no_session_on_either_side() {
    for layout in LAYOUTS {
        let Shared {
            _db,
            express,
            store,
        } = shared("tampered", layout).await;
        express
            .browser
            .put("/api/session/secret", json!("s3cr3t"))
            .await;
        let raw = decode_cookie_value(&express.browser.cookie().unwrap());
        let id = unsign(&raw, &SECRETS).unwrap();
        let other_id = with_last_char_changed(&id);
        let forged = [
            raw.replace(&id, &other_id),  // another id, same signature
            with_last_char_changed(&raw), // a changed signature
            format!("s:{id}"),            // no signature
            id.clone(),                   // unsigned
        ];
        for cookie in forged {
            assert_eq!(
                unsign(&cookie, &SECRETS),
                None,
                "{layout}: Rust accepted {cookie}"
            );
            express
                .browser
                .set_cookie(Some(encode_cookie_value(&cookie)));
            let reply = express.browser.get("/api/session").await;
            assert_eq!(reply.status, 200, "{layout}");
            assert_eq!(
                reply.body,
                json!({"data": {}}),
                "{layout}: Express accepted {cookie}"
            );
        }
        assert!(
            store.load(&id).await.unwrap().is_some(),
            "the real session is untouched"
        );
    }
}

/// `text` with its last character replaced by a different one (always a
/// change: a fixed replacement is a no-op when it was already that).
fn with_last_char_changed(text: &str) -> String {
    let (head, last) = text.split_at(text.len() - 1);
    let other = if last == "A" { "B" } else { "A" };
    format!("{head}{other}")
}
