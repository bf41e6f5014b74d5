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
use demo_contract::{
    handlers::{self, Client, SessionApi},
    ApiError, Settings, COOKIE_NAME, MAX_BODY_BYTES,
};
use futures_util::StreamExt;
use mongodb_session_store::{
    actix::{current_handle, set_user},
    MongoSessionStore, UserInfo,
};
use serde_json::{Map, Value};

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

fn session_failed(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "session layer failed");
    ApiError::unavailable()
}

type Reply = Result<HttpResponse, Failure>;

fn reply(answer: Result<Value, ApiError>) -> Reply {
    Ok(HttpResponse::Ok().json(answer?))
}

/// Reads the body, refusing more than [`MAX_BODY_BYTES`].
async fn read_body(mut payload: web::Payload) -> Result<web::BytesMut, Failure> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| Failure(ApiError::new(400, e.to_string())))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(demo_contract::too_large().into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// actix-session's `Session` as the contract's route bodies see it.
struct Actix(Session);

impl SessionApi for Actix {
    async fn data(&self) -> Result<Map<String, Value>, ApiError> {
        Ok(mongodb_session_store::actix::entries(&self.0)
            .into_iter()
            .map(|(k, v)| {
                let value = serde_json::from_str(&v).unwrap_or(Value::Null);
                (k, value)
            })
            .collect())
    }

    async fn get(&self, key: &str) -> Result<Option<Value>, ApiError> {
        self.0.get(key).map_err(session_failed)
    }

    async fn insert(&self, key: &str, value: Value) -> Result<Option<Value>, ApiError> {
        let previous = self.get(key).await?;
        self.0.insert(key, value).map_err(session_failed)?;
        Ok(previous)
    }

    async fn remove(&self, key: &str) -> Result<(), ApiError> {
        self.0.remove(key);
        Ok(())
    }

    async fn renew(&self) -> Result<(), ApiError> {
        self.0.renew();
        Ok(())
    }

    async fn end(&self) -> Result<(), ApiError> {
        self.0.purge();
        Ok(())
    }

    async fn set_owner(&self, owner: &UserInfo) -> Result<(), ApiError> {
        set_user(&self.0, owner).map_err(session_failed)
    }

    async fn handle(&self) -> Result<Option<String>, ApiError> {
        Ok(current_handle(&self.0))
    }
}

fn client(request: &HttpRequest) -> Client {
    Client {
        user_agent: request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        ip: request.peer_addr().map(|address| address.ip().to_string()),
    }
}

async fn page(session: Session, store: web::Data<MongoSessionStore>) -> Reply {
    let html = handlers::page(&Actix(session), &store).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

async fn read_session(session: Session) -> Reply {
    reply(handlers::read_session(&Actix(session)).await)
}

async fn put_key(
    session: Session,
    store: web::Data<MongoSessionStore>,
    key: web::Path<String>,
    payload: web::Payload,
) -> Reply {
    let body = read_body(payload).await?;
    reply(handlers::put_key(&Actix(session), &store, &key, &body).await)
}

async fn put_empty_key(
    session: Session,
    store: web::Data<MongoSessionStore>,
    payload: web::Payload,
) -> Reply {
    let body = read_body(payload).await?;
    reply(handlers::put_key(&Actix(session), &store, "", &body).await)
}

async fn delete_key(session: Session, key: web::Path<String>) -> Reply {
    reply(handlers::delete_key(&Actix(session), &key).await)
}

async fn delete_empty_key(session: Session) -> Reply {
    reply(handlers::delete_key(&Actix(session), "").await)
}

async fn counter(session: Session) -> Reply {
    reply(handlers::counter(&Actix(session)).await)
}

async fn login(
    session: Session,
    store: web::Data<MongoSessionStore>,
    request: HttpRequest,
    payload: web::Payload,
) -> Reply {
    let body = read_body(payload).await?;
    reply(handlers::login(&Actix(session), &store, &client(&request), &body).await)
}

async fn logout(session: Session) -> Reply {
    reply(handlers::logout(&Actix(session)).await)
}

async fn list_sessions(session: Session, store: web::Data<MongoSessionStore>) -> Reply {
    reply(handlers::list_sessions(&Actix(session), &store).await)
}

async fn revoke(
    session: Session,
    store: web::Data<MongoSessionStore>,
    handle: web::Path<String>,
) -> Reply {
    reply(handlers::revoke(&Actix(session), &store, &handle).await)
}

async fn revoke_others(session: Session, store: web::Data<MongoSessionStore>) -> Reply {
    reply(handlers::revoke_others(&Actix(session), &store).await)
}
