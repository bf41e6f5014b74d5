use std::{net::SocketAddr, path::PathBuf, process::Stdio, time::Duration};

use crate::{mongodb_uri, Browser};

/// The Express app of `compat/express-app`, running as a child process
/// (killed when dropped).
#[derive(Debug)]
pub struct ExpressApp {
    /// A browser for it, keeping the `connect.sid` cookie.
    pub browser: Browser,
    _child: tokio::process::Child,
}

impl ExpressApp {
    /// Starts the Express app on `database`/`sessions` with the given store
    /// layout and comma-separated secrets.
    ///
    /// # Panics
    ///
    /// If Node or the installed app is missing (run `scripts/test`, which
    /// installs it), or it does not answer within 30 seconds.
    pub async fn start(database: &str, layout: &str, secrets: &str) -> Self {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../compat/express-app");
        assert!(
            dir.join("node_modules/express-session").exists(),
            "the Express peer is not installed: run scripts/install-express-peer (scripts/test does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = tokio::process::Command::new("node")
            .arg("app.js")
            .current_dir(&dir)
            .env("MONGODB_URI", mongodb_uri())
            .env("SESSION_DATABASE", database)
            .env("SESSION_COLLECTION", "sessions")
            .env("SESSION_SECRET", secrets)
            .env("STORE_LAYOUT", layout)
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting node");
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let health = format!("http://{address}/healthz");
        for _ in 0..300 {
            if reqwest::get(&health)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Self {
                    browser: Browser::new(format!("http://{address}"), "connect.sid"),
                    _child: child,
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the Express app did not answer on {health}");
    }
}
