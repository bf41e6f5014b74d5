//! The systems under test and how to start each one.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::process::{Child, Command};

/// What a system is, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A ceiling: no session layer at all.
    Ceiling,
    /// This repository's store.
    Ours,
    /// Another session store.
    Peer,
}

/// How a system is started.
#[derive(Debug, Clone, Copy)]
enum Program {
    /// `bench-target <arg>`, built beside the runner.
    Ours(&'static str),
    /// A binary of the `bench/peers` workspace.
    RustPeer(&'static str),
    /// `node bench/node/server.js`.
    Node,
}

/// One system under test.
#[derive(Debug, Clone, Copy)]
pub struct System {
    /// Short name, for `--systems`.
    pub key: &'static str,
    /// Name in the report.
    pub label: &'static str,
    /// Ceiling, ours or peer.
    pub role: Role,
    program: Program,
}

/// Every system, in report order. This store and `MemoryStore` run behind
/// tower-sessions both without `with_always_save` (as the peer is measured:
/// a request that changes nothing saves nothing) and with it (what the
/// README recommends for sliding expiry: every request offers the session
/// to the store and sets the cookie), so every comparison is like for like.
pub const ALL: [System; 12] = [
    System {
        key: "bare",
        label: "axum, no session (HTTP ceiling)",
        role: Role::Ceiling,
        program: Program::Ours("bare"),
    },
    System {
        key: "tower-memory",
        label: "tower-sessions MemoryStore (no database)",
        role: Role::Ceiling,
        program: Program::Ours("tower-memory"),
    },
    System {
        key: "tower-memory-always-save",
        label: "tower-sessions MemoryStore, always_save",
        role: Role::Ceiling,
        program: Program::Ours("tower-memory-always-save"),
    },
    System {
        key: "raw",
        label: "axum + raw driver, no session layer (ceiling)",
        role: Role::Ceiling,
        program: Program::Ours("raw"),
    },
    System {
        key: "tower",
        label: "this store, tower-sessions",
        role: Role::Ours,
        program: Program::Ours("tower"),
    },
    System {
        key: "tower-always-save",
        label: "this store, tower-sessions, always_save",
        role: Role::Ours,
        program: Program::Ours("tower-always-save"),
    },
    System {
        key: "tower-cache",
        label: "this store, tower-sessions + cache",
        role: Role::Ours,
        program: Program::Ours("tower-cache"),
    },
    System {
        key: "tower-cache-always-save",
        label: "this store, tower-sessions + cache, always_save",
        role: Role::Ours,
        program: Program::Ours("tower-cache-always-save"),
    },
    System {
        key: "actix",
        label: "this store, actix-session",
        role: Role::Ours,
        program: Program::Ours("actix"),
    },
    System {
        key: "tsms",
        label: "tower-sessions-mongodb-store 0.11",
        role: Role::Peer,
        program: Program::RustPeer("peer-tsms"),
    },
    System {
        key: "asm",
        label: "axum_session_mongo 0.10",
        role: Role::Peer,
        program: Program::RustPeer("peer-asm"),
    },
    System {
        key: "express",
        label: "express + connect-mongo 5.1 (Node)",
        role: Role::Peer,
        program: Program::Node,
    },
];

/// The key of the raw-driver ceiling that ratios are taken against: the
/// fewest operations a store needs (`findOne`; `findOne` + `updateOne`;
/// `insertOne`), without a session layer.
pub const ONE_READ: &str = "raw";

/// Where the runner finds what it starts.
#[derive(Debug, Clone)]
pub struct Locations {
    /// The directory holding `bench-target`.
    pub ours: PathBuf,
    /// `bench/peers/target/release`.
    pub peers: PathBuf,
    /// `bench/node/server.js`.
    pub node_server: PathBuf,
}

impl Locations {
    /// Paths relative to the repository root and this executable.
    pub fn new(root: &Path) -> Self {
        let ours = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| root.join("target/release"));
        Self {
            ours,
            peers: root.join("bench/peers/target/release"),
            node_server: root.join("bench/node/server.js"),
        }
    }
}

/// A running system, killed when dropped.
#[derive(Debug)]
pub struct Running {
    /// `http://127.0.0.1:port`.
    pub base: String,
    child: Child,
}

impl Running {
    /// The system's own process (for the Node peer, the `node` process):
    /// whose CPU time is measured. `None` once it has exited.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

impl System {
    /// The command that starts it, or why it cannot be started here.
    fn command(&self, at: &Locations) -> Result<Command, String> {
        let program = match self.program {
            Program::Ours(arg) => {
                let mut command = Command::new(at.ours.join("bench-target"));
                command.arg(arg);
                return Ok(command);
            }
            Program::RustPeer(binary) => at.peers.join(binary),
            Program::Node => {
                if !at.node_server.exists() {
                    return Err(format!("{} is missing", at.node_server.display()));
                }
                let mut command = Command::new("node");
                command.arg(&at.node_server);
                return Ok(command);
            }
        };
        if !program.exists() {
            return Err(format!(
                "{} is not built (scripts/bench builds the peers)",
                program.display()
            ));
        }
        Ok(Command::new(program))
    }

    /// Starts it on a free port against `mongodb_uri`/`database` and waits
    /// until `/health` answers.
    ///
    /// # Errors
    ///
    /// It could not be started, exited, or did not answer within 60 s.
    pub async fn start(
        &self,
        at: &Locations,
        mongodb_uri: &str,
        database: &str,
    ) -> Result<Running, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let mut child = self
            .command(at)?
            .env("PORT", port.to_string())
            .env("MONGODB_URI", mongodb_uri)
            .env("BENCH_DB", database)
            .env("BENCH_COLLECTION", "sessions")
            .env("RUST_LOG", "error")
            .env("NODE_ENV", "production")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.key))?;
        let base = format!("http://127.0.0.1:{port}");
        let health = format!("{base}/health");
        let http = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("{} exited with {status}", self.key));
            }
            if http
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(Running { base, child });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("{} did not answer on {health}", self.key))
    }
}
