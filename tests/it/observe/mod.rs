//! Issue 15: every store operation runs in a `tracing` span with its
//! outcome, round trips and a redacted id; the adapters' spans nest under
//! the framework's request span; with the `metrics` feature, operations,
//! latencies, cache figures and errors reach the `metrics` recorder.

mod adapters;
mod capture;
mod metrics;
mod spans;

use serde_json::{Map, Value};

fn map(value: Value) -> Map<String, Value> {
    value.as_object().expect("an object").clone()
}
