//! The actix-web + actix-session demo. Same HTTP contract as
//! `examples/demo`; `demo-contract` holds the framework-neutral rules, this
//! crate the routing and the session calls.

mod cookie_key;

use actix_session::{
    config::{PersistentSession, TtlExtensionPolicy},
    Session, SessionMiddleware,
};
use actix_web::{
    cookie::{Key, SameSite},
    http::{header, StatusCode},
    web, HttpRequest, HttpResponse, ResponseError,
};
use demo_contract::{ApiError, Settings, COOKIE_NAME, MAX_BODY_BYTES};
use futures_util::StreamExt;
use mongodb_session_store::{
    actix::{current_handle, set_user},
    MongoSessionStore, UserInfo, UserSession, RESERVED_KEY,
};
use serde_json::{json, Map, Value};

/// What every worker shares: the store, the cookie key, the settings.
#[derive(Clone)]
pub struct State {
    store: MongoSessionStore,
    key: Key,
    settings: Settings,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl State {
    /// Builds the store and reads the cookie-signing key from the
    /// environment (`SESSION_SIGNING_KEY` or `SESSION_SIGNING_KEY_FILE`;
    /// without either, a per-process key and a warning).
    ///
    /// # Errors
    ///
    /// The key is malformed, or the store could not be built.
    pub async fn build(settings: &Settings) -> Result<Self, String> {
        let key = cookie_key::signing_key(|name| std::env::var(name).ok())?;
        let store = settings
            .configure(MongoSessionStore::from_uri(&settings.mongodb_uri))
            .map_err(|e| e.to_string())?
            .build()
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self {
            store,
            key,
            settings: settings.clone(),
        })
    }

    /// Registers the session middleware and the routes.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        let ttl = actix_web::cookie::time::Duration::try_from(self.settings.ttl)
            .unwrap_or(actix_web::cookie::time::Duration::WEEK);
        let sessions = SessionMiddleware::builder(self.store.clone(), self.key.clone())
            .cookie_name(COOKIE_NAME.into())
            .cookie_secure(self.settings.cookie_secure)
            .cookie_same_site(SameSite::Lax)
            .cookie_content_security(actix_session::config::CookieContentSecurity::Signed)
            .session_lifecycle(
                PersistentSession::default()
                    .session_ttl(ttl)
                    .session_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest),
            )
            .build();
        cfg.app_data(web::Data::new(self.store.clone())).service(
            web::scope("")
                .wrap(sessions)
                .route("/", web::get().to(page))
                .route("/healthz", web::get().to(|| async { "ok" }))
                .route("/api/session", web::get().to(read_session))
                .route("/api/session/", web::put().to(put_empty_key))
                .route("/api/session/", web::delete().to(delete_empty_key))
                .route("/api/session/{key}", web::put().to(put_key))
                .route("/api/session/{key}", web::delete().to(delete_key))
                .route("/api/counter", web::post().to(counter))
                .route("/api/login", web::post().to(login))
                .route("/api/logout", web::post().to(logout))
                .route("/api/sessions", web::get().to(list_sessions))
                .route("/api/sessions/revoke-others", web::post().to(revoke_others))
                .route("/api/sessions/{handle}", web::delete().to(revoke))
                .default_service(web::to(|| async {
                    Err::<HttpResponse, _>(Failure(ApiError::new(404, "no such route")))
                })),
        );
    }
}

#[derive(Debug)]
struct Failure(ApiError);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl ResponseError for Failure {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::BAD_REQUEST)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(self.0.body())
    }
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

fn session_failed(error: impl std::fmt::Display) -> Failure {
    tracing::error!(%error, "session layer failed");
    Failure(ApiError::unavailable())
}

type Reply = Result<HttpResponse, Failure>;

/// Reads the body, refusing more than [`MAX_BODY_BYTES`], and parses it.
async fn json_body(mut payload: web::Payload) -> Result<Value, Failure> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| Failure(ApiError::new(400, e.to_string())))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(demo_contract::too_large().into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(demo_contract::parse_body(&body)?)
}

/// The session's data, without the store's reserved entry.
fn current_data(session: &Session) -> Map<String, Value> {
    session
        .entries()
        .iter()
        .filter(|(k, _)| !k.starts_with(RESERVED_KEY))
        .map(|(k, v)| (k.clone(), serde_json::from_str(v).unwrap_or(Value::Null)))
        .collect()
}

fn data_reply(session: &Session) -> Reply {
    Ok(HttpResponse::Ok().json(demo_contract::data_body(current_data(session))))
}

