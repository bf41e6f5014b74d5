//! The demo's HTML page. It is rendered on the server from the same values
//! the JSON API answers with, so it shows the state at once; its script only
//! calls the API, turns times into "3 minutes ago", and shows errors.

use mongodb_session_store::{users::SignedOut, users::UserSession};
use serde_json::{Map, Value};

/// The demo's HTML page: who is signed in, their devices (readable names,
/// where and when, revoke buttons), the session's data sorted by key, and
/// forms that call the JSON API.
pub fn render_page(
    data: &Map<String, Value>,
    sessions: &[UserSession],
    signed_out: &[SignedOut],
) -> String {
    render(data, &crate::sessions_body(sessions, signed_out))
}

/// The page from the session's data and the `GET /api/sessions` body.
fn render(data: &Map<String, Value>, sessions: &Value) -> String {
    let listed = sessions["sessions"]
        .as_array()
        .is_some_and(|l| !l.is_empty());
    // `user` alone can be put by anyone with PUT /api/session/user; a
    // signed-in user also owns the session, so it is listed.
    let user = data.get("user").and_then(Value::as_str).filter(|_| listed);
    let signed_in = user.is_some();
    let status = match user {
        Some(user) => format!("Signed in as <strong>{}</strong>", escape(user)),
        None => "Not signed in".into(),
    };
    fill(
        PAGE,
        &[
            ("user", escape(user.unwrap_or(""))),
            ("status", status),
            ("hidden-when-in", hidden_if(signed_in).into()),
            ("hidden-when-out", hidden_if(!signed_in).into()),
            ("devices", devices(sessions)),
            ("rows", data_rows(data)),
        ],
    )
}

fn hidden_if(hide: bool) -> &'static str {
    if hide {
        " hidden"
    } else {
        ""
    }
}

fn data_rows(data: &Map<String, Value>) -> String {
    let mut entries: Vec<_> = data.iter().collect();
    entries.sort_unstable_by_key(|(k, _)| k.as_str());
    if entries.is_empty() {
        return "<tr><td colspan=\"2\" class=\"empty\">No session data yet.</td></tr>".into();
    }
    entries
        .into_iter()
        .map(|(k, v)| {
            format!(
                "<tr><td><code>{}</code></td><td><code>{}</code></td></tr>",
                escape(k),
                escape(&v.to_string())
            )
        })
        .collect()
}

/// The device list from the `GET /api/sessions` body: this device first,
/// then the most recently active.
fn devices(body: &Value) -> String {
    let mut list: Vec<&Value> = body["sessions"].as_array().into_iter().flatten().collect();
    list.sort_by_key(|s| {
        (
            s["current"] != true,
            std::cmp::Reverse(s["lastActive"].as_str().unwrap_or("").to_string()),
        )
    });
    let others = list.iter().filter(|s| s["current"] != true).count();
    let items: String = list.into_iter().map(device_item).collect();
    let revoke_others = if others > 0 {
        "<button type=\"button\" id=\"revoke-others\" class=\"danger\">Sign out everywhere else</button>"
    } else {
        "<p class=\"muted\">This is your only signed-in device.</p>"
    };
    format!(
        "<ul class=\"devices\">{items}</ul>{revoke_others}{}",
        signed_out(body)
    )
}

/// The devices signed out by someone else in the last hour, and why.
fn signed_out(body: &Value) -> String {
    let gone: Vec<&Value> = body["signedOut"].as_array().into_iter().flatten().collect();
    if gone.is_empty() {
        return String::new();
    }
    let items: String = gone
        .into_iter()
        .map(|device| {
            let name = escape(device["device"].as_str().unwrap_or("Unknown device"));
            let why = match device["reason"].as_str() {
                Some("session-limit") => "signed out by the device limit",
                _ => "signed out from another device",
            };
            let at = escape(device["at"].as_str().unwrap_or(""));
            format!(
                "<li class=\"signed-out\"><strong>{name}</strong> — {why} \
                 <time datetime=\"{at}\">{at}</time></li>"
            )
        })
        .collect();
    format!("<h3>Recently signed out</h3><ul class=\"devices signed-out\">{items}</ul>")
}

