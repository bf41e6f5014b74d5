//! The demo's HTTP contract over the express-session layer.

use std::net::SocketAddr;

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, ConnectInfo, DefaultBodyLimit, Path, State},
    http::{header, HeaderMap, StatusCode},
    middleware,
    response::{Html, IntoResponse, Response},
    routing::{delete, get, post, put},
    Extension, Json, Router,
};
use demo_contract::{
    handlers::{self, Client, SessionApi},
    ApiError, MAX_BODY_BYTES,
};
use mongodb_session_store::UserInfo;
use serde_json::{Map, Value};

use crate::session::{self, Config, Session};

pub fn router(config: Config) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/session", get(read_session))
        .route("/api/session/", put(put_empty_key).delete(delete_empty_key))
        .route("/api/session/{key}", put(put_key).delete(delete_key))
        .route("/api/counter", post(counter))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/sessions", get(list_sessions))
        .route("/api/sessions/revoke-others", post(revoke_others))
        .route("/api/sessions/{handle}", delete(revoke))
        .fallback(|| async { Failure(ApiError::new(404, "no such route")) })
        .layer(middleware::from_fn_with_state(
            config.clone(),
            session::layer,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(config)
}

struct Failure(ApiError);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(self.0.body())).into_response()
    }
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl From<BytesRejection> for Failure {
    fn from(rejection: BytesRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self(demo_contract::too_large()),
            status => Self(ApiError::new(status.as_u16(), rejection.body_text())),
        }
    }
}

type Reply = Result<Json<Value>, Failure>;

fn reply(answer: Result<Value, ApiError>) -> Reply {
    Ok(Json(answer?))
}

impl SessionApi for Session {
    async fn data(&self) -> Result<Map<String, Value>, ApiError> {
        Ok(Session::data(self))
    }

    async fn get(&self, key: &str) -> Result<Option<Value>, ApiError> {
        Ok(Session::get(self, key))
    }

    async fn insert(&self, key: &str, value: Value) -> Result<Option<Value>, ApiError> {
        let previous = Session::get(self, key);
        Session::insert(self, key, value);
        Ok(previous)
    }

    async fn remove(&self, key: &str) -> Result<(), ApiError> {
        Session::remove(self, key);
        Ok(())
    }

    async fn renew(&self) -> Result<(), ApiError> {
        self.regenerate();
        Ok(())
    }

    async fn end(&self) -> Result<(), ApiError> {
        self.destroy();
        Ok(())
    }

    async fn set_owner(&self, owner: &UserInfo) -> Result<(), ApiError> {
        self.set_user(owner);
        Ok(())
    }

    async fn handle(&self) -> Result<Option<String>, ApiError> {
        Ok(Session::handle(self))
    }

    fn is_own_key(&self, key: &str) -> bool {
        key == "cookie"
    }
}

async fn page(session: Session, State(config): State<Config>) -> Result<Html<String>, Failure> {
    Ok(Html(handlers::page(&session, &config.store).await?))
}

async fn read_session(session: Session) -> Reply {
    reply(handlers::read_session(&session).await)
}

async fn put_key(
    session: Session,
    State(config): State<Config>,
    Path(key): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    reply(handlers::put_key(&session, &config.store, &key, &body?).await)
}

async fn put_empty_key(
    session: Session,
    State(config): State<Config>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    reply(handlers::put_key(&session, &config.store, "", &body?).await)
}

async fn delete_key(session: Session, Path(key): Path<String>) -> Reply {
    reply(handlers::delete_key(&session, &key).await)
}

async fn delete_empty_key(session: Session) -> Reply {
    reply(handlers::delete_key(&session, "").await)
}

async fn counter(session: Session) -> Reply {
    reply(handlers::counter(&session).await)
}

async fn login(
    session: Session,
    State(config): State<Config>,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let client = Client {
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        ip: peer.map(|Extension(ConnectInfo(address))| address.ip().to_string()),
    };
    reply(handlers::login(&session, &config.store, &client, &body?).await)
}

async fn logout(session: Session) -> Reply {
    reply(handlers::logout(&session).await)
}

async fn list_sessions(session: Session, State(config): State<Config>) -> Reply {
    reply(handlers::list_sessions(&session, &config.store).await)
}

async fn revoke(
    session: Session,
    State(config): State<Config>,
    Path(handle): Path<String>,
) -> Reply {
    reply(handlers::revoke(&session, &config.store, &handle).await)
}

async fn revoke_others(session: Session, State(config): State<Config>) -> Reply {
    reply(handlers::revoke_others(&session, &config.store).await)
}
