//! Headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`, installed by `scripts/install-browser`), so tests run
//! the demo page's JavaScript as a person's browser does.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use fantoccini::{wd::WebDriverCompatibleCommand, Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

/// How long a page may take to reach an expected state.
const PATIENCE: Duration = Duration::from_secs(15);

/// A kind of device: its viewport and the User-Agent it sends.
#[derive(Debug, Clone, Copy)]
pub struct Device {
    /// A name for messages ("laptop").
    pub name: &'static str,
    /// Viewport width in CSS pixels.
    pub width: u32,
    /// Viewport height in CSS pixels.
    pub height: u32,
    /// The `User-Agent` header and `navigator.userAgent`.
    pub user_agent: &'static str,
    /// A phone: mobile emulation, so the page's viewport meta applies.
    pub mobile: bool,
}

/// A laptop: Chrome on Linux, 1280×800.
pub const LAPTOP: Device = Device {
    name: "laptop",
    width: 1280,
    height: 800,
    user_agent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/126.0.0.0 Safari/537.36",
    mobile: false,
};

/// A phone: Chrome on Android, 390×844 at 2× (an average modern phone).
pub const PHONE: Device = Device {
    name: "phone",
    width: 390,
    height: 844,
    user_agent: "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 \
                 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
    mobile: true,
};

/// A running chromedriver; each [`open`](Self::open) is a separate browser
/// with its own fresh profile, like a separate device.
#[derive(Debug)]
pub struct Chromium {
    _driver: tokio::process::Child,
    url: String,
}

impl Chromium {
    /// Starts chromedriver (`CHROMEDRIVER`, else `chromedriver` on `PATH`).
    ///
    /// # Panics
    ///
    /// chromedriver is missing or does not answer: this fails the test
    /// rather than skipping it, so CI cannot pass without the browser.
    pub async fn start() -> Self {
        let program = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = tokio::process::Command::new(&program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {program} ({e}): the browser test needs Chromium and \
                     chromedriver; run scripts/install-browser (scripts/test does)"
                )
            });
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        let deadline = Instant::now() + PATIENCE;
        while !reqwest::get(&status)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(
                Instant::now() < deadline,
                "{program} did not answer on {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            _driver: driver,
            url,
        }
    }

    /// A new headless browser for `device`, with an empty profile.
    pub async fn open(&self, device: Device) -> Page {
        static PROFILES: AtomicUsize = AtomicUsize::new(0);
        let profile = std::env::temp_dir().join(format!(
            "mss-chromium-{}-{}",
            std::process::id(),
            PROFILES.fetch_add(1, Ordering::Relaxed)
        ));
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities(device, &profile))
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("starting Chromium for the {}: {e}", device.name));
        Page {
            client,
            device,
            profile,
        }
    }
}

fn capabilities(device: Device, profile: &Path) -> serde_json::Map<String, Value> {
    // Chromium as root needs --no-sandbox; the rest keep it from reaching
    // the network or prompting, so a run is offline and quiet.
    let mut args = vec![
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--hide-scrollbars".into(),
        "--lang=en-US".into(),
        format!("--user-data-dir={}", profile.display()),
        format!("--window-size={},{}", device.width, device.height),
        format!("--user-agent={}", device.user_agent),
    ];
    let mut chrome = json!({ "args": [] });
    if device.mobile {
        chrome["mobileEmulation"] = json!({
            "deviceMetrics": {
                "width": device.width, "height": device.height,
                "pixelRatio": 2.0, "mobile": true, "touch": true,
            },
            "userAgent": device.user_agent,
        });
    } else {
        args.push("--force-device-scale-factor=1".into());
    }
    chrome["args"] = json!(args);
    if let Ok(binary) = std::env::var("CHROME_BIN") {
        chrome["binary"] = json!(binary);
    }
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": chrome,
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    capabilities.as_object().cloned().unwrap_or_default()
}

/// One browser (one device) and what a test does with it.
#[derive(Debug)]
pub struct Page {
    client: Client,
    device: Device,
    profile: PathBuf,
}

impl Page {
    /// Loads `url` and waits for it.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("{}: loading {url}: {e}", self.device.name));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and
    /// returns what it returns.
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("{}: running {script:?}: {e}", self.device.name))
    }

    /// The visible text of the first element matching `selector`, or
    /// `None` when there is none or it is hidden.
    pub async fn text(&self, selector: &str) -> Option<String> {
        self.eval(
            "const e = document.querySelector(arguments[0]);
             return e && e.getClientRects().length > 0 ? e.innerText : null;",
            vec![json!(selector)],
        )
        .await
        .as_str()
        .map(str::to_string)
    }

    /// Whether an element matching `selector` is shown.
    pub async fn shown(&self, selector: &str) -> bool {
        self.text(selector).await.is_some()
    }

    /// Waits until `condition` (a JS expression) is true, re-evaluating it
    /// across page loads; panics with `what` after a while.
    pub async fn wait_until(&self, condition: &str, what: &str) {
        let script = format!("try {{ return !!({condition}); }} catch (e) {{ return false; }}");
        let deadline = Instant::now() + PATIENCE;
        loop {
            // A page being replaced may refuse a script: that is "not yet".
            if let Ok(Value::Bool(true)) = self.client.execute(&script, vec![]).await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: timed out waiting for {what} ({condition}); the page says: {:?}",
                self.device.name,
                self.text("body").await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the element at `selector` shows text containing `needle`.
    pub async fn wait_for_text(&self, selector: &str, needle: &str) {
        let condition = format!(
            "document.querySelector({}).innerText.includes({})",
            json!(selector),
            json!(needle)
        );
        self.wait_until(&condition, &format!("{needle:?} in {selector}"))
            .await;
    }

    /// Types `text` into the input at `selector`, replacing what it held.
    pub async fn fill(&self, selector: &str, text: &str) {
        let field = self.find(selector).await;
        field.clear().await.expect("clearing a field");
        field.send_keys(text).await.expect("typing");
    }

    /// Clicks the element at `selector`.
    pub async fn click(&self, selector: &str) {
        self.find(selector)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("{}: clicking {selector}: {e}", self.device.name));
    }

    async fn find(&self, selector: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("{}: no {selector}: {e}", self.device.name))
    }

    /// The browser console's errors and warnings since the last call
    /// (uncaught exceptions, failed loads such as a missing favicon).
    pub async fn console_problems(&self) -> Vec<String> {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .unwrap_or_else(|e| panic!("{}: reading the browser log: {e}", self.device.name));
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Makes the window as tall as the page, so a screenshot shows all of
    /// it.
    pub async fn fit_height(&self) {
        let height = self
            .eval(
                // The window's height includes its (headless, invisible)
                // frame.
                "return document.documentElement.scrollHeight + outerHeight - innerHeight;",
                vec![],
            )
            .await
            .as_u64()
            .and_then(|h| u32::try_from(h).ok())
            .unwrap_or(self.device.height);
        self.client
            .set_window_size(self.device.width, height.max(self.device.height))
            .await
            .expect("resizing the window");
    }

    /// Saves a PNG of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// Ends the browser and removes its profile.
    pub async fn close(self) {
        let _ = self.client.close().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// chromedriver's log endpoint (not in the W3C protocol, so not in
/// fantoccini): returns and clears the console entries.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}
