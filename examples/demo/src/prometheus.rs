//! `GET /metrics`: the store's metrics (its `metrics` feature) in
//! Prometheus' text format, through `metrics-exporter-prometheus` — the
//! exporter is the application's choice; the store only speaks the
//! `metrics` facade.

use std::sync::OnceLock;

use axum::{http::StatusCode, response::IntoResponse};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds: a cache hit is microseconds, a database
/// round trip a millisecond or so, a save that retries a race longer.
const BUCKETS: [f64; 12] = [
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// The process's Prometheus recorder, installed by the first router (a
/// process has one global recorder; tests build several routers).
pub fn recorder() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE.get_or_init(install).as_ref()
}

fn install() -> Option<PrometheusHandle> {
    let installed = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
        .and_then(PrometheusBuilder::install_recorder);
    match installed {
        Ok(handle) => {
            mongodb_session_store::metrics::describe_metrics();
            Some(handle)
        }
        Err(error) => {
            tracing::warn!(%error, "metrics recorder not installed; /metrics answers 503");
            None
        }
    }
}

/// The answer to `GET /metrics`.
pub async fn render() -> impl IntoResponse {
    let Some(handle) = recorder() else {
        return (StatusCode::SERVICE_UNAVAILABLE, String::new()).into_response();
    };
    handle.run_upkeep();
    let content_type = [("content-type", "text/plain; version=0.0.4")];
    (content_type, handle.render()).into_response()
}
