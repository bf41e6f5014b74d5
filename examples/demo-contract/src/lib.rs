//! What `examples/demo`, `examples/demo-actix` and `examples/express-compat`
//! share: the contract, not the framework. The route bodies
//! ([`handlers`]), the rules for what a request may contain and what an
//! answer looks like live here, once; each demo routes requests and puts its
//! session layer behind [`handlers::SessionApi`].

mod device;
pub mod handlers;
mod page;
mod settings;

pub use device::describe_device;
use mongodb_session_store::{users::EndReason, users::SignedOut, users::UserSession};
pub use page::render_page;
use serde_json::{json, Map, Value};
pub use settings::{CacheSetting, CodecName, Settings};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "sid";
/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest session key accepted.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest user name accepted by login.
pub const MAX_USER_BYTES: usize = 256;

/// A client error, answered as `{"error": "..."}` with a 4xx status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// What was wrong, for the client.
    pub message: String,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// The session layer failed; the cause is logged, not shown.
    pub fn unavailable() -> Self {
        Self::new(500, "the session store is unavailable")
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({ "error": self.message })
    }
}

/// Sets up logging (`RUST_LOG`, default `info`), runs a demo's `run`, and
/// exits with its error message and status 1 if it fails.
pub async fn main_with(name: &str, run: impl std::future::Future<Output = Result<(), String>>) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    if let Err(message) = run.await {
        eprintln!("{name}: {message}");
        std::process::exit(1);
    }
}

/// Checks a session key taken from the URL.
pub fn validate_key(key: &str) -> Result<(), ApiError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(ApiError::new(
            414,
            format!(
                "the key is {} bytes; at most {MAX_KEY_BYTES} are allowed",
                key.len()
            ),
        ));
    }
    if mongodb_session_store::session::is_reserved(key) {
        let reserved = mongodb_session_store::session::RESERVED_PREFIX;
        return Err(ApiError::new(
            400,
            format!("keys starting with {reserved:?} are reserved"),
        ));
    }
    Ok(())
}

/// The answer to the store refusing what a request would save: 400 for a
/// reserved key, 413 for a session over the size limit, 500 otherwise.
pub fn store_refused(error: &mongodb_session_store::Error) -> ApiError {
    if error.is_session_limit() {
        ApiError::new(
            409,
            "this account is signed in on too many devices: sign one out first",
        )
    } else if error.is_reserved_key() {
        ApiError::new(400, error.to_string())
    } else if error.is_encode() {
        ApiError::new(413, error.to_string())
    } else {
        tracing::error!(%error, "session store failed");
        ApiError::unavailable()
    }
}

/// Parses a request body as JSON.
pub fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(400, format!("malformed JSON body: {e}")))
}

/// The answer to a body over [`MAX_BODY_BYTES`].
pub fn too_large() -> ApiError {
    ApiError::new(413, format!("the body is over {MAX_BODY_BYTES} bytes"))
}

/// The user name from a login body `{"user": "<name>"}`.
pub fn login_user(body: &Value) -> Result<String, ApiError> {
    match body.get("user").and_then(Value::as_str) {
        Some(user) if !user.is_empty() && user.len() <= MAX_USER_BYTES => Ok(user.to_string()),
        _ => Err(ApiError::new(
            422,
            format!("expected {{\"user\": \"<name>\"}} with 1 to {MAX_USER_BYTES} bytes of name"),
        )),
    }
}

/// The counter after an increment of the stored value (absent counts as 0).
pub fn next_counter(current: Option<&Value>) -> Result<i64, ApiError> {
    let current = match current {
        None | Some(Value::Null) => 0,
        Some(value) => value
            .as_i64()
            .ok_or_else(|| ApiError::new(409, "the session's `counter` is not an integer"))?,
    };
    current
        .checked_add(1)
        .ok_or_else(|| ApiError::new(409, "the counter cannot grow any further"))
}

