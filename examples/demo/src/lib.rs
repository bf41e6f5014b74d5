//! The axum + tower-sessions demo. Its HTTP contract is public and
//! documented in the README; `demo-contract` holds the framework-neutral
//! rules, this crate the routing and the session calls.

mod prometheus;

use std::{net::SocketAddr, sync::Mutex};

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, ConnectInfo, DefaultBodyLimit, FromRequestParts, Path},
    http::{header, request::Parts, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::{delete, get, post, put},
    Extension, Json, Router,
};
use demo_contract::{
    handlers::{self, Client, SessionApi},
    ApiError, Settings, COOKIE_NAME, MAX_BODY_BYTES,
};
use mongodb_session_store::{
    tower::{current_handle, set_user, stored_keys},
    MongoSessionStore, UserInfo,
};
use serde_json::{Map, Value};
use tower_sessions::{cookie::SameSite, Expiry, Session, SessionManagerLayer};

/// Builds the store from `settings` and returns the demo's router.
///
/// # Errors
///
/// The store could not be built (server unreachable, bad settings).
pub async fn app(settings: &Settings) -> Result<Router, mongodb_session_store::Error> {
    // Before the store exists, so that what it reports while starting
    // (its change stream opening) is recorded too.
    prometheus::recorder();
    let store = settings
        .configure(MongoSessionStore::from_uri(&settings.mongodb_uri))?
        .build()
        .await?;
    Ok(router(store, settings))
}

/// The demo's routes over `store`. `GET /metrics` serves the store's
/// metrics in Prometheus' text format, outside the session layer (a scrape
/// neither opens nor slides a session).
///
/// Sessions slide: every request that carries a session saves it
/// (`with_always_save`), which for an unchanged session is only a touch of
/// its expiry — and inside `SESSION_TOUCH_AFTER_SECS` not even that.
pub fn router(store: MongoSessionStore, settings: &Settings) -> Router {
    prometheus::recorder();
    let idle = time::Duration::try_from(settings.ttl).unwrap_or(time::Duration::WEEK);
    let sessions = SessionManagerLayer::new(store.clone())
        .with_name(COOKIE_NAME)
        .with_secure(settings.cookie_secure)
        .with_same_site(SameSite::Lax)
        .with_always_save(true)
        .with_expiry(Expiry::OnInactivity(idle));
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
        .layer(sessions)
        .layer(Extension(store))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route("/metrics", get(prometheus::render))
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

/// tower-sessions' `Session` as the contract's route bodies see it.
struct Tower {
    session: Session,
    /// Keys set this request: tower-sessions cannot list a session's keys,
    /// the store's tracking entry knows only those it was loaded with.
    touched: Mutex<Vec<String>>,
}

impl Tower {
    fn new(session: Session) -> Self {
        Self {
            session,
            touched: Mutex::default(),
        }
    }
}

fn session_failed(error: tower_sessions::session::Error) -> ApiError {
    tracing::error!(%error, "session layer failed");
    ApiError::unavailable()
}

impl SessionApi for Tower {
    async fn data(&self) -> Result<Map<String, Value>, ApiError> {
        let mut keys = stored_keys(&self.session).await.map_err(session_failed)?;
        keys.extend(
            self.touched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        );
        let mut data = Map::new();
        for key in keys {
            if let Some(value) = self.get(&key).await? {
                data.insert(key, value);
            }
        }
        Ok(data)
    }

    async fn get(&self, key: &str) -> Result<Option<Value>, ApiError> {
        self.session.get_value(key).await.map_err(session_failed)
    }

    async fn insert(&self, key: &str, value: Value) -> Result<Option<Value>, ApiError> {
        self.touched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(key.to_string());
        self.session
            .insert_value(key, value)
            .await
            .map_err(session_failed)
    }

    async fn remove(&self, key: &str) -> Result<(), ApiError> {
        self.session
            .remove_value(key)
            .await
            .map(drop)
            .map_err(session_failed)
    }

    async fn renew(&self) -> Result<(), ApiError> {
        self.session.cycle_id().await.map_err(session_failed)
    }

    async fn end(&self) -> Result<(), ApiError> {
        self.session.flush().await.map_err(session_failed)
    }

    async fn set_owner(&self, owner: &UserInfo) -> Result<(), ApiError> {
        set_user(&self.session, owner).await.map_err(session_failed)
    }

    async fn handle(&self) -> Result<Option<String>, ApiError> {
        current_handle(&self.session).await.map_err(session_failed)
    }
}

async fn page(
    session: Session,
    Extension(store): Extension<MongoSessionStore>,
) -> Result<Html<String>, Failure> {
    Ok(Html(handlers::page(&Tower::new(session), &store).await?))
}

async fn read_session(session: Session) -> Reply {
    reply(handlers::read_session(&Tower::new(session)).await)
}

async fn put_key(
    session: Session,
    Extension(store): Extension<MongoSessionStore>,
    Path(key): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    reply(handlers::put_key(&Tower::new(session), &store, &key, &body?).await)
}

async fn put_empty_key(
    session: Session,
    Extension(store): Extension<MongoSessionStore>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    reply(handlers::put_key(&Tower::new(session), &store, "", &body?).await)
}

async fn delete_key(session: Session, Path(key): Path<String>) -> Reply {
    reply(handlers::delete_key(&Tower::new(session), &key).await)
}

async fn delete_empty_key(session: Session) -> Reply {
    reply(handlers::delete_key(&Tower::new(session), "").await)
}

async fn counter(session: Session) -> Reply {
    reply(handlers::counter(&Tower::new(session)).await)
}

async fn login(
    session: Session,
    Extension(store): Extension<MongoSessionStore>,
    client: ClientInfo,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    reply(handlers::login(&Tower::new(session), &store, &client.0, &body?).await)
}

async fn logout(session: Session) -> Reply {
    reply(handlers::logout(&Tower::new(session)).await)
}

async fn list_sessions(session: Session, Extension(store): Extension<MongoSessionStore>) -> Reply {
    reply(handlers::list_sessions(&Tower::new(session), &store).await)
}

async fn revoke(
    session: Session,
    Extension(store): Extension<MongoSessionStore>,
    Path(handle): Path<String>,
) -> Reply {
    reply(handlers::revoke(&Tower::new(session), &store, &handle).await)
}

async fn revoke_others(session: Session, Extension(store): Extension<MongoSessionStore>) -> Reply {
    reply(handlers::revoke_others(&Tower::new(session), &store).await)
}

/// The client's `User-Agent` and address, for the user's session list.
struct ClientInfo(Client);

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip().to_string());
        Ok(Self(Client { user_agent, ip }))
    }
}
