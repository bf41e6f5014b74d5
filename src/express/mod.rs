//! Sharing sessions with an Express app: express-session's signed cookie,
//! and the session layouts of connect-mongo and connect-mongodb-session.
//!
//! A service moving from Express to Rust one route at a time keeps one
//! login across both: build the store with
//! [`StoreBuilder::express_layout`](crate::StoreBuilder::express_layout) so
//! it reads and writes the Node store's documents exactly as it does, and
//! verify and issue express-session's `s:<id>.<signature>` cookie with
//! [`unsign`] and [`sign`].
//!
//! ```
//! use mongodb_session_store::express::{sign, unsign};
//!
//! let secrets = ["new-secret", "old-secret"]; // the first signs, all verify
//! let cookie = sign("GQKb0Rk4bV9EcOGk1AOYPs3T_nHEgBqz", secrets[0]);
//! assert_eq!(unsign(&cookie, &secrets).as_deref(), Some("GQKb0Rk4bV9EcOGk1AOYPs3T_nHEgBqz"));
//! assert_eq!(unsign(&cookie.replace('G', "H"), &secrets), None);
//! ```

pub mod migrate;

use base64::{engine::general_purpose::STANDARD_NO_PAD, Engine as _};
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

use crate::schema::ValueRules;

/// The Node store whose documents the store reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpressLayout {
    /// connect-mongo 5.x/6.x with its default `stringify: true`: `session`
    /// is a JSON string; `lastModified` is written when `touch_after` is set.
    ConnectMongo,
    /// connect-mongo with `stringify: false`: `session` is an object.
    ConnectMongoObject,
    /// connect-mongodb-session 5.x: `session` is an object.
    ConnectMongodbSession,
}

impl std::str::FromStr for ExpressLayout {
    type Err = String;

    /// `connect-mongo`, `connect-mongo-object` or `connect-mongodb-session`.
    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "connect-mongo" => Ok(Self::ConnectMongo),
            "connect-mongo-object" => Ok(Self::ConnectMongoObject),
            "connect-mongodb-session" => Ok(Self::ConnectMongodbSession),
            other => Err(format!(
                "unknown layout {other:?}: connect-mongo, connect-mongo-object or connect-mongodb-session"
            )),
        }
    }
}

/// Signs a session id as express-session does (cookie-signature 1.0.x):
/// `s:<id>.<base64 HMAC-SHA-256 without padding>`. URL-encode it (see
/// [`encode_cookie_value`]) before putting it in a `Set-Cookie` header.
pub fn sign(id: &str, secret: &str) -> String {
    format!(
        "s:{id}.{}",
        STANDARD_NO_PAD.encode(mac(id, secret).finalize().into_bytes())
    )
}

/// The session id in a signed cookie value (already URL-decoded), if one of
/// `secrets` signed it; the comparison is constant-time. Unsigned or badly
/// signed values yield `None`.
pub fn unsign(value: &str, secrets: &[impl AsRef<str>]) -> Option<String> {
    let signed = value.strip_prefix("s:")?;
    let (id, signature) = signed.rsplit_once('.')?;
    let signature = STANDARD_NO_PAD.decode(signature).ok()?;
    secrets
        .iter()
        .any(|secret| mac(id, secret.as_ref()).verify_slice(&signature).is_ok())
        .then(|| id.to_string())
}

fn mac(id: &str, secret: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(id.as_bytes());
    mac
}

/// A cookie value as the `cookie` package serializes it
/// (`encodeURIComponent`).
pub fn encode_cookie_value(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, URI_COMPONENT).to_string()
}

/// What `encodeURIComponent` leaves as it is: letters, digits and
/// `-_.!~*'()`.
const URI_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// A cookie value as sent by the browser, percent-decoded; like the
/// `cookie` package (`decodeURIComponent`, which throws on a malformed
/// escape), a value that does not decode is taken as it is.
pub fn decode_cookie_value(value: &str) -> String {
    let well_formed = value
        .split('%')
        .skip(1)
        .all(|after| after.len() >= 2 && after.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit));
    let decoded = well_formed
        .then(|| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .ok()
        })
        .flatten();
    decoded.map_or_else(|| value.to_string(), |text| text.into_owned())
}

