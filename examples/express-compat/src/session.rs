//! A small session layer speaking express-session's cookie: it verifies
//! `s:<id>.<signature>` with the configured secrets, loads the session
//! through the store (in the Node store's layout), hands handlers a
//! [`Session`], and afterwards saves, regenerates or destroys it and issues
//! a cookie the Express app accepts. The store does the storage work.

use std::sync::{Arc, Mutex};

use axum::{
    extract::{FromRequestParts, Request, State},
    http::{header, request::Parts, HeaderValue},
    middleware::Next,
    response::Response,
};
use mongodb_session_store::{
    express::{decode_cookie_value, encode_cookie_value, sign, unsign},
    session::TRACKING_KEY,
    session::USER_KEY,
    MongoSessionStore, UserInfo,
};
use serde_json::{Map, Value};

/// What the layer needs: the store, the cookie's name and secrets.
#[derive(Debug, Clone)]
pub struct Config {
    pub store: MongoSessionStore,
    pub cookie_name: String,
    pub secrets: Vec<String>,
    pub secure: bool,
}

#[derive(Debug, Default)]
struct State_ {
    id: Option<String>,
    data: Map<String, Value>,
    modified: bool,
    regenerate: bool,
    destroy: bool,
}

/// The request's session; cheap to clone, shared with the layer.
#[derive(Debug, Clone, Default)]
pub struct Session(Arc<Mutex<State_>>);

impl Session {
    fn lock(&self) -> std::sync::MutexGuard<'_, State_> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session's values (without the store's reserved entries).
    pub fn data(&self) -> Map<String, Value> {
        self.lock()
            .data
            .iter()
            .filter(|(k, _)| !k.starts_with(TRACKING_KEY) && k.as_str() != "cookie")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn get(&self, key: &str) -> Option<Value> {
        self.lock().data.get(key).cloned()
    }

    pub fn insert(&self, key: &str, value: Value) {
        let mut state = self.lock();
        state.data.insert(key.to_string(), value);
        state.modified = true;
    }

    pub fn remove(&self, key: &str) {
        let mut state = self.lock();
        state.modified |= state.data.remove(key).is_some();
    }

    /// A new id for the same data (login); the old id is deleted.
    pub fn regenerate(&self) {
        let mut state = self.lock();
        state.regenerate = true;
        state.modified = true;
    }

    /// Ends the session (logout).
    pub fn destroy(&self) {
        let mut state = self.lock();
        state.destroy = true;
        state.data.clear();
    }

    pub fn set_user(&self, user: &UserInfo) {
        self.insert(USER_KEY, user.to_value());
    }

    /// The handle of the session as loaded (see the store's `user_sessions`).
    pub fn handle(&self) -> Option<String> {
        mongodb_session_store::session::current_handle(&self.lock().data)
    }

    fn has_values(&self) -> bool {
        !self.data().is_empty()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Session>()
            .cloned()
            .unwrap_or_default())
    }
}

/// The middleware.
pub async fn layer(State(config): State<Config>, mut request: Request, next: Next) -> Response {
    let id = session_cookie(&request, &config);
    let session = Session::default();
    if let Some(id) = id {
        match config.store.load(&id).await {
            Ok(Some(loaded)) => {
                let mut state = session.lock();
                state.id = Some(id);
                state.data = loaded.into_map();
            }
            Ok(None) => {}
            Err(error) if error.is_decode() => {
                tracing::warn!(%error, "undecodable session treated as absent")
            }
            Err(error) => return failure(error),
        }
    }
    request.extensions_mut().insert(session.clone());
    let mut response = next.run(request).await;
    if response.status().is_server_error() {
        return response;
    }
    match finish(&config, &session).await {
        Ok(Some(cookie)) => {
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Ok(None) => response,
        Err(error) => failure(error),
    }
}

fn failure(error: mongodb_session_store::Error) -> Response {
    tracing::error!(%error, "session store failed");
    let body = demo_contract::ApiError::unavailable().body().to_string();
    Response::builder()
        .status(500)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap_or_default()
}

fn session_cookie(request: &Request, config: &Config) -> Option<String> {
    let prefix = format!("{}=", config.cookie_name);
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(&prefix))
        .find_map(|raw| unsign(&decode_cookie_value(raw), &config.secrets))
}

/// Writes what the request did; returns the `Set-Cookie` to send, if any.
async fn finish(
    config: &Config,
    session: &Session,
) -> Result<Option<String>, mongodb_session_store::Error> {
    let store = &config.store;
    let (id, data, modified, regenerate, destroy) = {
        let state = session.lock();
        (
            state.id.clone(),
            state.data.clone(),
            state.modified,
            state.regenerate,
            state.destroy,
        )
    };
    if destroy {
        if let Some(id) = &id {
            store.delete(id).await?;
        }
        return Ok(Some(format!(
            "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax",
            config.cookie_name
        )));
    }
    let new_id = match (&id, regenerate) {
        (Some(old), true) => {
            store.delete(old).await?;
            Some(store.create(&data, None).await?)
        }
        (None, _) if modified && session.has_values() => Some(store.create(&data, None).await?),
        (Some(id), false) => {
            store.save(id, &data, None).await?;
            None
        }
        _ => return Ok(None),
    };
    let Some(id) = new_id else {
        return Ok(modified.then(|| cookie_header(config, id.as_deref().unwrap_or_default())));
    };
    Ok(Some(cookie_header(config, &id)))
}

fn cookie_header(config: &Config, id: &str) -> String {
    let value = encode_cookie_value(&sign(id, &config.secrets[0]));
    let max_age = config.store.idle_timeout().as_secs();
    let secure = if config.secure { "; Secure" } else { "" };
    format!(
        "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        config.cookie_name
    )
}
