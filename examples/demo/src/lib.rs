//! The axum + tower-sessions demo. Its HTTP contract is public and
//! documented in the README; `demo-contract` holds the framework-neutral
//! rules, this crate the routing and the session calls.

use std::net::SocketAddr;

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, ConnectInfo, DefaultBodyLimit, FromRequestParts, Path},
    http::{header, request::Parts, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::{delete, get, post, put},
    Extension, Json, Router,
};
use demo_contract::{ApiError, Settings, COOKIE_NAME, MAX_BODY_BYTES};
use mongodb_session_store::{
    tower::{current_handle, set_user, stored_keys},
    MongoSessionStore, UserInfo, UserSession, RESERVED_KEY,
};
use serde_json::{json, Map, Value};
use tower_sessions::{cookie::SameSite, Expiry, Session, SessionManagerLayer};

/// Builds the store from `settings` and returns the demo's router.
///
/// # Errors
///
/// The store could not be built (server unreachable, bad settings).
pub async fn app(settings: &Settings) -> Result<Router, mongodb_session_store::Error> {
    let store = settings
        .configure(MongoSessionStore::from_uri(&settings.mongodb_uri))?
        .build()
        .await?;
    Ok(router(store, settings))
}

/// The demo's routes over `store`.
///
/// Sessions slide: every request that carries a session saves it
/// (`with_always_save`), which for an unchanged session is only a touch of
/// its expiry — and inside `SESSION_TOUCH_AFTER_SECS` not even that.
pub fn router(store: MongoSessionStore, settings: &Settings) -> Router {
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

impl From<tower_sessions::session::Error> for Failure {
    fn from(error: tower_sessions::session::Error) -> Self {
        tracing::error!(%error, "session layer failed");
        Self(ApiError::unavailable())
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

fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, Failure> {
    Ok(demo_contract::parse_body(&body?)?)
}

/// The session's data: the keys it was loaded with, plus `touched` (a key
/// this request set), as they are now.
async fn current_data(
    session: &Session,
    touched: Option<&str>,
) -> Result<Map<String, Value>, Failure> {
    let mut keys = stored_keys(session).await?;
    keys.extend(touched.map(str::to_string));
    let mut data = Map::new();
    for key in keys {
        if let Some(value) = session.get_value(&key).await? {
            data.insert(key, value);
        }
    }
    Ok(data)
}

async fn page(
    session: Session,
    Extension(store): Extension<MongoSessionStore>,
) -> Result<Html<String>, Failure> {
    let data = current_data(&session, None).await?;
    let sessions = own_sessions(&session, &store).await.unwrap_or_default();
    Ok(Html(demo_contract::render_page(&data, &sessions)))
}

async fn read_session(session: Session) -> Reply {
    Ok(Json(demo_contract::data_body(
        current_data(&session, None).await?,
    )))
}

async fn put_key(
    session: Session,
    Extension(store): Extension<MongoSessionStore>,
    Path(key): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    set_key(session, &store, key, body).await
}

async fn put_empty_key(
    session: Session,
    Extension(store): Extension<MongoSessionStore>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    set_key(session, &store, String::new(), body).await
}

async fn set_key(
    session: Session,
    store: &MongoSessionStore,
    key: String,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    demo_contract::validate_key(&key, RESERVED_KEY)?;
    let value = json_body(body)?;
    let previous = session.insert_value(&key, value).await?;
    let data = current_data(&session, Some(&key)).await?;
    // Refused here, the client gets a 413; refused by the save after the
    // handler, it would get a 500 and lose nothing it could tell.
    if let Err(error) = store.check(&data) {
        match previous {
            Some(previous) => session.insert_value(&key, previous).await?,
            None => session.remove_value(&key).await?,
        };
        return Err(Failure(demo_contract::store_refused(&error)));
    }
    Ok(Json(demo_contract::data_body(data)))
}

async fn delete_key(session: Session, Path(key): Path<String>) -> Reply {
    remove_key(session, key).await
}

async fn delete_empty_key(session: Session) -> Reply {
    remove_key(session, String::new()).await
}

async fn remove_key(session: Session, key: String) -> Reply {
    demo_contract::validate_key(&key, RESERVED_KEY)?;
    session.remove_value(&key).await?;
    Ok(Json(demo_contract::data_body(
        current_data(&session, None).await?,
    )))
}

async fn counter(session: Session) -> Reply {
    let current = session.get_value("counter").await?;
    let next = demo_contract::next_counter(current.as_ref())?;
    session.insert("counter", next).await?;
    Ok(Json(json!({ "counter": next })))
}

async fn login(session: Session, client: ClientInfo, body: Result<Bytes, BytesRejection>) -> Reply {
    let user = demo_contract::login_user(&json_body(body)?)?;
    // A new id on every privilege change; the old one is deleted now.
    session.cycle_id().await?;
    session.insert("user", &user).await?;
    set_user(&session, &client.owner(&user)).await?;
    Ok(Json(json!({ "user": user })))
}

/// The logged-in user's sessions, the current one flagged.
async fn own_sessions(
    session: &Session,
    store: &MongoSessionStore,
) -> Result<Vec<UserSession>, Failure> {
    let user = logged_in(session).await?;
    let current = current_handle(session).await?;
    store
        .user_sessions(&user, current.as_deref())
        .await
        .map_err(store_failed)
}

async fn logged_in(session: &Session) -> Result<String, Failure> {
    let user: Option<String> = session.get("user").await?;
    user.ok_or_else(|| Failure(demo_contract::not_logged_in()))
}

fn store_failed(error: mongodb_session_store::Error) -> Failure {
    tracing::error!(%error, "session store failed");
    Failure(ApiError::unavailable())
}

async fn list_sessions(session: Session, Extension(store): Extension<MongoSessionStore>) -> Reply {
    let sessions = own_sessions(&session, &store).await?;
    Ok(Json(demo_contract::sessions_body(&sessions)))
}

async fn revoke(
    session: Session,
    Extension(store): Extension<MongoSessionStore>,
    Path(handle): Path<String>,
) -> Reply {
    let user = logged_in(&session).await?;
    if !store.revoke(&user, &handle).await.map_err(store_failed)? {
        return Err(Failure(demo_contract::no_such_session()));
    }
    Ok(Json(json!({ "revoked": true })))
}

async fn revoke_others(session: Session, Extension(store): Extension<MongoSessionStore>) -> Reply {
    let user = logged_in(&session).await?;
    let current = current_handle(&session)
        .await?
        .ok_or_else(|| Failure(demo_contract::not_logged_in()))?;
    let revoked = store
        .revoke_others(&user, &current)
        .await
        .map_err(store_failed)?;
    Ok(Json(json!({ "revoked": revoked })))
}

/// The client's `User-Agent` and address, for the user's session list.
struct ClientInfo {
    user_agent: Option<String>,
    ip: Option<String>,
}

impl ClientInfo {
    fn owner(self, user: &str) -> UserInfo {
        let mut owner = UserInfo::new(user);
        if let Some(agent) = self.user_agent {
            owner = owner.user_agent(agent);
        }
        if let Some(ip) = self.ip {
            owner = owner.ip(ip);
        }
        owner
    }
}

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
        Ok(Self { user_agent, ip })
    }
}

async fn logout(session: Session) -> Reply {
    session.flush().await?;
    Ok(Json(json!({ "ok": true })))
}