async fn page(session: Session, store: web::Data<MongoSessionStore>) -> HttpResponse {
    let sessions = own_sessions(&session, &store).await.unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(demo_contract::render_page(
            &current_data(&session),
            &sessions,
        ))
}

async fn read_session(session: Session) -> Reply {
    data_reply(&session)
}

async fn put_key(
    session: Session,
    store: web::Data<MongoSessionStore>,
    key: web::Path<String>,
    payload: web::Payload,
) -> Reply {
    set_key(session, &store, key.into_inner(), payload).await
}

async fn put_empty_key(
    session: Session,
    store: web::Data<MongoSessionStore>,
    payload: web::Payload,
) -> Reply {
    set_key(session, &store, String::new(), payload).await
}

async fn set_key(
    session: Session,
    store: &MongoSessionStore,
    key: String,
    payload: web::Payload,
) -> Reply {
    demo_contract::validate_key(&key, RESERVED_KEY)?;
    let value = json_body(payload).await?;
    let mut data = current_data(&session);
    data.insert(key.clone(), value.clone());
    // Refused here, the client gets a 413; refused by the save after the
    // handler, it would get a 500.
    store
        .check(&data)
        .map_err(|error| Failure(demo_contract::store_refused(&error)))?;
    session.insert(key, value).map_err(session_failed)?;
    data_reply(&session)
}

async fn delete_key(session: Session, key: web::Path<String>) -> Reply {
    remove_key(session, key.into_inner())
}

async fn delete_empty_key(session: Session) -> Reply {
    remove_key(session, String::new())
}

fn remove_key(session: Session, key: String) -> Reply {
    demo_contract::validate_key(&key, RESERVED_KEY)?;
    session.remove(&key);
    data_reply(&session)
}

async fn counter(session: Session) -> Reply {
    let current: Option<Value> = session.get("counter").map_err(session_failed)?;
    let next = demo_contract::next_counter(current.as_ref())?;
    session.insert("counter", next).map_err(session_failed)?;
    Ok(HttpResponse::Ok().json(json!({ "counter": next })))
}

async fn login(session: Session, request: HttpRequest, payload: web::Payload) -> Reply {
    let user = demo_contract::login_user(&json_body(payload).await?)?;
    // A new id on every privilege change; the old one is deleted.
    session.renew();
    session.insert("user", &user).map_err(session_failed)?;
    let mut owner = UserInfo::new(&user);
    if let Some(agent) = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        owner = owner.user_agent(agent);
    }
    if let Some(address) = request.peer_addr() {
        owner = owner.ip(address.ip().to_string());
    }
    set_user(&session, &owner).map_err(session_failed)?;
    Ok(HttpResponse::Ok().json(json!({ "user": user })))
}

fn logged_in(session: &Session) -> Result<String, Failure> {
    let user: Option<String> = session.get("user").map_err(session_failed)?;
    user.ok_or_else(|| Failure(demo_contract::not_logged_in()))
}

/// The logged-in user's sessions, the current one flagged.
async fn own_sessions(
    session: &Session,
    store: &MongoSessionStore,
) -> Result<Vec<UserSession>, Failure> {
    let user = logged_in(session)?;
    let current = current_handle(session);
    store
        .user_sessions(&user, current.as_deref())
        .await
        .map_err(session_failed)
}

async fn list_sessions(session: Session, store: web::Data<MongoSessionStore>) -> Reply {
    let sessions = own_sessions(&session, &store).await?;
    Ok(HttpResponse::Ok().json(demo_contract::sessions_body(&sessions)))
}

async fn revoke(
    session: Session,
    store: web::Data<MongoSessionStore>,
    handle: web::Path<String>,
) -> Reply {
    let user = logged_in(&session)?;
    if !store.revoke(&user, &handle).await.map_err(session_failed)? {
        return Err(Failure(demo_contract::no_such_session()));
    }
    Ok(HttpResponse::Ok().json(json!({ "revoked": true })))
}

async fn revoke_others(session: Session, store: web::Data<MongoSessionStore>) -> Reply {
    let user = logged_in(&session)?;
    let current =
        current_handle(&session).ok_or_else(|| Failure(demo_contract::not_logged_in()))?;
    let revoked = store
        .revoke_others(&user, &current)
        .await
        .map_err(session_failed)?;
    Ok(HttpResponse::Ok().json(json!({ "revoked": revoked })))
}

async fn logout(session: Session) -> Reply {
    session.purge();
    Ok(HttpResponse::Ok().json(json!({ "ok": true })))
}