/// The Express layouts' [`ValueRules`]: express-session's `cookie` object.
pub(crate) struct CookieRules;

impl ValueRules for CookieRules {
    fn before_write(&self, values: &mut Map<String, Value>, now_ms: i64, ttl_ms: i64) -> i64 {
        apply_cookie_rules(values, now_ms, ttl_ms)
    }
}

/// express-session's rules for a session written from Rust: the session
/// carries a `cookie` object (Express cannot load a session without one);
/// when it has a `maxAge`, every save moves `cookie.expires` to now +
/// `originalMaxAge`, as express-session's touch does; and the document's
/// expiry is `cookie.expires`, or now + `idle_timeout` without one (connect-mongo's
/// rule). Returns the expiry in milliseconds since the epoch.
fn apply_cookie_rules(data: &mut Map<String, Value>, now_ms: i64, ttl_ms: i64) -> i64 {
    let cookie = data
        .entry("cookie")
        .or_insert_with(|| json!({"originalMaxAge": ttl_ms, "httpOnly": true, "path": "/"}));
    let Some(cookie) = cookie.as_object_mut() else {
        return now_ms.saturating_add(ttl_ms);
    };
    if let Some(max_age) = cookie.get("originalMaxAge").and_then(Value::as_i64) {
        let expires = now_ms.saturating_add(max_age);
        cookie.insert("expires".into(), Value::String(iso(expires)));
        return expires;
    }
    cookie
        .get("expires")
        .and_then(Value::as_str)
        .and_then(|text| mongodb::bson::DateTime::parse_rfc3339_str(text).ok())
        .map_or(now_ms.saturating_add(ttl_ms), |dt| dt.timestamp_millis())
}

fn iso(ms: i64) -> String {
    mongodb::bson::DateTime::from_millis(ms)
        .try_to_rfc3339_string()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    // From express-session's README: the cookie for id
    // "DJW_JaSWR-41-zW3df0G0g7HB8t5bwK4" has a 43-character signature.
    #[test]
    fn signatures_match_cookie_signature_and_verify_with_any_listed_secret() {
        let signed = sign("DJW_JaSWR-41-zW3df0G0g7HB8t5bwK4", "keyboard cat");
        let signature = signed.rsplit_once('.').unwrap().1;
        assert_eq!(signature.len(), 43);
        assert!(signed.starts_with("s:DJW_JaSWR-41-zW3df0G0g7HB8t5bwK4."));
        assert!(unsign(&signed, &["other", "keyboard cat"]).is_some());
        assert!(unsign(&signed, &["other"]).is_none());
        assert!(
            unsign("DJW_JaSWR-41-zW3df0G0g7HB8t5bwK4", &["keyboard cat"]).is_none(),
            "unsigned"
        );
        assert!(unsign("s:x.!!!", &["keyboard cat"]).is_none());
    }

    #[test]
    fn cookie_values_are_url_encoded_like_the_cookie_package() {
        let value = "s:abc.de+f/g";
        let encoded = encode_cookie_value(value);
        assert_eq!(encoded, "s%3Aabc.de%2Bf%2Fg");
        assert_eq!(decode_cookie_value(&encoded), value);
        assert_eq!(decode_cookie_value("%zz"), "%zz");
        // decodeURIComponent throws on any malformed escape: all is kept.
        assert_eq!(decode_cookie_value("a%zz%41"), "a%zz%41");
        assert_eq!(decode_cookie_value("%FF"), "%FF", "not UTF-8");
        assert_eq!(encode_cookie_value("é (ok)~"), "%C3%A9%20(ok)~");
    }

    #[test]
    fn cookie_rules_follow_express_session() {
        let mut data = Map::new();
        let expires = apply_cookie_rules(&mut data, 1_000, 60_000);
        assert_eq!(expires, 61_000);
        assert_eq!(data["cookie"]["originalMaxAge"], 60_000);
        assert_eq!(data["cookie"]["httpOnly"], true);

        let mut browser_session = Map::new();
        browser_session.insert(
            "cookie".into(),
            json!({"originalMaxAge": null, "expires": null}),
        );
        assert_eq!(
            apply_cookie_rules(&mut browser_session, 1_000, 5_000),
            6_000
        );
    }
}
