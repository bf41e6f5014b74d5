//! The load generator: closed-loop clients over keep-alive connections,
//! each checking every answer while it measures.

use std::time::{Duration, Instant};

use reqwest::{header, Client, StatusCode};

/// What a request does to its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// `GET /read` of one existing session, shared by every client.
    Read,
    /// `POST /incr`, each client on its own session.
    Modify,
    /// `GET /new` without a cookie: a new session each time.
    New,
}

impl Scenario {
    /// Every scenario, in table order.
    pub const ALL: [Scenario; 3] = [Scenario::Read, Scenario::Modify, Scenario::New];

    /// The name on the command line.
    pub fn key(self) -> &'static str {
        match self {
            Scenario::Read => "read",
            Scenario::Modify => "modify",
            Scenario::New => "new",
        }
    }

    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Read => "read-only",
            Scenario::Modify => "modify",
            Scenario::New => "new session",
        }
    }
}

/// One client's state across the warm-up and the measured run.
#[derive(Debug)]
pub struct Worker {
    http: Client,
    base: String,
    scenario: Scenario,
    cookie: String,
    /// The `n` the next `/incr` must answer.
    next: i64,
}

/// What one run measured.
#[derive(Debug, Default, Clone)]
pub struct Measured {
    /// Requests answered correctly.
    pub requests: u64,
    /// Wrong or failed answers.
    pub errors: u64,
    /// The first wrong answer, for the report.
    pub first_error: Option<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latency of every correct request, in microseconds.
    pub latencies: Vec<u32>,
}

impl Measured {
    /// Correct requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile of latency (0.5 → p50), in milliseconds.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
        f64::from(sorted[rank]) / 1000.0
    }

    fn merge(&mut self, other: Measured) {
        self.requests += other.requests;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies.extend(other.latencies);
    }
}

/// An HTTP client for `concurrency` keep-alive connections.
pub fn client(concurrency: usize) -> Client {
    Client::builder()
        .pool_max_idle_per_host(concurrency.max(1))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// Checks the parts of the contract the scenarios rely on, then prepares
/// `concurrency` clients for `scenario` on the system at `base`.
///
/// # Errors
///
/// The system does not keep the contract.
pub async fn prepare(
    http: &Client,
    base: &str,
    scenario: Scenario,
    concurrency: usize,
) -> Result<Vec<Worker>, String> {
    let anonymous = http
        .get(format!("{base}/read"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if anonymous.status() != StatusCode::UNAUTHORIZED {
        return Err(format!(
            "GET /read without a cookie answered {}",
            anonymous.status()
        ));
    }
    let shared = match scenario {
        Scenario::Read => Some(new_session(http, base).await?),
        _ => None,
    };
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let cookie = match (&shared, scenario) {
            (Some(cookie), _) => cookie.clone(),
            (None, Scenario::Modify) => new_session(http, base).await?,
            (None, _) => String::new(),
        };
        workers.push(Worker {
            http: http.clone(),
            base: base.to_string(),
            scenario,
            cookie,
            next: 1,
        });
    }
    Ok(workers)
}

/// Runs every worker flat out for `duration`; returns them for the next run.
pub async fn drive(workers: Vec<Worker>, duration: Duration) -> (Vec<Worker>, Measured) {
    let start = Instant::now();
    let end = start + duration;
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|worker| tokio::spawn(worker.run_until(end)))
        .collect();
    let mut total = Measured::default();
    let mut back = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (worker, measured) = task.await.expect("a load worker panicked");
        back.push(worker);
        total.merge(measured);
    }
    total.elapsed = start.elapsed();
    (back, total)
}

impl Worker {
    async fn run_until(mut self, end: Instant) -> (Self, Measured) {
        let mut measured = Measured::default();
        while Instant::now() < end {
            let started = Instant::now();
            match self.once().await {
                Ok(()) => {
                    measured.requests += 1;
                    let micros = started.elapsed().as_micros();
                    measured
                        .latencies
                        .push(u32::try_from(micros).unwrap_or(u32::MAX));
                }
                Err(error) => {
                    measured.errors += 1;
                    measured.first_error.get_or_insert(error);
                    if measured.errors > 100 {
                        break; // the system is down; no point hammering it
                    }
                }
            }
        }
        (self, measured)
    }

    async fn once(&mut self) -> Result<(), String> {
        match self.scenario {
            Scenario::Read => {
                let body = self.call(reqwest::Method::GET, "/read").await?;
                expect(&body, "0")
            }
            Scenario::Modify => {
                let body = self.call(reqwest::Method::POST, "/incr").await?;
                expect(&body, &self.next.to_string())?;
                self.next += 1;
                Ok(())
            }
            Scenario::New => new_session(&self.http, &self.base).await.map(drop),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str) -> Result<String, String> {
        let reply = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(header::COOKIE, &self.cookie)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        text(reply).await
    }
}

async fn new_session(http: &Client, base: &str) -> Result<String, String> {
    let reply = http
        .get(format!("{base}/new"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let cookie = cookies(&reply);
    let body = text(reply).await?;
    expect(&body, "created")?;
    if cookie.is_empty() {
        return Err("GET /new set no cookie".into());
    }
    Ok(cookie)
}

/// The `Cookie` header that sends back every cookie `reply` set.
fn cookies(reply: &reqwest::Response) -> String {
    reply
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

async fn text(reply: reqwest::Response) -> Result<String, String> {
    let status = reply.status();
    let body = reply.text().await.map_err(|e| e.to_string())?;
    if status != StatusCode::OK {
        return Err(format!(
            "status {status}: {}",
            body.chars().take(200).collect::<String>()
        ));
    }
    Ok(body)
}

fn expect(body: &str, wanted: &str) -> Result<(), String> {
    if body.trim() == wanted {
        Ok(())
    } else {
        Err(format!(
            "answered {:?}, expected {wanted:?}",
            body.chars().take(200).collect::<String>()
        ))
    }
}
