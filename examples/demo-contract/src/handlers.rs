//! The contract's route bodies, written once. Each demo routes a request
//! here with its session behind [`SessionApi`] and turns the answer into its
//! framework's response; nothing else of a route lives in the demos.

use std::future::Future;

use mongodb_session_store::{users::SignedOut, users::UserSession, MongoSessionStore, UserInfo};
use serde_json::{json, Map, Value};

use crate::ApiError;

/// What the route bodies need of a framework's session.
pub trait SessionApi {
    /// The session's values, without the store's reserved entries.
    fn data(&self) -> impl Future<Output = Result<Map<String, Value>, ApiError>>;
    /// One value.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Value>, ApiError>>;
    /// Stores a value; the one it replaced.
    fn insert(
        &self,
        key: &str,
        value: Value,
    ) -> impl Future<Output = Result<Option<Value>, ApiError>>;
    /// Removes a value.
    fn remove(&self, key: &str) -> impl Future<Output = Result<(), ApiError>>;
    /// A new id for the session, the old one deleted (on login).
    fn renew(&self) -> impl Future<Output = Result<(), ApiError>>;
    /// Ends the session (logout).
    fn end(&self) -> impl Future<Output = Result<(), ApiError>>;
    /// Records the session's owner.
    fn set_owner(&self, owner: &UserInfo) -> impl Future<Output = Result<(), ApiError>>;
    /// The session's revocation handle, once it is stored.
    fn handle(&self) -> impl Future<Output = Result<Option<String>, ApiError>>;
    /// Keys the session layer keeps for itself (express-session's
    /// `cookie`): writing one is a 400, removing one does nothing.
    fn is_own_key(&self, _key: &str) -> bool {
        false
    }
}

/// Who is asking: the client's `User-Agent` and address.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The `User-Agent` header, if any.
    pub user_agent: Option<String>,
    /// The peer's address, if known.
    pub ip: Option<String>,
}

impl Client {
    fn owner(&self, user: &str) -> UserInfo {
        let mut owner = UserInfo::new(user);
        if let Some(agent) = &self.user_agent {
            owner = owner.user_agent(agent.as_str());
        }
        if let Some(ip) = &self.ip {
            owner = owner.ip(ip.as_str());
        }
        owner
    }
}

type Answer = Result<Value, ApiError>;

/// `GET /api/session`.
pub async fn read_session(session: &impl SessionApi) -> Answer {
    Ok(crate::data_body(session.data().await?))
}

/// `PUT /api/session/{key}`: refused with a 413 (or 400) before the
/// framework's save when the store would refuse the session.
pub async fn put_key(
    session: &impl SessionApi,
    store: &MongoSessionStore,
    key: &str,
    body: &[u8],
) -> Answer {
    crate::validate_key(key)?;
    if session.is_own_key(key) {
        return Err(ApiError::new(
            400,
            format!("the key {key:?} is the session layer's"),
        ));
    }
    let value = crate::parse_body(body)?;
    let mut data = session.data().await?;
    data.insert(key.to_string(), value.clone());
    store
        .check(&data)
        .map_err(|error| crate::store_refused(&error))?;
    session.insert(key, value).await?;
    Ok(crate::data_body(data))
}

/// `DELETE /api/session/{key}`.
pub async fn delete_key(session: &impl SessionApi, key: &str) -> Answer {
    crate::validate_key(key)?;
    if !session.is_own_key(key) {
        session.remove(key).await?;
    }
    read_session(session).await
}

/// `POST /api/counter`.
pub async fn counter(session: &impl SessionApi) -> Answer {
    let next = crate::next_counter(session.get("counter").await?.as_ref())?;
    session.insert("counter", json!(next)).await?;
    Ok(json!({ "counter": next }))
}

/// `POST /api/login`: a new id on every privilege change, the old one
/// deleted.
pub async fn login(
    session: &impl SessionApi,
    store: &MongoSessionStore,
    client: &Client,
    body: &[u8],
) -> Answer {
    let user = crate::login_user(&crate::parse_body(body)?)?;
    // Under a refusing device limit, say so before anything changes (the
    // save checks again, for logins racing this one).
    store
        .check_session_limit(&user)
        .await
        .map_err(|e| crate::store_refused(&e))?;
    session.renew().await?;
    session.insert("user", json!(user)).await?;
    session.set_owner(&client.owner(&user)).await?;
    Ok(json!({ "user": user }))
}

/// `POST /api/logout`.
pub async fn logout(session: &impl SessionApi) -> Answer {
    session.end().await?;
    Ok(json!({ "ok": true }))
}

/// `GET /api/sessions`.
pub async fn list_sessions(session: &impl SessionApi, store: &MongoSessionStore) -> Answer {
    let sessions = own_sessions(session, store).await?;
    let signed_out = signed_out(session, store).await?;
    Ok(crate::sessions_body(&sessions, &signed_out))
}

/// `DELETE /api/sessions/{handle}`.
pub async fn revoke(session: &impl SessionApi, store: &MongoSessionStore, handle: &str) -> Answer {
    let user = logged_in(session).await?;
    if !store.revoke(&user, handle).await.map_err(store_failed)? {
        return Err(crate::no_such_session());
    }
    Ok(json!({ "revoked": true }))
}

/// `POST /api/sessions/revoke-others`.
pub async fn revoke_others(session: &impl SessionApi, store: &MongoSessionStore) -> Answer {
    let user = logged_in(session).await?;
    let current = session.handle().await?.ok_or_else(crate::not_logged_in)?;
    let revoked = store
        .revoke_others(&user, &current)
        .await
        .map_err(store_failed)?;
    Ok(json!({ "revoked": revoked }))
}

/// `GET /`: the page.
pub async fn page(
    session: &impl SessionApi,
    store: &MongoSessionStore,
) -> Result<String, ApiError> {
    let data = session.data().await?;
    let sessions = own_sessions(session, store).await.unwrap_or_default();
    let signed_out = signed_out(session, store).await.unwrap_or_default();
    Ok(crate::render_page(&data, &sessions, &signed_out))
}

async fn logged_in(session: &impl SessionApi) -> Result<String, ApiError> {
    session
        .get("user")
        .await?
        .and_then(|user| user.as_str().map(str::to_string))
        .ok_or_else(crate::not_logged_in)
}

/// The logged-in user's sessions, the current one flagged.
async fn own_sessions(
    session: &impl SessionApi,
    store: &MongoSessionStore,
) -> Result<Vec<UserSession>, ApiError> {
    let user = logged_in(session).await?;
    let current = session.handle().await?;
    store
        .user_sessions(&user, current.as_deref())
        .await
        .map_err(store_failed)
}

/// The logged-in user's devices that were signed out by someone else (a
/// revocation, the device limit) in the last hour.
async fn signed_out(
    session: &impl SessionApi,
    store: &MongoSessionStore,
) -> Result<Vec<SignedOut>, ApiError> {
    let user = logged_in(session).await?;
    store.signed_out(&user).await.map_err(store_failed)
}

fn store_failed(error: mongodb_session_store::Error) -> ApiError {
    tracing::error!(%error, "session store failed");
    ApiError::unavailable()
}
