//! Running the binary, and making sessions with the library to act on.

use std::{
    process::{Command, Output},
    time::{Duration, SystemTime},
};

use mongodb_session_store::{
    session::USER_KEY, AutoRemove, KeyRing, MongoSessionStore, StoreBuilder, UserInfo,
};
use serde_json::{json, Map, Value};
use testkit::TestDb;

pub const KEY_1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const KEY_2: &str = "S2V5IG51bWJlciB0d286IDMyIGJ5dGVzIGxvbmcuLi4=";

/// The CLI on `db`, with no store settings from the environment.
pub fn command(db: &TestDb) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mongodb-sessions"));
    command.env("MONGODB_URI", db.uri());
    for name in [
        "SESSION_ID_HASH_KEY",
        "SESSION_ENCRYPTION_KEY",
        "SESSION_ENCRYPTION_KEYS",
        "SESSION_ENCRYPTION_KEYS_FILE",
        "SESSION_SECRET",
    ] {
        command.env_remove(name);
    }
    command
}

/// Runs the CLI with `args`; the output and the exit code.
pub fn run(db: &TestDb, args: &[&str]) -> (Output, i32) {
    let output = command(db)
        .args(args)
        .output()
        .expect("running mongodb-sessions");
    let code = output.status.code().expect("exited, not killed");
    (output, code)
}

/// Runs the CLI with `--json` and expects `code`; the document it printed.
pub fn json(db: &TestDb, args: &[&str], code: i32) -> Value {
    let (output, got) = run(db, &[args, &["--json"]].concat());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        got,
        code,
        "{args:?}: stdout {stdout} stderr {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e}): {stdout}"))
}

/// A store on `db`'s `sessions` that creates no index (so the tests see
/// exactly what the CLI does to indexes).
pub fn store(db: &TestDb) -> StoreBuilder {
    MongoSessionStore::from_client(db.client.clone())
        .database(&db.name)
        .auto_remove(AutoRemove::Disabled)
}

pub fn ring_1() -> KeyRing {
    KeyRing::from_base64(1, KEY_1).unwrap()
}

/// Key 2 primary, key 1 still decrypting: a rotation.
pub fn ring_2_1() -> KeyRing {
    ring_1().with_primary_base64(2, KEY_2).unwrap()
}

/// A session of `user` (or nobody's), live or already expired; its id.
pub async fn session(store: &MongoSessionStore, user: Option<&str>, live: bool) -> String {
    let mut data = Map::new();
    data.insert("cart".into(), json!(["book", "pen"]));
    if let Some(user) = user {
        let info = UserInfo::new(user).user_agent("Firefox/140").ip("10.0.0.7");
        data.insert(USER_KEY.into(), info.to_value());
    }
    let expires = if live {
        SystemTime::now() + Duration::from_secs(3600)
    } else {
        SystemTime::now() - Duration::from_secs(60)
    };
    store.create(&data, Some(expires)).await.unwrap()
}

/// Every stored id in `sessions`.
pub async fn stored_ids(db: &TestDb) -> Vec<String> {
    let mut ids: Vec<String> = db
        .documents("sessions")
        .await
        .iter()
        .map(|d| d.get_str("_id").unwrap().to_string())
        .collect();
    ids.sort();
    ids
}
