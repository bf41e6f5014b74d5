//! Test support shared by the store's tests, the demos' tests and the
//! benchmarks.
//!
//! The server is found at run time, once: `MONGODB_URI` if set (a real
//! `mongod`, a replica set, Atlas), which `scripts/with-mongodb` sets to a
//! throwaway local server when it was not. Each test gets its own database,
//! so tests run in parallel and re-runs start clean.

mod browser;
pub mod chromium;
mod db;
pub mod devices;
mod express;
pub mod fault;
mod monitor;
mod process;
mod proxy;
mod server;
pub mod suite;

pub use browser::{Browser, Reply};
pub use db::{mongodb_uri, with_database, TestDb};
pub use express::ExpressApp;
pub use monitor::{is_write, CommandLog};
pub use process::spawn_binary;
pub use proxy::Proxy;
pub use server::{OwnedServer, SERVER_BINARY_VAR};
