//! `scripts/soak`: both demo apps under load while their MongoDB server is
//! SIGKILLed and restarted on the same data, several times.
//!
//! Each app gets `--clients` clients, each with a session of its own, that
//! read their session and write a counter into it as fast as answers come.
//! The server (a Rust SecantusDB this process owns, syncing on commit) is
//! killed `--restarts` times, evenly over `--seconds`, and brought back
//! after `--down-ms`. At the end it prints, per app: requests ok and
//! failed, panics in the app's log, requests hung past `--hang-secs`,
//! acknowledged writes lost, and per restart the seconds until every
//! client had a request answered again.
//!
//! Loopback only; bounded in clients, restarts and time.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use serde_json::Value;
use testkit::OwnedServer;

/// A fixed signing key for the actix demo (base64 of 64 bytes), so its
/// cookies mean the same to it for the whole run; the axum demo ignores it.
const SIGNING_KEY: &str =
    "c29hay1vbmx5IHNpZ25pbmcga2V5IGZvciBkZW1vLWFjdGl4OyBuZXZlciB1c2UgdGhpcyBvbmUhISEhISEhIQ==";

#[derive(Debug)]
struct Options {
    demos: Vec<(String, PathBuf)>,
    clients: usize,
    restarts: u32,
    seconds: u64,
    down: Duration,
    hang: Duration,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Self {
            demos: Vec::new(),
            clients: 16,
            restarts: 3,
            seconds: 60,
            down: Duration::from_millis(1000),
            hang: Duration::from_secs(30),
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            let number = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
            match flag.as_str() {
                "--demo" => {
                    let (name, path) = value.split_once('=').ok_or("--demo NAME=PATH")?;
                    options.demos.push((name.into(), path.into()));
                }
                "--clients" => options.clients = number()?.clamp(1, 256) as usize,
                "--restarts" => options.restarts = number()?.min(50) as u32,
                "--seconds" => options.seconds = number()?.clamp(5, 3600),
                "--down-ms" => options.down = Duration::from_millis(number()?.min(60_000)),
                "--hang-secs" => options.hang = Duration::from_secs(number()?.max(1)),
                other => return Err(format!("unknown flag {other}")),
            }
        }
        if options.demos.is_empty() {
            return Err("name at least one --demo NAME=PATH".into());
        }
        Ok(options)
    }
}

/// What one app's clients saw.
#[derive(Debug, Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    hung: AtomicU64,
    lost: AtomicU64,
    slowest_ms: AtomicU64,
}

/// A demo app process with its log.
struct App {
    name: String,
    base: String,
    log: PathBuf,
    child: Child,
    tally: Arc<Tally>,
    /// When each client last had a request answered with success.
    last_ok: Vec<Arc<Mutex<Instant>>>,
    recoveries: Vec<Option<Duration>>,
}

