//! Benchmarks of mongodb-session-store. Not published.
//!
//! - `micro`: the store's own work per operation (codec, encryption, id).
//! - `bench-target`: this repository's systems under test, each serving the
//!   HTTP contract of `bench/CONTRACT.md`.
//! - `http`: runs every system — ours, the ceilings, the peers — through the
//!   same HTTP scenarios against one MongoDB server and reports the table.

pub mod contract;
pub mod cpu;
pub mod goals;
pub mod load;
pub mod report;
pub mod server;
pub mod systems;
pub mod targets;
