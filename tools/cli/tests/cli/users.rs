//! `list` and `revoke`: a user's sessions by handle, never by id; exactly
//! the right documents end.

use mongodb_session_store::{
    express::{encode_cookie_value, sign, ExpressLayout},
    MongoSessionStore,
};
use testkit::TestDb;

use crate::common::{json, run, session, store, stored_ids};

#[tokio::test]
async fn list_shows_handles_and_clients_but_no_id_anywhere() {
    let db = TestDb::new("clilist").await;
    let store = store(&db).build().await.unwrap();
    let ids = [
        session(&store, Some("ada"), true).await,
        session(&store, Some("ada"), true).await,
        session(&store, Some("bob"), true).await,
    ];
    session(&store, Some("ada"), false).await; // expired: not listed

    let listed = json(&db, &["list", "--user", "ada"], 0);
    let sessions = listed["sessions"].as_array().unwrap();
    let mut handles: Vec<&str> = sessions
        .iter()
        .map(|s| s["handle"].as_str().unwrap())
        .collect();
    handles.sort();
    let mut expected: Vec<String> = store
        .user_sessions("ada", None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.handle)
        .collect();
    expected.sort();
    assert_eq!(handles, expected);
    assert_eq!(sessions.len(), 2);
    for s in sessions {
        assert_eq!(s["user_agent"], "Firefox/140");
        assert_eq!(s["ip"], "10.0.0.7");
        assert!(s["created_at"].as_str().unwrap().ends_with('Z'), "{s}");
        assert!(s["last_active"].is_string());
    }

    let (text, code) = run(&db, &["list", "--user", "ada"]);
    assert_eq!(code, 0);
    let text = String::from_utf8(text.stdout).unwrap() + &String::from_utf8(text.stderr).unwrap();
    assert!(text.contains(&expected[0]), "{text}");
    let everything = format!("{listed}{text}");
    for id in &ids {
        assert!(!everything.contains(id.as_str()), "a raw id in the output");
        assert!(
            !everything.contains(&store.stored_id(id)),
            "a stored id in the output"
        );
    }
    db.cleanup().await;
}

#[tokio::test]
async fn revoke_by_handle_all_or_cookie_ends_exactly_those_sessions() {
    let db = TestDb::new("clirevoke").await;
    let store = store(&db)
        .id_hash_key("service secret")
        .build()
        .await
        .unwrap();
    let ada: Vec<String> = [
        session(&store, Some("ada"), true).await,
        session(&store, Some("ada"), true).await,
        session(&store, Some("ada"), true).await,
    ]
    .into();
    let bob = session(&store, Some("bob"), true).await;
    let nobody = session(&store, None, true).await;
    let handle = store.load(&ada[0]).await.unwrap().unwrap().handle;
    let secret = ["--id-hash-key", "service secret", "--yes"];
    let (_, code) = run(&db, &["revoke", "--user", "ada", "--yes"]);
    assert_eq!(code, 2, "--user needs --handle or --all");

    // Bob cannot be made to lose Ada's session by its handle.
    let none = json(
        &db,
        &[
            &["revoke", "--user", "bob", "--handle", &handle],
            &secret[..],
        ]
        .concat(),
        0,
    );
    assert_eq!(none["revoked"], 0);
    assert_eq!(stored_ids(&db).await.len(), 5);

    let one = json(
        &db,
        &[
            &["revoke", "--user", "ada", "--handle", &handle],
            &secret[..],
        ]
        .concat(),
        0,
    );
    assert_eq!(one["revoked"], 1);
    assert!(store.load(&ada[0]).await.unwrap().is_none());
    assert!(store.load(&ada[1]).await.unwrap().is_some());

    let all = json(
        &db,
        &[&["revoke", "--user", "ada", "--all"], &secret[..]].concat(),
        0,
    );
    assert_eq!(all["revoked"], 2);
    for id in &ada {
        assert!(store.load(id).await.unwrap().is_none());
    }
    assert!(store.load(&bob).await.unwrap().is_some());

    // A cookie is hashed as the service hashes it: without its secret the
    // same cookie matches nothing.
    let wrong_key = json(&db, &["revoke", "--session-cookie", &bob, "--yes"], 0);
    assert_eq!(wrong_key["revoked"], 0);
    let by_cookie = json(
        &db,
        &[&["revoke", "--session-cookie", &bob], &secret[..]].concat(),
        0,
    );
    assert_eq!(by_cookie["revoked"], 1);
    assert_eq!(stored_ids(&db).await, vec![store.stored_id(&nobody)]);
    db.cleanup().await;
}

#[tokio::test]
async fn revoke_takes_an_express_signed_cookie_with_its_secret() {
    let db = TestDb::new("clirevokeexpress").await;
    let store = MongoSessionStore::from_client(db.client.clone())
        .database(&db.name)
        .express_layout(ExpressLayout::ConnectMongo)
        .build()
        .await
        .unwrap();
    let id = session(&store, Some("ada"), true).await;
    let other = session(&store, Some("ada"), true).await;
    let cookie = encode_cookie_value(&sign(&id, "s1"));
    let express = ["--layout", "connect-mongo", "--yes"];

    let (output, code) = run(
        &db,
        &[&["revoke", "--session-cookie", &cookie], &express[..]].concat(),
    );
    assert_eq!(code, 1, "a signed cookie without its secret");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--cookie-secret"));
    let (_, code) = run(
        &db,
        &[
            &[
                "revoke",
                "--session-cookie",
                &cookie,
                "--cookie-secret",
                "old,wrong",
            ],
            &express[..],
        ]
        .concat(),
    );
    assert_eq!(code, 1, "a signature that does not verify");
    assert_eq!(stored_ids(&db).await.len(), 2);

    let revoked = json(
        &db,
        &[
            &[
                "revoke",
                "--session-cookie",
                &cookie,
                "--cookie-secret",
                "old,s1",
            ],
            &express[..],
        ]
        .concat(),
        0,
    );
    assert_eq!(revoked["revoked"], 1);
    assert_eq!(stored_ids(&db).await, vec![other]);
    db.cleanup().await;
}

#[tokio::test]
async fn purge_expired_deletes_only_expired_sessions() {
    let db = TestDb::new("clipurge").await;
    let store = store(&db).build().await.unwrap();
    let mut live = vec![
        store.stored_id(&session(&store, Some("ada"), true).await),
        store.stored_id(&session(&store, None, true).await),
    ];
    for _ in 0..3 {
        session(&store, Some("ada"), false).await;
    }
    let purged = json(&db, &["purge-expired", "--yes"], 0);
    assert_eq!(purged["deleted"], 3);
    live.sort();
    assert_eq!(stored_ids(&db).await, live);
    assert_eq!(json(&db, &["purge-expired", "--yes"], 0)["deleted"], 0);
    db.cleanup().await;
}
