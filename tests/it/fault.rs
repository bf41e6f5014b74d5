//! Faults: commands failed on the server (`failCommand` failpoints, scoped
//! to the store's client by its `appName`), and the server SIGKILLed and
//! restarted on the same storage under load, with and without the read
//! cache. Every store operation answers with success or a typed error
//! within its bound, never a panic or a hang, and no acknowledged write is
//! lost (the killed server syncs on commit).
//!
//! Failpoint tests need a server with test commands (`scripts/with-mongodb`
//! starts one; a real `mongod` needs `enableTestCommands`); kill tests need
//! a server they start themselves (`TEST_SERVER=rust`). Elsewhere they skip
//! and say why.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use mongodb::bson::{doc, Document};
use mongodb_session_store::{
    session::{LoadedSession, SaveOutcome},
    Error, MongoSessionStore, ReadCache, StoreBuilder,
};
use serde_json::{json, Map, Value};
use testkit::{
    fault::{self, FailPoint, Times, STORE_COMMANDS},
    OwnedServer, TestDb,
};

use crate::common::{loaded, map, named, new_session, Build};

/// The operation timeout of every store here.
const BOUND: Duration = Duration::from_millis(1500);
/// Scheduling slack on top of a bound, on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(750);

fn skip(reason: &str) {
    eprintln!("{reason}");
}

/// A store bounded by [`BOUND`], on a client of its own named `app` (so
/// failpoints can target it).
async fn bounded(uri: &str, app: &str) -> StoreBuilder {
    let options = named(uri, app).await;
    MongoSessionStore::from_client_options(options).operation_timeout(BOUND)
}

/// A store with the default settings but for its bounds ([`BOUND`]) on
/// database `db`, on a client of its own named `app` (so failpoints can
/// target it).
async fn store_named(uri: &str, app: &str, db: &str) -> MongoSessionStore {
    let builder = bounded(uri, app).await.database(db);
    builder.connect_timeout(BOUND).built().await
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Timeout,
    Unreachable,
    Database,
}

impl Outcome {
    /// The outcome, and for an error whether it says retrying may help.
    fn of<T>(result: &Result<T, Error>) -> (Self, bool) {
        let outcome = match result {
            Ok(_) => Self::Ok,
            Err(e) if e.is_timeout() => Self::Timeout,
            Err(e) if e.is_unreachable() => Self::Unreachable,
            Err(e) if e.is_database() => Self::Database,
            Err(e) => panic!("an untyped answer to a server fault: {e:?}"),
        };
        (
            outcome,
            result.as_ref().err().is_some_and(Error::is_transient),
        )
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Load,
    Save,
    Create,
    Delete,
}

impl Op {
    const ALL: [Self; 4] = [Self::Load, Self::Save, Self::Create, Self::Delete];

