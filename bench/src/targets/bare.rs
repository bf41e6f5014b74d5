//! axum with no session store: the HTTP ceiling. Counters live in memory.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::IntoResponse,
    routing::{get, post},
    Router,
};

type Counters = Arc<Mutex<HashMap<String, i64>>>;

/// The routes.
pub fn router() -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/new", get(new))
        .route("/read", get(read))
        .route("/incr", post(incr))
        .with_state(Counters::default())
}

/// The value of the `sid` cookie, if sent.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix("sid=").map(str::to_string))
}

async fn new(State(counters): State<Counters>) -> impl IntoResponse {
    let id = mongodb_session_store::id::generate_id();
    lock(&counters).insert(id.clone(), 0);
    (
        [(header::SET_COOKIE, format!("sid={id}; Path=/; HttpOnly"))],
        "created",
    )
}

async fn read(State(counters): State<Counters>, headers: HeaderMap) -> impl IntoResponse {
    match cookie(&headers).and_then(|id| lock(&counters).get(&id).copied()) {
        Some(n) => (StatusCode::OK, n.to_string()),
        None => (StatusCode::UNAUTHORIZED, String::new()),
    }
}

async fn incr(State(counters): State<Counters>, headers: HeaderMap) -> impl IntoResponse {
    let mut counters = lock(&counters);
    match cookie(&headers).and_then(|id| counters.get_mut(&id)) {
        Some(n) => {
            *n += 1;
            (StatusCode::OK, n.to_string())
        }
        None => (StatusCode::UNAUTHORIZED, String::new()),
    }
}

fn lock(counters: &Counters) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
    counters.lock().unwrap_or_else(|e| e.into_inner())
}
