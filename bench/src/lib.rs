//! Benchmarks of mongodb-session-store. Not published.
//!
//! - `micro`: the store's own work per operation (codec, encryption, id).
//! - `stages`: the per-stage budget of a read and a modify through each
//!   adapter, CPU time and allocations, beside the raw driver's floor and
//!   the peer tower-sessions-mongodb-store (needs `MONGODB_URI`).
//! - `bench-target`: this repository's systems under test, each serving the
//!   HTTP contract of `bench/CONTRACT.md`.
//! - `http`: runs every system — ours, the ceilings, the peers — through the
//!   same HTTP scenarios against one MongoDB server and reports the table.

pub mod contract;
pub mod cpu;
pub mod fixture;
pub mod goals;
pub mod load;
pub mod report;
pub mod server;
pub mod stages;
pub mod systems;
pub mod targets;
