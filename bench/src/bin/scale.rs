//! The scale benchmark (`scripts/bench-scale`): the operations CLI over
//! 10,000 / 100,000 (and, with `--million`, 1,000,000) sessions, each
//! operation beside the raw-driver baseline that does the least work for the
//! same result, in the same run, against `MONGODB_URI`. The CLI runs as an
//! operator runs it (its own process, `/usr/bin/time` for its peak RSS);
//! the baselines run in this process with the Rust driver. Seeding is not
//! timed. See docs/benchmarks.md, "Operations at scale".

use std::{
    process::Command,
    time::{Duration, Instant},
};

use clap::Parser;
use mongodb::{
    bson::{doc, Bson, DateTime, Document, RawDocumentBuf},
    options::IndexOptions,
    Client, Collection, IndexModel,
};
use mongodb_session_store::{__bench::DocumentCodec, KeyRing};
use serde_json::{json, Map, Value};

const KEY_1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEY_2: &str = "S2V5IG51bWJlciB0d286IDMyIGJ5dGVzIGxvbmcuLi4=";
const BATCH: usize = 1000;
/// Sessions of the one user whose sessions are listed and revoked.
const OWN: usize = 1000;

#[derive(Debug, Parser)]
#[command(about = "Operations at scale: the CLI beside raw-driver baselines")]
struct Args {
    /// The mongodb-sessions binary (release build).
    #[arg(long, default_value = "target/release/mongodb-sessions")]
    cli: String,
    /// Collection sizes.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    sizes: Vec<usize>,
    /// Add 1,000,000 to the sizes.
    #[arg(long)]
    million: bool,
    /// Which operations to run (rewrap includes stats, user is list and
    /// revoke --all).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "migrate,purge,rewrap,user",
        value_parser = ["migrate", "purge", "rewrap", "user"]
    )]
    only: Vec<String>,
}

/// One row: an operation at one size, ours beside the baseline.
struct Row {
    n: usize,
    operation: &'static str,
    ours: Duration,
    raw: Option<Duration>,
    rss_kb: Option<u64>,
}

#[tokio::main]
async fn main() {
    let mut args = Args::parse();
    if args.million {
        args.sizes.push(1_000_000);
    }
    let uri = std::env::var("MONGODB_URI").expect("MONGODB_URI (scripts/bench-scale sets it)");
    let client = Client::with_uri_str(&uri).await.expect("a client");
    let mut rows = Vec::new();
    for &n in &args.sizes {
        let db = format!("scale_{n}");
        client.database(&db).drop().await.unwrap();
        let cli = Cli {
            binary: args.cli.clone(),
            uri: with_database(&uri, &db),
        };
        let db = client.database(&db);
        let runs = |operation: &str| args.only.iter().any(|o| o == operation);
        if runs("migrate") {
            rows.extend(migrate(&cli, &db, n).await);
        }
        if runs("purge") {
            rows.extend(purge(&cli, &db, n).await);
        }
        if runs("rewrap") {
            rows.extend(rewrap_and_stats(&cli, &db, n).await);
        }
        if runs("user") {
            rows.extend(user(&cli, &db, n).await);
        }
        db.drop().await.unwrap();
        eprintln!("{n}: done");
    }
    print(&rows);
}

struct Cli {
    binary: String,
    uri: String,
}

impl Cli {
    /// Runs `mongodb-sessions --json <args>` under `/usr/bin/time`: the
    /// wall time, the JSON it printed, its peak RSS in KiB.
    fn run(&self, args: &[&str]) -> (Duration, Value, Option<u64>) {
        let start = Instant::now();
        let output = Command::new("/usr/bin/time")
            .args(["-f", "%M", &self.binary, "--uri", &self.uri, "--json"])
            .args(args)
            .output()
            .expect("running mongodb-sessions under /usr/bin/time");
        let elapsed = start.elapsed();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?}: {stdout} {stderr}");
        let rss = stderr.lines().last().and_then(|l| l.trim().parse().ok());
        let json = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        (elapsed, json, rss)
    }
}

fn with_database(uri: &str, db: &str) -> String {
    let (head, query) = uri.split_once('?').unwrap_or((uri, ""));
    let hosts_end = head[10..].find('/').map_or(head.len(), |i| i + 10);
    format!("{}/{db}?{query}", &head[..hosts_end])
}

async fn insert(collection: &Collection<Document>, documents: impl Iterator<Item = Document>) {
    let documents: Vec<Document> = documents.collect();
    for chunk in documents.chunks(BATCH) {
        collection.insert_many(chunk).await.unwrap();
    }
}

