//! A session store behind tower-sessions 0.15, as this crate's README sets
//! it up: this store, or tower-sessions' own `MemoryStore` (the framework's
//! floor: no database at all); with or without `with_always_save`.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use tower_sessions::{Expiry, Session, SessionManagerLayer, SessionStore};

use crate::contract::{blob, IDLE};

/// The routes, with sessions in `store`. With `always_save`, as the README
/// advises for sliding expiry: unchanged sessions are offered to the
/// store, which touches them at most once per `touch_after`, and the
/// cookie is set on every response. Without it (tower-sessions' default,
/// and how the peer is measured), a request that changes nothing neither
/// saves nor sets a cookie.
pub fn router<S: SessionStore + Clone>(store: S, always_save: bool) -> Router {
    let idle = time::Duration::try_from(IDLE).unwrap_or(time::Duration::HOUR);
    let sessions = SessionManagerLayer::new(store)
        .with_secure(false)
        .with_always_save(always_save)
        .with_expiry(Expiry::OnInactivity(idle));
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/new", get(new))
        .route("/read", get(read))
        .route("/incr", post(incr))
        .layer(sessions)
}

async fn new(session: Session) -> Response {
    let stored = async {
        session.insert("n", 0_i64).await?;
        session.insert("user", "bench").await?;
        session.insert("blob", blob()).await
    };
    match stored.await {
        Ok(()) => "created".into_response(),
        Err(e) => failed(e),
    }
}

async fn read(session: Session) -> Response {
    match session.get::<i64>("n").await {
        Ok(Some(n)) => n.to_string().into_response(),
        Ok(None) => StatusCode::UNAUTHORIZED.into_response(),
        Err(e) => failed(e),
    }
}

async fn incr(session: Session) -> Response {
    let next = async {
        let Some(n) = session.get::<i64>("n").await? else {
            return Ok(None);
        };
        session.insert("n", n + 1).await?;
        Ok(Some(n + 1))
    };
    match next.await {
        Ok(Some(n)) => n.to_string().into_response(),
        Ok(None) => StatusCode::UNAUTHORIZED.into_response(),
        Err(e) => failed(e),
    }
}

fn failed(error: tower_sessions::session::Error) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response()
}