/// `{"sessions": [...]}`: a user's sessions, the current one flagged.
pub fn sessions_body(sessions: &[UserSession], signed_out: &[SignedOut]) -> Value {
    let when = |t: Option<std::time::SystemTime>| t.and_then(rfc3339);
    let gone: Vec<Value> = signed_out
        .iter()
        .map(|d| {
            let reason = match d.reason {
                EndReason::SessionLimit => "session-limit",
                _ => "revoked",
            };
            json!({
                "handle": d.handle, "at": rfc3339(d.at), "reason": reason,
                "userAgent": d.user_agent, "ip": d.ip,
                "device": describe_device(d.user_agent.as_deref()),
            })
        })
        .collect();
    let list: Vec<Value> = sessions
        .iter()
        .map(|s| {
            json!({
                "handle": s.handle, "current": s.current,
                "createdAt": when(s.created_at), "lastActive": when(s.last_active),
                "userAgent": s.user_agent, "ip": s.ip,
                "device": describe_device(s.user_agent.as_deref()),
            })
        })
        .collect();
    json!({ "sessions": list, "signedOut": gone })
}

/// `at` as RFC 3339, or `None` where it is outside what the format (and the
/// `time` crate) can hold: a stored date can be anywhere in BSON's range.
fn rfc3339(at: std::time::SystemTime) -> Option<String> {
    let since_epoch = at.duration_since(std::time::UNIX_EPOCH).ok()?;
    let at = time::OffsetDateTime::UNIX_EPOCH
        .checked_add(time::Duration::try_from(since_epoch).ok()?)?;
    at.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// The answer to a sessions route without a logged-in user.
pub fn not_logged_in() -> ApiError {
    ApiError::new(401, "log in first: POST /api/login")
}

/// The answer to revoking a handle that is not one of the user's sessions.
pub fn no_such_session() -> ApiError {
    ApiError::new(404, "no such session of yours")
}

/// `{"data": {...}}`, keys sorted so every demo answers byte for byte alike.
pub fn data_body(data: Map<String, Value>) -> Value {
    let mut entries: Vec<_> = data.into_iter().collect();
    entries.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
    json!({ "data": entries.into_iter().collect::<Map<String, Value>>() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_bodies_are_checked() {
        let reserved = mongodb_session_store::session::RESERVED_PREFIX;
        assert!(validate_key("a.b").is_ok());
        assert!(validate_key("").is_ok());
        assert_eq!(validate_key(&"k".repeat(1025)).unwrap_err().status, 414);
        assert_eq!(validate_key(reserved).unwrap_err().status, 400);
        let user = format!("{reserved}_user");
        assert_eq!(validate_key(&user).unwrap_err().status, 400);
        assert!(validate_key(&format!("x{reserved}")).is_ok());
        assert_eq!(parse_body(b"{").unwrap_err().status, 400);
        assert_eq!(
            parse_body(&vec![b' '; MAX_BODY_BYTES + 1])
                .unwrap_err()
                .status,
            413
        );
    }

    #[test]
    fn dates_outside_rfc_3339_are_left_out_not_a_panic() {
        let far = std::time::UNIX_EPOCH + std::time::Duration::from_secs(i64::MAX as u64 / 1000);
        assert_eq!(rfc3339(far), None);
        let before_epoch = std::time::UNIX_EPOCH - std::time::Duration::from_secs(1);
        assert_eq!(rfc3339(before_epoch), None);
        let ok = std::time::UNIX_EPOCH + std::time::Duration::from_secs(86_400);
        assert_eq!(rfc3339(ok).as_deref(), Some("1970-01-02T00:00:00Z"));
    }

    #[test]
    fn counter_and_login_rules() {
        assert_eq!(next_counter(None).unwrap(), 1);
        assert_eq!(next_counter(Some(&json!(41))).unwrap(), 42);
        assert_eq!(next_counter(Some(&json!("x"))).unwrap_err().status, 409);
        assert_eq!(login_user(&json!({"user": "ada"})).unwrap(), "ada");
        assert_eq!(login_user(&json!({"user": ""})).unwrap_err().status, 422);
        assert_eq!(login_user(&json!([])).unwrap_err().status, 422);
    }
}
