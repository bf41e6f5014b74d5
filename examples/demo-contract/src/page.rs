use mongodb_session_store::UserSession;
use serde_json::{Map, Value};

/// The demo's HTML page: the session's data (sorted by key), the user's
/// active sessions with revoke buttons when logged in, and forms that call
/// the JSON API.
pub fn render_page(data: &Map<String, Value>, sessions: &[UserSession]) -> String {
    let mut entries: Vec<_> = data.iter().collect();
    entries.sort_unstable_by_key(|(k, _)| k.as_str());
    let rows: String = if entries.is_empty() {
        "<tr><td colspan=\"2\"><em>no session data yet</em></td></tr>".into()
    } else {
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
    };
    PAGE.replace("{{rows}}", &rows)
        .replace("{{sessions}}", &sessions_section(sessions))
}

fn sessions_section(sessions: &[UserSession]) -> String {
    if sessions.is_empty() {
        return String::new();
    }
    let items: String = sessions
        .iter()
        .map(|s| {
            let client = escape(s.user_agent.as_deref().unwrap_or("unknown client"));
            let ip = escape(s.ip.as_deref().unwrap_or("?"));
            let action = if s.current {
                "<em>this session</em>".to_string()
            } else {
                format!(
                    "<button onclick=\"call('DELETE', '/api/sessions/{}')\">Revoke</button>",
                    escape(&s.handle)
                )
            };
            format!("<li>{client} from {ip} — {action}</li>")
        })
        .collect();
    format!(
        "<h2>Your active sessions</h2><ul>{items}</ul>\
         <button onclick=\"call('POST', '/api/sessions/revoke-others')\">Log out everywhere else</button>"
    )
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

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>mongodb-session-store demo</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1rem; }
table { border-collapse: collapse; width: 100%; }
td { border: 1px solid #ccc; padding: .3rem .5rem; vertical-align: top; }
form { margin: .6rem 0; }
</style>
</head>
<body>
<h1>Your session</h1>
<table>{{rows}}</table>
{{sessions}}
<form onsubmit="return call('PUT', '/api/session/' + encodeURIComponent(this.key.value), this.value.value)">
  <input name="key" placeholder="key" required>
  <input name="value" placeholder='JSON value, e.g. "hello" or 42' required>
  <button>Set</button>
</form>
<form onsubmit="return call('DELETE', '/api/session/' + encodeURIComponent(this.key.value))">
  <input name="key" placeholder="key" required> <button>Remove</button>
</form>
<form onsubmit="return call('POST', '/api/login', JSON.stringify({user: this.user.value}))">
  <input name="user" placeholder="user name" required> <button>Log in</button>
</form>
<button onclick="call('POST', '/api/counter')">Count</button>
<button onclick="call('POST', '/api/logout')">Log out</button>
<script>
function call(method, path, body) {
  fetch(path, {method, body, headers: {'content-type': 'application/json'}})
    .then(r => r.ok ? location.reload() : r.json().then(e => alert(e.error)));
  return false;
}
</script>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_are_escaped() {
        let data = json!({"<k>": "<script>"}).as_object().unwrap().clone();
        let page = render_page(&data, &[]);
        assert!(page.contains("&lt;k&gt;") && page.contains("&quot;&lt;script&gt;&quot;"));
        assert!(!page.contains("<script>\""));
    }
}