fn connect_mongo(i: usize, expires: DateTime) -> Document {
    let session = json!({
        "cookie": {"originalMaxAge": 86_400_000, "expires": "2030-01-01T00:00:00.000Z", "httpOnly": true, "path": "/"},
        "user": format!("user{i}"), "cart": ["book", "pen"], "n": i,
    });
    doc! { "_id": format!("sid-{i:07}-abcdefghijklmnopqrstuv"), "session": session.to_string(), "expires": expires }
}

fn in_ms(ms: i64) -> DateTime {
    DateTime::from_millis(DateTime::now().timestamp_millis() + ms)
}

async fn count(collection: &Collection<Document>) -> u64 {
    collection.count_documents(doc! {}).await.unwrap()
}

/// connect-mongo → native: the CLI's `migrate --into`, a rerun with nothing
/// changed, and the raw copy (find, convert, `insert_many` of 1,000).
async fn migrate(cli: &Cli, db: &mongodb::Database, n: usize) -> Vec<Row> {
    let source = db.collection::<Document>("express");
    let expires = in_ms(86_400_000);
    insert(&source, (0..n).map(|i| connect_mongo(i, expires))).await;

    let raw_target = db.collection::<Document>("raw_native");
    let codec = DocumentCodec::plain();
    let start = Instant::now();
    let mut cursor = source.find(doc! {}).batch_size(BATCH as u32).await.unwrap();
    let mut batch = Vec::with_capacity(BATCH);
    let now = DateTime::now();
    while cursor.advance().await.unwrap() {
        let document = cursor.deserialize_current().unwrap();
        let mut session: Map<String, Value> =
            serde_json::from_str(document.get_str("session").unwrap()).unwrap();
        session.remove("cookie");
        let id = codec.stored_id(document.get_str("_id").unwrap());
        batch.push(doc! {
            "_id": id, "data": mongodb::bson::to_bson(&session).unwrap(),
            "expires": document.get_datetime("expires").unwrap(),
            "createdAt": now, "lastModified": now, "version": 0_i64,
        });
        if batch.len() == BATCH {
            raw_target
                .insert_many(std::mem::take(&mut batch))
                .await
                .unwrap();
        }
    }
    if !batch.is_empty() {
        raw_target.insert_many(batch).await.unwrap();
    }
    let raw = start.elapsed();
    assert_eq!(count(&raw_target).await, n as u64);

    let args = [
        "--collection",
        "express",
        "migrate",
        "--layout",
        "connect-mongo",
    ];
    let into = [&args[..], &["--into", "native", "--yes"]].concat();
    let (ours, report, rss) = cli.run(&into);
    assert_eq!(report["converted"], n, "{report}");
    assert_eq!(count(&db.collection("native")).await, n as u64);
    let (rerun, report, rerun_rss) = cli.run(&into);
    assert_eq!(report["unchanged"], n, "{report}");
    for name in ["express", "raw_native", "native", "native.migration"] {
        db.collection::<Document>(name).drop().await.unwrap();
    }
    vec![
        Row {
            n,
            operation: "migrate",
            ours,
            raw: Some(raw),
            rss_kb: rss,
        },
        Row {
            n,
            operation: "migrate, rerun (nothing changed)",
            ours: rerun,
            raw: None,
            rss_kb: rerun_rss,
        },
    ]
}

fn native(i: usize, expires: DateTime, user: Option<&str>) -> Document {
    let now = DateTime::now();
    let mut document = doc! {
        "_id": format!("s{i:07}"), "data": { "cart": ["book", "pen"], "n": i as i64 },
        "expires": expires, "createdAt": now, "lastModified": now, "version": 0_i64,
    };
    if let Some(user) = user {
        document.insert("user", user);
        document.insert("userAgent", "Firefox/140");
        document.insert("ip", "10.0.0.7");
    }
    document
}

