use std::sync::{Arc, Mutex};

use reqwest::{header, Method, StatusCode};
use serde_json::Value;

/// A minimal browser for one site: it keeps the session cookie it is given
/// and sends it back, so tests exercise full request/cookie round trips.
/// Clones share the cookie, like tabs of one browser.
#[derive(Debug, Clone)]
pub struct Browser {
    http: reqwest::Client,
    base: String,
    cookie_name: String,
    cookie: Arc<Mutex<Option<String>>>,
}

/// A response: status, body as JSON (or `Value::String` of the text if it is
/// not JSON), and the raw `Set-Cookie` headers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: Value,
    /// Every `Set-Cookie` header.
    pub set_cookies: Vec<String>,
}

impl Browser {
    /// A browser for the server at `base` (`http://127.0.0.1:port`) whose
    /// session cookie is called `cookie_name`.
    pub fn new(base: impl Into<String>, cookie_name: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.into(),
            cookie_name: cookie_name.into(),
            cookie: Arc::default(),
        }
    }

    /// A browser with its own, initially empty, cookie.
    pub fn fresh(&self) -> Self {
        Self {
            cookie: Arc::default(),
            ..self.clone()
        }
    }

    /// A browser for another server that shares this one's cookie.
    pub fn at(&self, base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            ..self.clone()
        }
    }

    /// The server's address, `http://127.0.0.1:port`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The session cookie's current value.
    pub fn cookie(&self) -> Option<String> {
        self.cookie.lock().unwrap().clone()
    }

    /// Replaces the session cookie (for replaying an old or forged one).
    pub fn set_cookie(&self, value: Option<String>) {
        *self.cookie.lock().unwrap() = value;
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    /// POST `path` with a JSON body (or none).
    pub async fn post(&self, path: &str, body: Option<Value>) -> Reply {
        self.send(Method::POST, path, body.map(|b| b.to_string()))
            .await
    }

    /// PUT `path` with a JSON body.
    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PUT, path, Some(body.to_string())).await
    }

    /// DELETE `path`.
    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None).await
    }

    /// Sends a raw body (for malformed-input tests).
    pub async fn send(&self, method: Method, path: &str, body: Option<String>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(value) = self.cookie() {
            request = request.header(header::COOKIE, format!("{}={value}", self.cookie_name));
        }
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().await.expect("HTTP request failed");
        let status = response.status();
        let set_cookies: Vec<String> = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        for line in &set_cookies {
            self.absorb(line);
        }
        let text = response.text().await.expect("reading the response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            body,
            set_cookies,
        }
    }

    fn absorb(&self, set_cookie: &str) {
        let mut parts = set_cookie.split(';').map(str::trim);
        let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
            return;
        };
        if name != self.cookie_name {
            return;
        }
        let removed = value.is_empty()
            || parts.any(|attr| {
                let attr = attr.to_ascii_lowercase();
                attr == "max-age=0" || attr.starts_with("max-age=-")
            });
        self.set_cookie((!removed).then(|| value.to_string()));
    }
}
