//! A test server this process owns, for tests that kill it: started on a
//! storage path of its own, SIGKILLed, and restarted on the same path and
//! port.
//!
//! Only possible when the project's tooling started the test server
//! (`scripts/with-mongodb` exports `MSS_SECANTUSD_RS`, the Rust SecantusDB
//! binary that `scripts/install-test-server rust` installed). Against a
//! server named by the user's own `MONGODB_URI` there is nothing to start,
//! and the tests skip with the reason.

use std::{
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

/// The variable `scripts/with-mongodb` sets to the server binary when it
/// started the test server itself with `TEST_SERVER=rust`.
pub const SERVER_BINARY_VAR: &str = "MSS_SECANTUSD_RS";

/// A SecantusDB process owned by the test, with acknowledged writes on disk
/// before they are acknowledged (`--sync-on-commit`), so a SIGKILL loses
/// nothing that was acknowledged.
#[derive(Debug)]
pub struct OwnedServer {
    binary: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl OwnedServer {
    /// Starts a server on a fresh storage path and a free loopback port.
    ///
    /// # Errors
    ///
    /// `"skipped: <reason>"` when the tooling did not start the test server
    /// (so there is no binary to run), or the server did not come up.
    pub async fn start() -> Result<Self, String> {
        let binary = std::env::var_os(SERVER_BINARY_VAR).ok_or_else(|| {
            format!(
                "skipped: {SERVER_BINARY_VAR} is not set; kill/restart tests start their own \
                 Rust SecantusDB and run only under scripts/with-mongodb with TEST_SERVER=rust \
                 (MONGODB_URI points at a server these tests did not start)"
            )
        })?;
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mss-owned-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("skipped: {}: {e}", dir.display()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("skipped: no free port: {e}"))?
            .port();
        let mut server = Self {
            binary: binary.into(),
            dir,
            port,
            child: None,
        };
        server
            .restart()
            .await
            .map_err(|e| format!("skipped: {e}"))?;
        Ok(server)
    }

    /// A URI for this server with database `db`.
    pub fn uri(&self, db: &str) -> String {
        format!(
            "mongodb://127.0.0.1:{}/{db}?directConnection=true",
            self.port
        )
    }

    /// Kills the server with SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL on Unix
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same storage path and port, and waits
    /// until it accepts connections; returns how long that took.
    ///
    /// # Errors
    ///
    /// The server exited or did not accept connections within 30 seconds.
    pub async fn restart(&mut self) -> Result<Duration, String> {
        self.kill();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(30);
        // The port can be briefly unavailable right after a kill; a server
        // that exits at once is started again until the deadline.
        loop {
            let mut child = self.spawn()?;
            let address = SocketAddr::from(([127, 0, 0, 1], self.port));
            loop {
                if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                    self.child = Some(child);
                    return Ok(started.elapsed());
                }
                if let Ok(Some(status)) = child.try_wait() {
                    if Instant::now() > deadline {
                        return Err(format!("the server exited with {status}: {}", self.log()));
                    }
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    return Err(format!("the server did not start: {}", self.log()));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn spawn(&self) -> Result<Child, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .map_err(|e| e.to_string())?;
        let stderr = log.try_clone().map_err(|e| e.to_string())?;
        Command::new(&self.binary)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--storage-path")
            .arg(self.dir.join("db"))
            .args(["--cache-size", "256M", "--log-file-max", "16MB"])
            .args(["--log-level", "WARNING"])
            .args(["--enable-test-commands", "--sync-on-commit"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.binary.display()))
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for OwnedServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