/// `purge-expired` of n expired sessions (no index on the expiry: the
/// deployments that need it have none) beside one raw `deleteMany`, and
/// beside the least a purge bounded per round trip can do: a raw cursor of
/// the expired ids, a batch of 1,000 per round trip, each batch deleted
/// with one `deleteMany` of those ids.
async fn purge(cli: &Cli, db: &mongodb::Database, n: usize) -> Vec<Row> {
    let sessions = db.collection::<Document>("purge");
    let expired = in_ms(-60_000);
    insert(&sessions, (0..n).map(|i| native(i, expired, None))).await;
    let start = Instant::now();
    let deleted = sessions
        .delete_many(doc! { "expires": { "$lte": DateTime::now() } })
        .await
        .unwrap();
    let raw = start.elapsed();
    assert_eq!(deleted.deleted_count, n as u64);

    insert(&sessions, (0..n).map(|i| native(i, expired, None))).await;
    let start = Instant::now();
    let condition = doc! { "expires": { "$lte": DateTime::now() } };
    let find = sessions
        .find(condition.clone())
        .projection(doc! { "_id": 1 });
    let mut cursor = find.batch_size(BATCH as u32).await.unwrap();
    let (mut deleted, mut ids) = (0, Vec::with_capacity(BATCH));
    loop {
        let more = cursor.advance().await.unwrap();
        if more {
            let mut document = cursor.deserialize_current().unwrap();
            ids.push(document.remove("_id").unwrap());
        }
        if ids.len() == BATCH || (!more && !ids.is_empty()) {
            let batch = std::mem::take(&mut ids);
            let filter = doc! { "$and": [{ "_id": { "$in": batch } }, condition.clone()] };
            deleted += sessions.delete_many(filter).await.unwrap().deleted_count;
        }
        if !more {
            break;
        }
    }
    let raw_batched = start.elapsed();
    assert_eq!(deleted, n as u64);

    insert(&sessions, (0..n).map(|i| native(i, expired, None))).await;
    let (ours, report, rss) = cli.run(&["--collection", "purge", "purge-expired", "--yes"]);
    assert_eq!(report["deleted"], n, "{report}");
    sessions.drop().await.unwrap();
    let row = |operation, raw| Row {
        n,
        operation,
        ours,
        raw: Some(raw),
        rss_kb: rss,
    };
    vec![
        row("purge-expired", raw),
        row("purge-expired, beside a raw purge in batches", raw_batched),
    ]
}

/// `rewrap` of n sessions sealed under key 1 (key 2 now primary) beside a
/// raw read and write-back of the same documents; then `stats` beside a
/// raw walk computing the same figures.
async fn rewrap_and_stats(cli: &Cli, db: &mongodb::Database, n: usize) -> Vec<Row> {
    let sessions = db.collection::<RawDocumentBuf>("sealed");
    let codec = DocumentCodec::encrypted(KeyRing::from_base64(1, KEY_1).unwrap());
    let values: Map<String, Value> =
        serde_json::from_value(json!({"cart": ["book", "pen"], "user": "ada", "n": 1})).unwrap();
    let documents: Vec<RawDocumentBuf> = (0..n)
        .map(|i| {
            let id = codec.stored_id(&format!("sealed-{i}"));
            let bytes = codec.encode(&id, &values).unwrap();
            RawDocumentBuf::from_bytes(bytes).unwrap()
        })
        .collect();
    for chunk in documents.chunks(BATCH) {
        sessions.insert_many(chunk).await.unwrap();
    }
    drop(documents);

    // The raw write-back: every document read, its data written back as
    // read, 32 updates in flight (a bulkWrite was slower on this server).
    let plain = db.collection::<Document>("sealed");
    let start = Instant::now();
    let mut cursor = plain.find(doc! {}).batch_size(BATCH as u32).await.unwrap();
    let mut pending = tokio::task::JoinSet::new();
    while cursor.advance().await.unwrap() {
        let document = cursor.deserialize_current().unwrap();
        let filter = doc! { "_id": document.get("_id").cloned().unwrap() };
        let update =
            doc! { "$set": { "data": document.get("data").cloned().unwrap_or(Bson::Null) } };
        let collection = plain.clone();
        pending.spawn(async move { collection.update_one(filter, update).await.unwrap() });
        if pending.len() >= 32 {
            pending.join_next().await.unwrap().unwrap();
        }
    }
    pending.join_all().await;
    let raw_rewrap = start.elapsed();

    let keys = format!("2:{KEY_2},1:{KEY_1}");
    let (ours, report, rss) = cli.run(&[
        "--collection",
        "sealed",
        "--encryption-keys",
        &keys,
        "rewrap",
        "--yes",
    ]);
    assert_eq!(report["rewrapped"], n, "{report}");

    let start = Instant::now();
    let mut cursor = sessions
        .find(doc! {})
        .batch_size(BATCH as u32)
        .await
        .unwrap();
    let (mut live, mut sizes) = (0u64, Vec::with_capacity(n));
    let now = DateTime::now();
    while cursor.advance().await.unwrap() {
        let document = cursor.current();
        sizes.push(document.as_bytes().len());
        if document.get_datetime("expires").is_ok_and(|e| e > now) {
            live += 1;
        }
    }
    sizes.sort_unstable();
    let raw_stats = start.elapsed();
    let (stats, figures, stats_rss) = cli.run(&[
        "--collection",
        "sealed",
        "--encryption-keys",
        &keys,
        "stats",
    ]);
    assert_eq!(
        (&figures["live"], &figures["documents"]),
        (&json!(live), &json!(n)),
        "{figures}"
    );
    plain.drop().await.unwrap();
    vec![
        Row {
            n,
            operation: "rewrap",
            ours,
            raw: Some(raw_rewrap),
            rss_kb: rss,
        },
        Row {
            n,
            operation: "stats",
            ours: stats,
            raw: Some(raw_stats),
            rss_kb: stats_rss,
        },
    ]
}

