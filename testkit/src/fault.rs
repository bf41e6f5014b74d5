//! Fault injection: `failCommand` failpoints on the test server, scoped to
//! one client by its `appName`.
//!
//! `configureFailPoint` is a test command: SecantusDB accepts it with
//! `--enable-test-commands` (what `scripts/with-mongodb` passes), `mongod`
//! with `--setParameter enableTestCommands=1`. Any other server refuses it,
//! and the tests that need it skip with the reason instead of failing.

use mongodb::{
    bson::{doc, Bson, Document},
    Client,
};
use tokio::sync::{Mutex, MutexGuard};

/// `failCommand` is one failpoint per server: setting it replaces whatever
/// another test set. Tests that use it take turns.
static FAIL_COMMAND: Mutex<()> = Mutex::const_new(());

/// The commands a session store sends for its operations.
pub const STORE_COMMANDS: &[&str] = &[
    "find",
    "insert",
    "update",
    "delete",
    "findAndModify",
    "aggregate",
];

/// How often the failpoint fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    /// The next `n` matching commands fail, then it turns itself off.
    Next(u32),
    /// Every matching command fails until [`FailPoint::off`].
    Always,
    /// The first `n` matching commands pass; every later one fails until
    /// [`FailPoint::off`] (`mongod`'s `{skip: n}`): a failure part way
    /// through a batched operation, even in another process.
    Skip(u32),
}

impl Times {
    fn mode(self) -> Bson {
        match self {
            Self::Next(n) => Bson::Document(doc! { "times": i64::from(n) }),
            Self::Always => Bson::String("alwaysOn".into()),
            Self::Skip(n) => Bson::Document(doc! { "skip": i64::from(n) }),
        }
    }
}

/// A `failCommand` failpoint that is on. Turn it off with
/// [`off`](Self::off); until then no other test can set one.
#[derive(Debug)]
pub struct FailPoint {
    admin: Client,
    _turn: MutexGuard<'static, ()>,
}

impl FailPoint {
    /// Makes `commands` sent by clients whose `appName` is `app_name` fail
    /// as `data` says (`closeConnection`, `errorCode`, `writeConcernError`,
    /// `blockConnection` + `blockTimeMS`, … as `mongod` documents them),
    /// `times` times. `admin` is any client on the server (not one named
    /// `app_name`).
    ///
    /// # Errors
    ///
    /// `"skipped: <reason>"` when the server refuses test commands; the
    /// caller logs it and skips.
    pub async fn fail_command(
        admin: &Client,
        app_name: &str,
        commands: &[&str],
        times: Times,
        data: Document,
    ) -> Result<Self, String> {
        let turn = FAIL_COMMAND.lock().await;
        let mut data = data;
        data.insert("appName", app_name);
        data.insert("failCommands", commands.to_vec());
        let command = doc! {
            "configureFailPoint": "failCommand",
            "mode": times.mode(),
            "data": data,
        };
        admin
            .database("admin")
            .run_command(command)
            .await
            .map_err(|e| {
                let reason = match *e.kind {
                    mongodb::error::ErrorKind::Command(ref refused) => {
                        format!("{} ({})", refused.message, refused.code)
                    }
                    _ => e.to_string(),
                };
                format!(
                    "skipped: the server refuses configureFailPoint: {reason}; start it with test \
                     commands (secantusd --enable-test-commands, mongod --setParameter \
                     enableTestCommands=1)"
                )
            })?;
        Ok(Self {
            admin: admin.clone(),
            _turn: turn,
        })
    }

    /// Turns the failpoint off and lets the next test set one.
    pub async fn off(self) {
        let command = doc! { "configureFailPoint": "failCommand", "mode": "off" };
        if let Err(e) = self.admin.database("admin").run_command(command).await {
            eprintln!("turning failCommand off failed: {e}");
        }
    }
}

/// Whether the server at `admin` accepts test commands: `Ok` if so,
/// otherwise `"skipped: <reason>"`. It sets and clears a failpoint scoped to
/// an application name nothing uses.
pub async fn test_commands(admin: &Client) -> Result<(), String> {
    let probe = FailPoint::fail_command(
        admin,
        "testkit-probe-unused",
        &["ping"],
        Times::Next(1),
        doc! { "errorCode": 91 },
    )
    .await?;
    probe.off().await;
    Ok(())
}
