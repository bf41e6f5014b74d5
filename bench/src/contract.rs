//! What every system under test agrees on (`bench/CONTRACT.md`).

use std::time::Duration;

/// The `blob` every new session carries, so a session is about 1 KiB.
pub fn blob() -> String {
    "x".repeat(900)
}

/// A session lives this long after its last request, everywhere.
pub const IDLE: Duration = Duration::from_secs(3600);

/// The smallest connection pool a system under test may use.
pub const POOL: u32 = 64;

/// A system's settings, from the environment the runner gives it.
#[derive(Debug, Clone)]
pub struct Env {
    /// `PORT`.
    pub port: u16,
    /// `MONGODB_URI`.
    pub mongodb_uri: String,
    /// `BENCH_DB`.
    pub database: String,
    /// `BENCH_COLLECTION`.
    pub collection: String,
}

impl Env {
    /// Reads the process environment.
    ///
    /// # Errors
    ///
    /// A variable is missing or `PORT` is not a port.
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
        Ok(Self {
            port: var("PORT")?.parse().map_err(|_| "PORT is not a port")?,
            mongodb_uri: var("MONGODB_URI")?,
            database: var("BENCH_DB")?,
            collection: var("BENCH_COLLECTION").unwrap_or_else(|_| "sessions".into()),
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A driver client with the contract's pool size.
    ///
    /// # Errors
    ///
    /// An unparsable URI.
    pub async fn client(&self) -> mongodb::error::Result<mongodb::Client> {
        let mut options = mongodb::options::ClientOptions::parse(&self.mongodb_uri).await?;
        options.max_pool_size = Some(POOL);
        mongodb::Client::with_options(options)
    }
}
