//! The `mongodb-sessions` binary (and its `mss-migrate` alias) driven as an
//! operator would, against the test server: exit codes, `--json` output,
//! and what changed in the collection. Each test has its own database.

mod batches;
mod common;
mod confirm;
mod indexes;
mod migrate;
mod migrate_options;
mod rewrap;
mod stats;
mod users;
