//! Destructive commands ask first: without --yes and without a terminal
//! they refuse (exit 3) and change nothing; on a terminal (a pseudo-terminal
//! from util-linux `script`) they ask, and only "y" goes ahead.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use testkit::TestDb;

use crate::common::{run, session, store, stored_ids};

/// Runs the CLI on a pseudo-terminal, typing `answer`; its exit code and
/// what the terminal showed.
fn on_terminal(db: &TestDb, args: &[&str], answer: &str) -> (i32, String) {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let line = std::iter::once(env!("CARGO_BIN_EXE_mongodb-sessions"))
        .chain(args.iter().copied())
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("MONGODB_URI", db.uri())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` (apt-get install bsdutils) for a pseudo-terminal");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap(), shown)
}

#[tokio::test]
async fn without_a_terminal_and_without_yes_destructive_commands_refuse() {
    let db = TestDb::new("clirefuse").await;
    let store = store(&db).build().await.unwrap();
    session(&store, Some("ada"), true).await;
    session(&store, Some("ada"), false).await;
    let before = stored_ids(&db).await;
    for args in [
        &["revoke", "--user", "ada", "--all"][..],
        &["purge-expired"],
        &["revoke", "--session-cookie", "whatever"],
    ] {
        let (output, code) = run(&db, args);
        assert_eq!(code, 3, "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("add --yes"), "{stderr}");
        assert_eq!(stored_ids(&db).await, before, "{args:?} changed something");
    }
    db.cleanup().await;
}

#[tokio::test]
async fn on_a_terminal_they_ask_and_honour_the_answer() {
    let db = TestDb::new("cliconfirm").await;
    let store = store(&db).build().await.unwrap();
    session(&store, Some("ada"), true).await;
    session(&store, Some("ada"), true).await;
    let before = stored_ids(&db).await;
    let revoke = ["revoke", "--user", "ada", "--all"];

    let (code, shown) = on_terminal(&db, &revoke, "n\n");
    assert!(shown.contains("Go ahead? [y/N]"), "{shown}");
    assert_eq!(code, 4, "{shown}");
    assert_eq!(stored_ids(&db).await, before);

    let (code, shown) = on_terminal(&db, &revoke, "\n");
    assert_eq!(code, 4, "the default is no: {shown}");
    assert_eq!(stored_ids(&db).await, before);

    let (code, shown) = on_terminal(&db, &revoke, "y\n");
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("revoked 2 sessions"), "{shown}");
    assert!(stored_ids(&db).await.is_empty());
    db.cleanup().await;
}