/// `list` and `revoke --all` of a user with 1,000 sessions among n, beside
/// a raw indexed find and `deleteMany`.
async fn user(cli: &Cli, db: &mongodb::Database, n: usize) -> Vec<Row> {
    let sessions = db.collection::<Document>("users");
    let live = in_ms(3_600_000);
    let owner = |i: usize| {
        if i.is_multiple_of(n / OWN) {
            Some("ada")
        } else {
            None
        }
    };
    insert(&sessions, (0..n).map(|i| native(i, live, owner(i)))).await;
    let partial = IndexOptions::builder()
        .partial_filter_expression(doc! { "user": { "$exists": true } })
        .build();
    let index = IndexModel::builder()
        .keys(doc! { "user": 1 })
        .options(partial)
        .build();
    sessions.create_index(index).await.unwrap();
    let ada = doc! { "user": "ada", "expires": { "$gt": DateTime::now() } };

    let start = Instant::now();
    let mut cursor = sessions.find(ada.clone()).await.unwrap();
    let mut found = 0;
    while cursor.advance().await.unwrap() {
        found += 1;
    }
    let raw_list = start.elapsed();
    assert_eq!(found, OWN);
    let (list, listed, list_rss) = cli.run(&["--collection", "users", "list", "--user", "ada"]);
    assert_eq!(listed["sessions"].as_array().unwrap().len(), OWN);

    let start = Instant::now();
    let deleted = sessions.delete_many(ada).await.unwrap();
    let raw_revoke = start.elapsed();
    assert_eq!(deleted.deleted_count, OWN as u64);
    insert(
        &sessions,
        (0..n)
            .filter(|i| owner(*i).is_some())
            .map(|i| native(i, live, owner(i))),
    )
    .await;
    let (revoke, revoked, revoke_rss) = cli.run(&[
        "--collection",
        "users",
        "revoke",
        "--user",
        "ada",
        "--all",
        "--yes",
    ]);
    assert_eq!(revoked["revoked"], OWN, "{revoked}");
    sessions.drop().await.unwrap();
    vec![
        Row {
            n,
            operation: "list (1,000 of a user)",
            ours: list,
            raw: Some(raw_list),
            rss_kb: list_rss,
        },
        Row {
            n,
            operation: "revoke --all (1,000 of a user)",
            ours: revoke,
            raw: Some(raw_revoke),
            rss_kb: revoke_rss,
        },
    ]
}

fn print(rows: &[Row]) {
    println!(
        "| N | operation | `mongodb-sessions` | sessions/s | raw baseline | ratio | CLI peak RSS |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for row in rows {
        let per_second = row.n as f64 / row.ours.as_secs_f64();
        let raw = row
            .raw
            .map_or("–".into(), |r| format!("{:.2} s", r.as_secs_f64()));
        let ratio = row.raw.map_or("–".into(), |r| {
            format!("{:.1}×", row.ours.as_secs_f64() / r.as_secs_f64())
        });
        let rss = row
            .rss_kb
            .map_or("–".into(), |kb| format!("{:.0} MiB", kb as f64 / 1024.0));
        let per_second = if row.operation.contains("of a user") {
            "–".into()
        } else {
            format!("{per_second:.0}")
        };
        println!(
            "| {} | {} | {:.2} s | {per_second} | {raw} | {ratio} | {rss} |",
            group(row.n),
            row.operation,
            row.ours.as_secs_f64(),
        );
    }
}

/// 100000 → "100,000".
fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
