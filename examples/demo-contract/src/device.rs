//! A readable name for the device behind a User-Agent ("Chrome on Android"),
//! so a person can tell their sessions apart.

use woothee::{parser::Parser, woothee::VALUE_UNKNOWN};

/// "Browser on OS" for `user_agent`, as far as it can be told; a client that
/// sent no User-Agent is an "Unknown device".
pub fn describe_device(user_agent: Option<&str>) -> String {
    let Some(agent) = user_agent.filter(|a| !a.trim().is_empty()) else {
        return "Unknown device".into();
    };
    let parsed = Parser::new().parse(agent);
    let known =
        |field: &str| (field != VALUE_UNKNOWN && !field.is_empty()).then(|| field.to_string());
    let browser = parsed.as_ref().and_then(|p| known(p.name));
    let os = parsed.as_ref().and_then(|p| known(p.os));
    match (browser, os) {
        (Some(browser), Some(os)) => format!("{browser} on {os}"),
        (Some(browser), None) => browser,
        (None, Some(os)) => format!("A browser on {os}"),
        (None, None) => "Unknown browser".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_agents_get_readable_names() {
        let cases = [
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/126.0.0.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                "Firefox on Linux",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/126.0.0.0 Safari/537.36",
                "Chrome on Linux",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
                 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari on iPhone",
            ),
        ];
        for (agent, expected) in cases {
            assert_eq!(describe_device(Some(agent)), expected, "{agent}");
        }
        assert_eq!(describe_device(None), "Unknown device");
        assert_eq!(describe_device(Some("curl/8.5.0")), "HTTP Library");
        assert_eq!(describe_device(Some("no such thing")), "Unknown browser");
    }
}
