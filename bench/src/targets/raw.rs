//! axum with raw driver calls and no session layer: the ceiling, the fewest
//! operations any session store needs. `/read` is one `findOne`; `/incr`
//! is what a store minimally does to change a session, one `findOne` then
//! one `updateOne` writing the new value (a `findOneAndUpdate` would be one
//! round trip, but no store can use it: it must read the session before the
//! handler decides what to change); `/new` is one `insertOne`.
//! `RAW_EXPIRES=1` adds the expiry range most stores put beside the id, to
//! measure what that costs the server.

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use mongodb::{
    bson::{doc, DateTime, Document},
    Collection,
};

use super::bare::cookie;
use crate::contract::{blob, IDLE};

/// What the handlers share: the collection, and whether reads carry the
/// expiry range (`RAW_EXPIRES`, read once at start).
#[derive(Clone)]
struct Raw {
    sessions: Collection<Document>,
    with_expiry: bool,
}

/// The routes over `collection`.
pub fn router(collection: Collection<Document>) -> Router {
    let raw = Raw {
        sessions: collection,
        with_expiry: std::env::var_os("RAW_EXPIRES").is_some(),
    };
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/new", get(new))
        .route("/read", get(read))
        .route("/incr", post(incr))
        .with_state(raw)
}

async fn new(State(Raw { sessions, .. }): State<Raw>) -> Response {
    let id = mongodb_session_store::id::generate_id();
    let expires = DateTime::from_system_time(std::time::SystemTime::now() + IDLE);
    let document =
        doc! { "_id": &id, "n": 0_i64, "user": "bench", "blob": blob(), "expires": expires };
    match sessions.insert_one(document).await {
        Ok(_) => (
            [(header::SET_COOKIE, format!("sid={id}; Path=/; HttpOnly"))],
            "created",
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn read(State(raw): State<Raw>, headers: HeaderMap) -> Response {
    let Some(id) = cookie(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let filter = if raw.with_expiry {
        doc! { "_id": id, "expires": { "$gt": DateTime::now() } }
    } else {
        doc! { "_id": id }
    };
    answer(raw.sessions.find_one(filter).await)
}

async fn incr(State(Raw { sessions, .. }): State<Raw>, headers: HeaderMap) -> Response {
    let Some(id) = cookie(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let n = match sessions.find_one(doc! { "_id": &id }).await {
        Ok(Some(document)) => match document.get_i64("n") {
            Ok(n) => n + 1,
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
        Ok(None) => return StatusCode::UNAUTHORIZED.into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    match sessions
        .update_one(doc! { "_id": id }, doc! { "$set": { "n": n } })
        .await
    {
        Ok(_) => n.to_string().into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn answer(found: mongodb::error::Result<Option<Document>>) -> Response {
    match found {
        Ok(Some(document)) => match document.get_i64("n") {
            Ok(n) => n.to_string().into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
        Ok(None) => StatusCode::UNAUTHORIZED.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
