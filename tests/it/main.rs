//! The integration tests, one module per concern, all against a real
//! MongoDB-wire server (`MONGODB_URI`; `scripts/test` starts one). One
//! binary, so the suite links once.

#[cfg(feature = "actix-session")]
mod actix;
mod cache;
mod common;
mod concurrency;
mod connection;
#[cfg(all(
    feature = "tower-sessions",
    feature = "actix-session",
    feature = "express"
))]
mod correctness;
mod deployment;
#[cfg(all(feature = "tower-sessions", feature = "actix-session"))]
mod endings;
#[cfg(feature = "express")]
mod express;
mod fault;
mod format;
mod indexes;
mod lifetimes;
#[cfg(all(feature = "tower-sessions", feature = "actix-session"))]
mod limit;
#[cfg(feature = "express")]
mod migrate;
mod observe;
mod operations;
mod options;
#[cfg(feature = "tower-sessions")]
mod robustness;
#[cfg(feature = "express")]
mod scale;
#[cfg(feature = "tower-sessions")]
mod security;
mod slow_faults;
mod store;
#[cfg(feature = "tower-sessions")]
mod tower;