async fn start_app(
    name: &str,
    binary: &PathBuf,
    server: &OwnedServer,
    dir: &std::path::Path,
) -> Result<App, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let log = dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let child = Command::new(binary)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("MONGODB_URI", server.uri(""))
        .env("SESSION_DATABASE", format!("soak_{name}").replace('-', "_"))
        .env("SESSION_SIGNING_KEY", SIGNING_KEY)
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..600 {
        if let Ok(reply) = http.get(format!("{base}/healthz")).send().await {
            if reply.status().is_success() {
                return Ok(App {
                    name: name.into(),
                    base,
                    log,
                    child,
                    tally: Arc::default(),
                    last_ok: Vec::new(),
                    recoveries: Vec::new(),
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("{name} did not answer on {base}/healthz"))
}

/// One client: its own cookie, its own session, a counter it reads and
/// increments. Returns its session cookie and the last value acknowledged.
async fn client(
    base: String,
    tally: Arc<Tally>,
    last_ok: Arc<Mutex<Instant>>,
    stop: Arc<AtomicBool>,
    hang: Duration,
) -> (Option<String>, i64) {
    let http = reqwest::Client::builder()
        .timeout(hang)
        .build()
        .expect("an HTTP client");
    let mut cookie: Option<String> = None;
    let mut acknowledged = 0i64;
    while !stop.load(Ordering::Relaxed) {
        let read = request(&http, &base, &mut cookie, None, &tally).await;
        let Some(body) = read else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        *last_ok.lock().unwrap() = Instant::now();
        let n = body["data"]["n"].as_i64().unwrap_or(0);
        if n < acknowledged {
            tally.lost.fetch_add(1, Ordering::Relaxed);
            acknowledged = n;
        }
        let written = request(&http, &base, &mut cookie, Some(n + 1), &tally).await;
        match written {
            Some(body) if body["data"]["n"] == n + 1 => {
                acknowledged = n + 1;
                *last_ok.lock().unwrap() = Instant::now();
            }
            Some(_) => {} // another value: a lost read-modify-write race is impossible here
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    (cookie, acknowledged)
}

/// `GET /api/session`, or `PUT /api/session/n` with `write`; the body on
/// a 200, `None` (counted) otherwise.
async fn request(
    http: &reqwest::Client,
    base: &str,
    cookie: &mut Option<String>,
    write: Option<i64>,
    tally: &Tally,
) -> Option<Value> {
    let mut builder = match write {
        None => http.get(format!("{base}/api/session")),
        Some(n) => http
            .put(format!("{base}/api/session/n"))
            .header("content-type", "application/json")
            .body(n.to_string()),
    };
    if let Some(value) = cookie.as_deref() {
        builder = builder.header("cookie", format!("sid={value}"));
    }
    let started = Instant::now();
    let sent = builder.send().await;
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tally.slowest_ms.fetch_max(ms, Ordering::Relaxed);
    let response = match sent {
        Ok(response) => response,
        Err(e) => {
            let counter = if e.is_timeout() {
                &tally.hung
            } else {
                &tally.failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    };
    for value in response.headers().get_all("set-cookie") {
        let text = value.to_str().unwrap_or_default();
        if let Some(rest) = text.strip_prefix("sid=") {
            let value = rest.split(';').next().unwrap_or_default();
            *cookie = (!value.is_empty()).then(|| value.to_string());
        }
    }
    let ok = response.status().is_success();
    let body = response.json::<Value>().await.ok();
    match (ok, body) {
        (true, Some(body)) => {
            tally.ok.fetch_add(1, Ordering::Relaxed);
            Some(body)
        }
        _ => {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// How long after `since` every client had a success, or `None` after `limit`.
async fn recovery(
    clients: &[Arc<Mutex<Instant>>],
    since: Instant,
    limit: Duration,
) -> Option<Duration> {
    loop {
        if clients.iter().all(|c| *c.lock().unwrap() > since) {
            return Some(since.elapsed());
        }
        if since.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The final read of each client's session, with a client that never saw
/// an outage: acknowledged values that are not there are lost.
async fn verify(base: &str, sessions: &[(Option<String>, i64)], tally: &Tally) {
    let http = reqwest::Client::new();
    for (cookie, acknowledged) in sessions {
        let mut cookie = cookie.clone();
        if cookie.is_none() {
            continue;
        }
        let body = request(&http, base, &mut cookie, None, &Tally::default()).await;
        let n = body.and_then(|b| b["data"]["n"].as_i64()).unwrap_or(-1);
        if n < *acknowledged {
            tally.lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn panics_in(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("panicked")
        .count()
}

#[tokio::main]
async fn main() {
    if let Err(message) = run().await {
        eprintln!("soak: {message}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let options = Options::parse()?;
    let dir = std::env::temp_dir().join(format!("mss-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut server = OwnedServer::start().await?;
    let mut apps = Vec::new();
    for (name, binary) in &options.demos {
        apps.push(start_app(name, binary, &server, &dir).await?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (index, app) in apps.iter_mut().enumerate() {
        for _ in 0..options.clients {
            let last_ok = Arc::new(Mutex::new(Instant::now()));
            app.last_ok.push(last_ok.clone());
            let task = client(
                app.base.clone(),
                app.tally.clone(),
                last_ok,
                stop.clone(),
                options.hang,
            );
            tasks.push((index, tokio::spawn(task)));
        }
    }
    println!(
        "soak: {} clients per app on {}, {} restarts over {} s, {} ms down each, server syncs on commit",
        options.clients,
        options.demos.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(" and "),
        options.restarts,
        options.seconds,
        options.down.as_millis()
    );

    let started = Instant::now();
    let total = Duration::from_secs(options.seconds);
    for restart in 1..=options.restarts {
        let at = total * restart / (options.restarts + 1);
        tokio::time::sleep(at.saturating_sub(started.elapsed())).await;
        server.kill();
        tokio::time::sleep(options.down).await;
        server.restart().await?;
        let back = Instant::now();
        let limit = Duration::from_secs(60);
        let waits = apps.iter().map(|app| recovery(&app.last_ok, back, limit));
        let took = futures_util::future::join_all(waits).await;
        for (app, took) in apps.iter_mut().zip(took) {
            app.recoveries.push(took);
        }
    }
    tokio::time::sleep(total.saturating_sub(started.elapsed())).await;
    stop.store(true, Ordering::Relaxed);

    let mut sessions: Vec<Vec<(Option<String>, i64)>> = vec![Vec::new(); apps.len()];
    for (index, task) in tasks {
        match task.await {
            Ok(session) => sessions[index].push(session),
            Err(e) => return Err(format!("a client task failed: {e}")),
        }
    }
    println!(
        "| app | requests ok | failed | panics | hung | acknowledged writes lost | slowest (ms) \
         | recovery per restart (s) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (app, sessions) in apps.iter_mut().zip(&sessions) {
        verify(&app.base, sessions, &app.tally).await;
        let recoveries: Vec<String> = app
            .recoveries
            .iter()
            .map(|r| r.map_or("never".into(), |d| format!("{:.2}", d.as_secs_f64())))
            .collect();
        let t = &app.tally;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            app.name,
            t.ok.load(Ordering::Relaxed),
            t.failed.load(Ordering::Relaxed),
            panics_in(&app.log),
            t.hung.load(Ordering::Relaxed),
            t.lost.load(Ordering::Relaxed),
            t.slowest_ms.load(Ordering::Relaxed),
            recoveries.join(", ")
        );
        let _ = app.child.kill();
        let _ = app.child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
