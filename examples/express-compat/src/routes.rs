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
use demo_contract::{ApiError, MAX_BODY_BYTES};
use mongodb_session_store::{UserInfo, RESERVED_KEY};
use serde_json::{json, Value};

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

fn store_failed(error: mongodb_session_store::Error) -> Failure {
    tracing::error!(%error, "session store failed");
    Failure(ApiError::unavailable())
}

type Reply = Result<Json<Value>, Failure>;

fn data_reply(session: &Session) -> Reply {
    Ok(Json(demo_contract::data_body(session.data())))
}

fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, Failure> {
    Ok(demo_contract::parse_body(&body?)?)
}

async fn page(session: Session, State(config): State<Config>) -> Html<String> {
    let sessions = own_sessions(&session, &config).await.unwrap_or_default();
    Html(demo_contract::render_page(&session.data(), &sessions))
}

async fn read_session(session: Session) -> Reply {
    data_reply(&session)
}

async fn put_key(
    session: Session,
    Path(key): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    set_key(&session, &key, body)
}

async fn put_empty_key(session: Session, body: Result<Bytes, BytesRejection>) -> Reply {
    set_key(&session, "", body)
}

fn set_key(session: &Session, key: &str, body: Result<Bytes, BytesRejection>) -> Reply {
    demo_contract::validate_key(key, RESERVED_KEY)?;
    if key == "cookie" {
        return Err(Failure(ApiError::new(
            400,
            "the key \"cookie\" is express-session's",
        )));
    }
    session.insert(key, json_body(body)?);
    data_reply(session)
}

async fn delete_key(session: Session, Path(key): Path<String>) -> Reply {
    remove_key(&session, &key)
}

async fn delete_empty_key(session: Session) -> Reply {
    remove_key(&session, "")
}

fn remove_key(session: &Session, key: &str) -> Reply {
    demo_contract::validate_key(key, RESERVED_KEY)?;
    if key != "cookie" {
        session.remove(key);
    }
    data_reply(session)
}

async fn counter(session: Session) -> Reply {
    let next = demo_contract::next_counter(session.get("counter").as_ref())?;
    session.insert("counter", json!(next));
    Ok(Json(json!({ "counter": next })))
}

async fn login(
    session: Session,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let user = demo_contract::login_user(&json_body(body)?)?;
    session.regenerate();
    session.insert("user", json!(user));
    let mut owner = UserInfo::new(&user);
    if let Some(agent) = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        owner = owner.user_agent(agent);
    }
    if let Some(Extension(ConnectInfo(address))) = peer {
        owner = owner.ip(address.ip().to_string());
    }
    session.set_user(&owner);
    Ok(Json(json!({ "user": user })))
}

async fn logout(session: Session) -> Reply {
    session.destroy();
    Ok(Json(json!({ "ok": true })))
}

fn logged_in(session: &Session) -> Result<String, Failure> {
    session
        .get("user")
        .and_then(|v| v.as_str().map(str::to_string))
        .ok_or_else(|| Failure(demo_contract::not_logged_in()))
}

async fn own_sessions(
    session: &Session,
    config: &Config,
) -> Result<Vec<mongodb_session_store::UserSession>, Failure> {
    let user = logged_in(session)?;
    config
        .store
        .user_sessions(&user, session.handle().as_deref())
        .await
        .map_err(store_failed)
}

async fn list_sessions(session: Session, State(config): State<Config>) -> Reply {
    Ok(Json(demo_contract::sessions_body(
        &own_sessions(&session, &config).await?,
    )))
}

async fn revoke(
    session: Session,
    State(config): State<Config>,
    Path(handle): Path<String>,
) -> Reply {
    let user = logged_in(&session)?;
    if !config
        .store
        .revoke(&user, &handle)
        .await
        .map_err(store_failed)?
    {
        return Err(Failure(demo_contract::no_such_session()));
    }
    Ok(Json(json!({ "revoked": true })))
}

async fn revoke_others(session: Session, State(config): State<Config>) -> Reply {
    let user = logged_in(&session)?;
    let current = session
        .handle()
        .ok_or_else(|| Failure(demo_contract::not_logged_in()))?;
    let revoked = config
        .store
        .revoke_others(&user, &current)
        .await
        .map_err(store_failed)?;
    Ok(Json(json!({ "revoked": revoked })))
}
