use std::{net::SocketAddr, process::Stdio, time::Duration};

use crate::suite::Settings;

/// The environment variables of the demo contract, passed on to a binary.
const CONTRACT_VARS: &[&str] = &[
    "MONGODB_URI",
    "SESSION_DATABASE",
    "SESSION_COLLECTION",
    "COOKIE_SECURE",
    "SESSION_TTL_SECS",
    "SESSION_TOUCH_AFTER_SECS",
    "SESSION_CODEC",
    "SESSION_ENCRYPTION_KEY",
    "SESSION_MAX_LIFETIME_SECS",
    "SESSION_CACHE",
    "SESSION_CACHE_STALENESS_MS",
    "SESSION_MAX_BYTES",
    "SESSION_MAX_PER_USER",
    "SESSION_LIMIT_POLICY",
    "SESSION_SECRET",
    "COOKIE_NAME",
    "STORE_LAYOUT",
    "SESSION_SIGNING_KEY",
    "SESSION_SIGNING_KEY_FILE",
];

/// Starts the demo binary at `program` as a child process configured only
/// through its environment, waits until `/healthz` answers, and returns its
/// address. The process is killed when the test's runtime ends.
///
/// # Errors
///
/// The binary did not start or did not answer within 60 seconds.
pub async fn spawn_binary(program: &str, settings: Settings) -> Result<SocketAddr, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let mut command = tokio::process::Command::new(program);
    command
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    for name in CONTRACT_VARS {
        command.env_remove(name);
        if let Some(value) = settings(name) {
            command.env(name, value);
        }
    }
    let mut child = command.spawn().map_err(|e| format!("{program}: {e}"))?;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let health = format!("http://{address}/healthz");
    for _ in 0..600 {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{program} exited with {status}"));
        }
        if reqwest::get(&health)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            // Owning the child in a task ties its life to the runtime's.
            tokio::spawn(async move { child.wait().await });
            return Ok(address);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("{program} did not answer on {health}"))
}