    fn writes(self) -> bool {
        !matches!(self, Self::Load)
    }
}

/// What one operation met with a fault answered.
#[derive(Debug)]
struct Answer {
    outcome: Outcome,
    transient: bool,
    took: Duration,
}

/// Runs `op` on `store` against an existing session, the failpoint already
/// set, and times it. The setup it needs (a session, its tracked data) is
/// passed in, so only the operation itself meets the fault.
async fn run_op(
    store: &MongoSessionStore,
    op: Op,
    id: &str,
    tracked: &Map<String, Value>,
) -> Answer {
    let started = Instant::now();
    let (outcome, transient) = match op {
        Op::Load => Outcome::of(&store.load(id).await),
        Op::Save => Outcome::of(&store.save(id, tracked, None).await),
        Op::Create => Outcome::of(&store.create(&map(json!({"new": 1})), None).await),
        Op::Delete => Outcome::of(&store.delete(id).await),
    };
    Answer {
        outcome,
        transient,
        took: started.elapsed(),
    }
}

struct Fault {
    name: &'static str,
    data: Document,
    times: Times,
    /// Only writes can meet it (a write concern error).
    writes_only: bool,
    /// The answer every operation must give.
    expected: &'static [Outcome],
}

/// A single dropped connection or state-change error is retried by the
/// driver and succeeds; one that persists, or one the server reports after
/// writing, is a typed error; a server that does not answer within the
/// bound is a timeout.
fn faults() -> Vec<Fault> {
    const FAILED: &[Outcome] = &[Outcome::Database, Outcome::Unreachable];
    let block_ms = i64::try_from((BOUND + Duration::from_secs(1)).as_millis()).unwrap();
    let mut faults = Vec::new();
    let mut both = |name, data: Document, persistent_name| {
        faults.push(Fault {
            name,
            data: data.clone(),
            times: Times::Next(1),
            writes_only: false,
            expected: &[Outcome::Ok],
        });
        faults.push(Fault {
            name: persistent_name,
            data,
            times: Times::Always,
            writes_only: false,
            expected: FAILED,
        });
    };
    both(
        "closeConnection once",
        doc! { "closeConnection": true },
        "closeConnection always",
    );
    for (once, always, code) in [
        (
            "91 ShutdownInProgress once",
            "91 ShutdownInProgress always",
            91,
        ),
        (
            "11600 InterruptedAtShutdown once",
            "11600 InterruptedAtShutdown always",
            11600,
        ),
        (
            "10107 NotWritablePrimary once",
            "10107 NotWritablePrimary always",
            10107,
        ),
        (
            "189 PrimarySteppedDown once",
            "189 PrimarySteppedDown always",
            189,
        ),
    ] {
        both(once, doc! { "errorCode": code }, always);
    }
    faults.push(Fault {
        name: "writeConcernError 64 once",
        data: doc! { "writeConcernError": {
            "code": 64,
            "codeName": "WriteConcernFailed",
            "errmsg": "waiting for replication timed out",
            "errInfo": { "wtimeout": true },
        } },
        times: Times::Next(1),
        writes_only: true,
        expected: &[Outcome::Database],
    });
    faults.push(Fault {
        name: "blockConnection past the bound",
        data: doc! { "blockConnection": true, "blockTimeMS": block_ms },
        times: Times::Next(1),
        writes_only: false,
        expected: &[Outcome::Timeout],
    });
    faults
}

/// One injected fault on one operation, on a store of its own: the answer
/// and how long it took.
async fn one_case(db: &TestDb, fault: &Fault, op: Op, case: usize) -> Result<Answer, String> {
    let app = format!("fault-{}-{case}", db.name);
    let store = store_named(&db.uri(), &app, &db.name).await;
    let id = new_session(&store, json!({"n": 1}), None).await;
    let mut tracked = loaded(&store, &id).await;
    tracked.insert("n".into(), json!(2));
    // A write concern error is a write's: a read the operation makes first
    // (a logout finds the session before recording its ending) must not
    // take the one failure meant for the write.
    let commands: &[&str] = if fault.writes_only {
        &["insert", "update", "delete", "findAndModify"]
    } else {
        STORE_COMMANDS
    };
    let point =
        FailPoint::fail_command(&db.client, &app, commands, fault.times, fault.data.clone())
            .await?;
    // A panic inside the store would end this task, not the test: caught
    // and reported by the join.
    let task = {
        let store = store.clone();
        tokio::spawn(async move { run_op(&store, op, &id, &tracked).await })
    };
    let answer = tokio::time::timeout(BOUND * 3, task).await;
    point.off().await;
    store.close().await;
    match answer {
        Err(_) => panic!("{} on {op:?}: no answer within {:?}", fault.name, BOUND * 3),
        Ok(Err(join)) => panic!("{} on {op:?}: the store panicked: {join}", fault.name),
        Ok(Ok(answer)) => Ok(answer),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_injected_fault_is_answered_within_the_bound() {
    let db = TestDb::new("faultmatrix").await;
    if let Err(reason) = fault::test_commands(&db.client).await {
        return skip(&reason);
    }
    let mut table = Vec::new();
    let mut case = 0;
    for fault in faults() {
        for op in Op::ALL {
            if fault.writes_only && !op.writes() {
                continue;
            }
            case += 1;
            let answer = match one_case(&db, &fault, op, case).await {
                Ok(answer) => answer,
                Err(reason) => return skip(&reason),
            };
            let Answer {
                outcome,
                transient,
                took,
            } = answer;
            table.push(format!(
                "| {} | {op:?} | {outcome:?}{} | {} |",
                fault.name,
                if transient { " (transient)" } else { "" },
                took.as_millis()
            ));
            assert!(
                took <= BOUND + SLACK,
                "{} on {op:?}: {outcome:?} after {took:?}",
                fault.name
            );
            assert!(
                fault.expected.contains(&outcome),
                "{} on {op:?}: {outcome:?}, expected one of {:?}",
                fault.name,
                fault.expected
            );
        }
    }
    eprintln!("fault matrix (bound {BOUND:?}):\n{}", table.join("\n"));
}

/// What the load tasks saw.
#[derive(Debug, Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Operations that took longer than the bound (plus slack).
    hung: AtomicU64,
    slowest_ms: AtomicU64,
}

impl Tally {
    fn record<T>(&self, result: &Result<T, Error>, took: Duration) {
        let counter = if result.is_ok() {
            &self.ok
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if took > BOUND + SLACK {
            self.hung.fetch_add(1, Ordering::Relaxed);
        }
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        self.slowest_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// What the tasks saw, for the test's report.
    fn summary(&self) -> String {
        format!(
            "{} ok, {} failed, {} hung, slowest {} ms",
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.hung.load(Ordering::Relaxed),
            self.slowest_ms.load(Ordering::Relaxed),
        )
    }
}

/// One client with a session of its own: load, increment `n`, save, over
/// and over. Returns the session id and the last `n` a save acknowledged.
async fn client_loop(
    store: MongoSessionStore,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    last_ok: Arc<Mutex<Instant>>,
) -> (String, i64) {
    let id = new_session(&store, json!({"n": 0}), None).await;
    let mut acknowledged = 0;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let loaded = store.load(&id).await;
        tally.record(&loaded, started.elapsed());
        let Ok(loaded) = loaded else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let loaded = loaded.expect("a session with an acknowledged write is never lost");
        let n = loaded.data["n"].as_i64().unwrap();
        assert!(
            n >= acknowledged,
            "read n = {n} after {acknowledged} was acknowledged"
        );
        let mut data = loaded.into_map();
        data.insert("n".into(), json!(n + 1));
        let started = Instant::now();
        let saved = store.save(&id, &data, None).await;
        tally.record(&saved, started.elapsed());
        match saved {
            Ok(SaveOutcome::Updated) => {
                acknowledged = n + 1;
                *last_ok.lock().unwrap() = Instant::now();
            }
            Ok(other) => panic!("saving a changed, live session: {other:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    (id, acknowledged)
}

/// Waits until every client has had a save acknowledged after `since`;
/// returns how long that took, or `None` after `limit`.
async fn all_recovered(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_under_load_loses_no_acknowledged_write() {
    const CLIENTS: usize = 16;
    let mut server = match OwnedServer::start().await {
        Ok(server) => server,
        Err(reason) => return skip(&reason),
    };
    let uri = server.uri("killed");
    let store = store_named(&uri, "killed", "killed").await;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let last_ok: Vec<_> = (0..CLIENTS)
        .map(|_| Arc::new(Mutex::new(Instant::now())))
        .collect();
    let tasks: Vec<_> = last_ok
        .iter()
        .map(|last| {
            let run = client_loop(store.clone(), tally.clone(), stop.clone(), last.clone());
            tokio::spawn(run)
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.restart().await.expect("restarting the server");
    let back = Instant::now();
    let recovery = all_recovered(&last_ok, back, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut acknowledged = Vec::new();
    for task in tasks {
        let joined = tokio::time::timeout(BOUND * 3, task).await;
        let joined = joined.expect("a client hung past the bound after the stop");
        acknowledged.push(joined.expect("a client panicked"));
    }
    let recovery = recovery.expect("every client saved again within 15 s of the restart");
    eprintln!(
        "kill under load: {}, all {CLIENTS} clients recovered {} ms after the server was back",
        tally.summary(),
        recovery.as_millis()
    );
    assert_eq!(
        tally.hung.load(Ordering::Relaxed),
        0,
        "no operation outlived its bound"
    );
    every_acknowledged_write_is_there(&uri, acknowledged).await;
    store.close().await;
}

/// Every acknowledged write (a session id and the last `n` a save of it
/// acknowledged) is in the database at `uri`, read by a client that was
/// never cut off.
async fn every_acknowledged_write_is_there(uri: &str, acknowledged: Vec<(String, i64)>) {
    let fresh = store_named(uri, "killed-check", "killed").await;
    for (id, n) in acknowledged {
        assert!(n > 0, "every client had a write acknowledged");
        let stored = fresh.load(&id).await.unwrap().expect("the session");
        let stored = stored.data["n"].as_i64().unwrap();
        // A save whose acknowledgement the kill swallowed may have landed.
        assert!(stored >= n, "stored n = {stored}, acknowledged {n}");
    }
    fresh.close().await;
}

/// Loads `id` on `store` until it is gone, tolerating errors while the
/// client reconnects; returns how long it was still served.
async fn served_for(store: &MongoSessionStore, id: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        match store.load(id).await {
            Ok(None) => return started.elapsed(),
            Ok(Some(_)) | Err(_) if started.elapsed() < limit => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            other => panic!(
                "still served {:?} after its delete: {other:?}",
                started.elapsed()
            ),
        }
    }
}

/// `count` sessions `other` created, each loaded into `cached`'s cache.
async fn cached_sessions(
    other: &MongoSessionStore,
    cached: &MongoSessionStore,
    count: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..count {
        let id = new_session(other, json!({"n": i}), None).await;
        cached.load(&id).await.unwrap().expect("the session");
        ids.push(id);
    }
    ids
}

/// Deletes session `id` on `store` (or sets its `n` to "changed"), retrying
/// for up to 15 s while the store reconnects.
async fn delete_or_change_once_it_answers(store: &MongoSessionStore, id: &str, delete: bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let done = if delete {
            store.delete(id).await.map(|_| ())
        } else {
            let loaded = store.load(id).await;
            match loaded {
                Ok(Some(loaded)) => {
                    let mut data = loaded.into_map();
                    data.insert("n".into(), json!("changed"));
                    store.save(id, &data, None).await.map(|_| ())
                }
                Ok(None) => panic!("a session vanished in the restart"),
                Err(e) => Err(e),
            }
        };
        match done {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the other instance never recovered: {e}"),
        }
    }
}

/// Three times over, `cached` serves none of the even `ids` (deleted) and
/// every odd one as changed.
async fn serves_none_deleted_and_every_change(cached: &MongoSessionStore, ids: &[String]) {
    for _ in 0..3 {
        for (i, id) in ids.iter().enumerate() {
            let loaded = cached.load(id).await.expect("the server is back");
            if i % 2 == 0 {
                assert!(loaded.is_none(), "session {i} was deleted but is served");
            } else {
                let n = &loaded.expect("the session").data["n"];
                assert_eq!(n, &json!("changed"), "session {i} is served stale");
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_store_serves_nothing_stale_after_the_server_comes_back() {
    const SESSIONS: usize = 16;
    let staleness = Duration::from_millis(500);
    let mut server = match OwnedServer::start().await {
        Ok(server) => server,
        Err(reason) => return skip(&reason),
    };
    let uri = server.uri("cachedkill");
    let cache = ReadCache::new().staleness_bound(staleness);
    let cached = bounded(&uri, "cached").await.connect_timeout(BOUND);
    let cached = cached.cache(cache).built().await;
    let other = store_named(&uri, "other", "cachedkill").await;
    let ids = cached_sessions(&other, &cached, SESSIONS).await;

    server.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.restart().await.expect("restarting the server");
    // Another instance deletes half the sessions and changes the rest while
    // this one's change stream is still down or resuming.
    let changed_at = Instant::now();
    for (i, id) in ids.iter().enumerate() {
        delete_or_change_once_it_answers(&other, id, i % 2 == 0).await;
    }
    let changes_took = changed_at.elapsed();

    // Past the staleness bound, nothing this instance serves is older
    // than the other instance's changes.
    let limit = staleness + SLACK + BOUND;
    let mut longest = Duration::ZERO;
    for (i, id) in ids.iter().enumerate() {
        if i % 2 == 0 {
            longest = longest.max(served_for(&cached, id, limit).await);
        }
    }
    tokio::time::sleep(staleness).await;
    serves_none_deleted_and_every_change(&cached, &ids).await;
    eprintln!(
        "cached store after a kill: the other instance's {SESSIONS} changes took {} ms; a \
         deleted session was served (or unanswered) for at most {} ms after",
        changes_took.as_millis(),
        longest.as_millis()
    );
    cached.close().await;
    other.close().await;
}

/// Loads `id` on `store` until `check` accepts what it serves; panics if
/// that takes longer than `limit`.
async fn until_fresh(
    store: &MongoSessionStore,
    id: &str,
    limit: Duration,
    check: impl Fn(&Option<LoadedSession>) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        match store.load(id).await {
            Ok(loaded) if check(&loaded) => return started.elapsed(),
            other => assert!(
                started.elapsed() < limit,
                "still stale or failing after {:?}: {other:?}",
                started.elapsed()
            ),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Three times over, `cached` serves what the other instance left of four
/// sessions: the first and third deleted, the second changed, the fourth
/// as it was.
async fn serves_what_the_other_left(cached: &MongoSessionStore, ids: &[String]) {
    for _ in 0..3 {
        assert!(cached.load(&ids[0]).await.unwrap().is_none());
        assert!(cached.load(&ids[2]).await.unwrap().is_none());
        let changed = cached.load(&ids[1]).await.unwrap().expect("the session");
        assert_eq!(changed.data["n"], json!("changed"));
        let kept = cached.load(&ids[3]).await.unwrap().unwrap();
        assert_eq!(kept.data["n"], json!(3));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_store_whose_change_stream_drops_serves_nothing_stale() {
    let db = TestDb::new("cachedrop").await;
    if let Err(reason) = fault::test_commands(&db.client).await {
        return skip(&reason);
    }
    let staleness = Duration::from_millis(500);
    let app = format!("cachedrop-{}", db.name);
    let cache = ReadCache::new().staleness_bound(staleness);
    let cached = bounded(&db.uri(), &app).await.cache(cache).built().await;
    let other = store_named(&db.uri(), "cachedrop-other", &db.name).await;
    let ids = cached_sessions(&other, &cached, 4).await;

    // The cache's change stream is cut, and stays cut, while the database
    // itself still answers: another instance's changes go unseen by it.
    let point = FailPoint::fail_command(
        &db.client,
        &app,
        &["getMore", "aggregate"],
        Times::Always,
        doc! { "closeConnection": true },
    )
    .await
    .expect("test commands were available a moment ago");
    other.delete(&ids[0]).await.unwrap();
    let mut data = loaded(&other, &ids[1]).await;
    data.insert("n".into(), json!("changed"));
    other.save(&ids[1], &data, None).await.unwrap();
    let limit = staleness + SLACK;
    let gone = until_fresh(&cached, &ids[0], limit, Option::is_none).await;
    let fresh = until_fresh(&cached, &ids[1], limit, |s| {
        s.as_ref().is_some_and(|s| s.data["n"] == json!("changed"))
    })
    .await;
    tokio::time::sleep(staleness).await;
    assert!(cached.load(&ids[0]).await.unwrap().is_none());

    // The stream comes back: changes made after are honoured too.
    point.off().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    other.delete(&ids[2]).await.unwrap();
    let after = until_fresh(&cached, &ids[2], limit, Option::is_none).await;
    serves_what_the_other_left(&cached, &ids).await;
    eprintln!(
        "cache with its stream cut: a delete elsewhere stopped being served after {} ms, an \
         update after {} ms; with the stream back, a delete after {} ms",
        gone.as_millis(),
        fresh.as_millis(),
        after.as_millis()
    );
    cached.close().await;
    other.close().await;
}