fn device_item(session: &Value) -> String {
    let text = |field: &str, default: &str| escape(session[field].as_str().unwrap_or(default));
    let name = text("device", "Unknown device");
    let ip = text("ip", "an unknown address");
    let when = |field: &str, label: &str| match session[field].as_str() {
        Some(at) => format!(
            "<span>{label} <time datetime=\"{at}\">{at}</time></span>",
            at = escape(at)
        ),
        None => String::new(),
    };
    let (class, badge, action) = if session["current"] == true {
        (
            "device current",
            " <span class=\"badge\">This device</span>",
            String::new(),
        )
    } else {
        (
            "device",
            "",
            format!(
                "<button type=\"button\" class=\"revoke\" data-handle=\"{handle}\" \
                 aria-label=\"Revoke {name} (signed in from {ip})\">Revoke</button>",
                handle = text("handle", ""),
            ),
        )
    };
    format!(
        "<li class=\"{class}\"><div class=\"what\"><span class=\"title\">\
         <strong class=\"name\">{name}</strong>{badge}</span>\
         <span class=\"meta\"><span>Signed in from {ip}</span>{created}{active}</span></div>\
         {action}</li>",
        created = when("createdAt", "· created"),
        active = when("lastActive", "· last active"),
    )
}

/// Replaces each `{{name}}` in `template` once, left to right; what was put
/// in is never scanned again, so user data cannot inject a marker.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let name = &rest[start + 2..start + len];
        out.push_str(&rest[..start]);
        match values.iter().find(|(n, _)| *n == name) {
            Some((_, value)) => out.push_str(value),
            None => out.push_str(&rest[start..start + len + 2]),
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

const PAGE: &str = include_str!("page.html");

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_are_escaped() {
        let data = json!({"<k>": "<script>"}).as_object().unwrap().clone();
        let page = render_page(&data, &[], &[]);
        assert!(page.contains("&lt;k&gt;") && page.contains("&quot;&lt;script&gt;&quot;"));
        assert!(!page.contains("<script>\""));
    }

    #[test]
    fn data_cannot_inject_a_template_marker() {
        let data = json!({"{{status}}": "{{rows}}"})
            .as_object()
            .unwrap()
            .clone();
        let page = render_page(&data, &[], &[]);
        assert!(page.contains("<code>{{status}}</code>"), "{page}");
        assert!(page.contains("&quot;{{rows}}&quot;"), "{page}");
    }

    #[test]
    fn a_signed_in_user_sees_their_devices() {
        let data = json!({"user": "ada"}).as_object().unwrap().clone();
        let sessions = json!({"sessions": [
            {"handle": "h1", "current": false, "device": "Chrome on Android", "ip": "10.0.0.2",
             "createdAt": "2026-01-01T00:00:00Z", "lastActive": "2026-01-02T00:00:00Z"},
            {"handle": "h2", "current": true, "device": "Firefox on Linux", "ip": "10.0.0.1",
             "createdAt": "2026-01-01T00:00:00Z", "lastActive": null},
        ]});
        let page = render(&data, &sessions);
        assert!(page.contains("Signed in as <strong>ada</strong>"), "{page}");
        let this = page.find("Firefox on Linux").unwrap();
        let other = page.find("Chrome on Android").unwrap();
        assert!(this < other, "this device comes first");
        assert!(page.contains("This device") && page.contains("data-handle=\"h1\""));
        assert!(
            !page.contains("data-handle=\"h2\""),
            "no revoke for this device"
        );
        assert!(page.contains("<time datetime=\"2026-01-02T00:00:00Z\">"));
        assert!(page.contains("Sign out everywhere else"));
        assert!(page.contains("id=\"login-section\" hidden"), "{page}");
    }

    #[test]
    fn a_user_key_without_a_listed_session_is_not_signed_in() {
        let data = json!({"user": "mallory"}).as_object().unwrap().clone();
        let page = render_page(&data, &[], &[]);
        assert!(page.contains("Not signed in"), "{page}");
        assert!(page.contains("id=\"logout\" hidden"), "{page}");
        assert!(!page.contains("Signed in as"), "{page}");
    }
}
