//! The read-through cache: hits cost no round trip, and another instance's
//! writes and deletes are honoured (on a real server, `MONGODB_URI`).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, SystemTime},
};

use mongodb::{bson::doc, Client};
use mongodb_session_store::{admin::CacheMode, MongoSessionStore, ReadCache};
use serde_json::json;
use testkit::{
    fault::{FailPoint, Times},
    CommandLog, Proxy, TestDb,
};

use crate::common::{builder, loaded, map, new_session, Build};

async fn cached(client: &Client, db: &TestDb, cache: ReadCache) -> MongoSessionStore {
    MongoSessionStore::from_client(client.clone())
        .database(&db.name)
        .cache(cache)
        .build()
        .await
        .expect("building a cached store")
}

/// How long `load` on `store` keeps finding session `id`, polling closely;
/// panics past the default staleness bound.
async fn time_until_gone(store: &MongoSessionStore, id: &str) -> Duration {
    let start = std::time::Instant::now();
    while store.load(id).await.unwrap().is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "still served after the bound"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

/// Loads `id` on `reader`, polling closely, until it serves `n` as the
/// session's `n`; panics with `stale` if it still serves another after
/// 250 ms.
async fn until_it_serves(reader: &MongoSessionStore, id: &str, n: i32, stale: &str) {
    let start = std::time::Instant::now();
    while reader.load(id).await.unwrap().expect("the session").data["n"] != json!(n) {
        assert!(start.elapsed() < Duration::from_millis(250), "{stale}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Two app instances: separate clients (separate pools), one collection.
/// Both run in this test's process, so "at once" across them is as prompt
/// as the runtime schedules b's watcher; the HTTP suite checks "before the
/// next request" with separate processes.
async fn two_instances(db: &TestDb) -> (MongoSessionStore, MongoSessionStore) {
    let other = Client::with_uri_str(db.uri()).await.unwrap();
    let a = cached(&db.client, db, ReadCache::new()).await;
    let b = cached(&other, db, ReadCache::new()).await;
    (a, b)
}

#[tokio::test]
async fn a_hot_session_loads_without_a_round_trip() {
    let db = TestDb::new("cache_hot").await;
    let (client, log) = CommandLog::client().await;
    let store = cached(&client, &db, ReadCache::new()).await;
    assert_eq!(store.cache_mode(), Some(CacheMode::ChangeStreams));
    let id = new_session(&store, json!({"n": 1}), None).await;

    log.clear();
    for _ in 0..20 {
        let loaded = store.load(&id).await.unwrap().expect("the session");
        assert_eq!(loaded.data, map(json!({"n": 1})));
    }
    assert_eq!(
        log.commands("find").len(),
        0,
        "the create cached what it wrote: no load reads"
    );
    store.close().await;
}

/// Write-through: a save caches what it wrote, with the version it wrote,
/// so a modifying request on a hot session costs its one write and nothing
/// else — and the write's own change event, when it arrives, is recognised
/// and does not evict the entry.
#[tokio::test]
async fn a_cached_modify_costs_one_round_trip_and_its_own_event_evicts_nothing() {
    let db = TestDb::new("cache_write_through").await;
    let (client, log) = CommandLog::client().await;
    let store = cached(&client, &db, ReadCache::new()).await;
    let id = new_session(&store, json!({"n": 0}), None).await;
    log.clear();
    for n in 1..=20 {
        let mut data = loaded(&store, &id).await;
        data.insert("n".into(), json!(n));
        assert_eq!(
            store.save(&id, &data, None).await.unwrap(),
            mongodb_session_store::session::SaveOutcome::Updated
        );
    }
    assert_eq!(log.commands("find").len(), 0, "every load was a hit");
    assert_eq!(log.writes(), 20, "one write per modify");
    // The 20 change events come back meanwhile; none may evict.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = store.load(&id).await.unwrap().expect("the session");
    assert_eq!(loaded.data, map(json!({"n": 20})));
    assert_eq!(
        log.commands("find").len(),
        0,
        "still a hit after the events"
    );
    // And what the cache answers is what the database holds.
    let uncached = builder(&db).built().await;
    let stored = uncached.load(&id).await.unwrap().expect("stored");
    assert_eq!(stored.data, loaded.data);
    assert_eq!(stored.handle, loaded.handle);
    assert_eq!(stored.expires, loaded.expires);
    store.close().await;
}

/// Two requests on one instance save the same loaded session at once: the
/// second write is not the only one since its load, so it must not cache
/// its own view (which lacks the first one's change).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_saves_on_one_instance_never_cache_a_partial_view() {
    let db = TestDb::new("cache_write_overlap").await;
    let store = cached(&db.client, &db, ReadCache::new()).await;
    for round in 0..20 {
        let id = store
            .create(&map(json!({"a": 0, "b": 0})), None)
            .await
            .unwrap();
        let loaded = store.load(&id).await.unwrap().unwrap();
        let mut first = loaded.clone().into_map();
        first.insert("a".into(), json!(round + 1));
        let mut second = loaded.into_map();
        second.insert("b".into(), json!(round + 1));
        let (x, y) = tokio::join!(
            store.save(&id, &first, None),
            store.save(&id, &second, None)
        );
        x.unwrap();
        y.unwrap();
        let now = store.load(&id).await.unwrap().unwrap();
        assert_eq!(
            now.data,
            map(json!({"a": round + 1, "b": round + 1})),
            "round {round}: a partial view was cached"
        );
    }
    store.close().await;
}

/// An entry a save cached is still evicted by another instance's later
/// write, and the other instance's entry by this one's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_through_entries_stay_coherent_across_instances() {
    let db = TestDb::new("cache_write_through_two").await;
    let (a, b) = two_instances(&db).await;
    let id = new_session(&a, json!({"n": 0}), None).await;
    for n in 1..=20 {
        let writer = if n % 2 == 0 { &a } else { &b };
        let reader = if n % 2 == 0 { &b } else { &a };
        let mut data = loaded(writer, &id).await;
        assert_eq!(data["n"], json!(n - 1), "the writer saw the last write");
        data.insert("n".into(), json!(n));
        writer.save(&id, &data, None).await.unwrap();
        let stale = format!("round {n}: a stale copy was served");
        until_it_serves(reader, &id, n, &stale).await;
    }
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn the_cache_is_off_unless_asked_for() {
    let db = TestDb::new("cache_off").await;
    let (client, log) = CommandLog::client().await;
    let store = MongoSessionStore::from_client(client).database(&db.name);
    let store = store.built().await;
    assert_eq!(store.cache_mode(), None);
    let id = new_session(&store, json!({"n": 1}), None).await;
    log.clear();
    store.load(&id).await.unwrap();
    store.load(&id).await.unwrap();
    assert_eq!(log.commands("find").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_on_one_instance_is_honoured_by_the_other_promptly() {
    let db = TestDb::new("cache_logout").await;
    let (a, b) = two_instances(&db).await;
    for round in 0..30 {
        let id = new_session(&a, json!({"round": round}), None).await;
        assert!(b.load(&id).await.unwrap().is_some());
        assert!(b.load(&id).await.unwrap().is_some(), "now cached on b");
        assert!(a.delete(&id).await.unwrap());
        let lag = time_until_gone(&b, &id).await;
        assert!(lag < Duration::from_millis(250), "round {round}: {lag:?}");
        // And a itself never serves what it deleted.
        assert!(a.load(&id).await.unwrap().is_none());
    }
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_instance_is_seen_by_the_other_promptly() {
    let db = TestDb::new("cache_write").await;
    let (a, b) = two_instances(&db).await;
    let id = new_session(&a, json!({"n": 0}), None).await;
    for n in 1..=30 {
        let before = b.load(&id).await.unwrap().expect("the session");
        assert_eq!(before.data["n"], json!(n - 1));
        let mut data = loaded(&a, &id).await;
        data.insert("n".into(), json!(n));
        a.save(&id, &data, None).await.unwrap();
        until_it_serves(&b, &id, n, "b served a stale copy").await;
    }
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_by_another_program_evicts_within_the_bound() {
    let db = TestDb::new("cache_foreign").await;
    let bound = Duration::from_millis(300);
    let store = cached(&db.client, &db, ReadCache::new().staleness_bound(bound)).await;
    let id = new_session(&store, json!({"n": 0}), None).await;
    store.load(&id).await.unwrap().expect("cached");
    // An Express app or an operator removing the session directly.
    db.collection("sessions")
        .delete_one(doc! {"_id": store.stored_id(&id)})
        .await
        .unwrap();
    tokio::time::sleep(bound).await;
    assert!(store.load(&id).await.unwrap().is_none());
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_change_streams_entries_live_at_most_the_staleness_bound() {
    let db = TestDb::new("cache_bound").await;
    let bound = Duration::from_millis(300);
    let cache = ReadCache::new()
        .change_streams(false)
        .staleness_bound(bound);
    let (client, log) = CommandLog::client().await;
    let a = cached(&client, &db, cache.clone()).await;
    let b = cached(&db.client, &db, cache).await;
    assert_eq!(b.cache_mode(), Some(CacheMode::StalenessBound));
    let id = new_session(&a, json!({"n": 0}), None).await;
    log.clear();
    a.load(&id).await.unwrap().expect("the session");
    a.load(&id).await.unwrap().expect("from the cache");
    assert_eq!(log.commands("find").len(), 0, "the create cached it");

    assert!(b.delete(&id).await.unwrap());
    tokio::time::sleep(bound + Duration::from_millis(50)).await;
    assert!(
        a.load(&id).await.unwrap().is_none(),
        "served past the bound"
    );
}

#[tokio::test]
async fn an_expired_session_is_never_served_from_the_cache() {
    let db = TestDb::new("cache_expiry").await;
    let store = cached(&db.client, &db, ReadCache::new()).await;
    let soon = SystemTime::now() + Duration::from_millis(600);
    let id = store
        .create(&map(json!({"n": 0})), Some(soon))
        .await
        .unwrap();
    store.load(&id).await.unwrap().expect("cached");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(store.load(&id).await.unwrap().is_none());
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_racing_writes_never_leave_a_stale_copy() {
    let db = TestDb::new("cache_race").await;
    let (a, b) = two_instances(&db).await;
    let id = new_session(&a, json!({"n": 0}), None).await;
    let reader = {
        let (b, id) = (b.clone(), id.clone());
        tokio::spawn(async move {
            for _ in 0..400 {
                b.load(&id).await.unwrap();
            }
        })
    };
    for n in 1..=40 {
        let mut data = loaded(&a, &id).await;
        data.insert("n".into(), json!(n));
        a.save(&id, &data, None).await.unwrap();
    }
    reader.await.unwrap();
    let last = b.load(&id).await.unwrap().expect("the session");
    assert_eq!(last.data["n"], json!(40));
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_stream_is_lost_the_cache_steps_aside() {
    let Ok(proxy) = Proxy::start().await else {
        eprintln!("skipped: MONGODB_URI is not a single plain host");
        return;
    };
    let db = TestDb::new("cache_outage").await;
    let bound = Duration::from_millis(300);
    let store = MongoSessionStore::from_uri(proxy.uri(&db.name))
        .cache(ReadCache::new().staleness_bound(bound))
        .operation_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let id = new_session(&store, json!({"n": 0}), None).await;
    store.load(&id).await.unwrap().expect("cached");

    proxy.cut();
    tokio::time::sleep(bound * 2).await;
    // Another instance could have logged the user out meanwhile: a cached
    // copy must not be served while nobody can tell.
    assert!(
        store.load(&id).await.is_err(),
        "served from the cache blind"
    );

    proxy.restore();
    let mut back = None;
    for _ in 0..100 {
        if let Ok(found) = store.load(&id).await {
            back = found;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back.is_some(), "the store recovers after the outage");
    store.close().await;
}

/// The byte bound: twelve sessions of 20 kB each, loaded again and again,
/// into a cache of 100 kB: at most four stay (their estimated size is a
/// little over 20 kB), however many entries it may hold.
#[tokio::test]
async fn the_cache_holds_no_more_bytes_than_max_bytes() {
    let db = TestDb::new("cache_bytes").await;
    let (client, log) = CommandLog::named_client("mss-cache-bytes").await;
    let store = cached(&client, &db, ReadCache::new().max_bytes(100_000)).await;
    let blob = "x".repeat(20_000);
    let mut ids = Vec::new();
    for n in 0..12 {
        let data = map(json!({"blob": blob, "n": n}));
        ids.push(store.create(&data, None).await.unwrap());
    }
    for _ in 0..3 {
        for id in &ids {
            store.load(id).await.unwrap().expect("the session");
        }
    }
    let before = finds(&log);
    for id in &ids {
        store.load(id).await.unwrap().expect("the session");
    }
    let hits = ids.len() - (finds(&log) - before);
    assert!(hits <= 4, "{hits} sessions of 20 kB held in 100 kB");
    assert!(hits >= 1, "the cache held nothing");
    store.close().await;
}

#[tokio::test]
async fn a_cache_that_cannot_hold_anything_or_keep_its_bound_is_refused() {
    let db = TestDb::new("cache_config").await;
    for (cache, setting) in [
        (ReadCache::new().max_entries(0), "max_entries"),
        (ReadCache::new().max_bytes(100), "max_bytes"),
        (
            ReadCache::new().staleness_bound(Duration::from_millis(50)),
            "staleness_bound",
        ),
    ] {
        let error = builder(&db).cache(cache).refused().await;
        assert!(error.is_config(), "{error}");
        assert!(error.to_string().contains(setting), "{error}");
    }
}

/// How many `find` commands `log` recorded.
fn finds(log: &CommandLog) -> usize {
    log.commands("find").len()
}

/// The cache's freshness is judged against the server's cluster time, and
/// a stream that keeps up, busy with another program's writes to other
/// sessions, keeps the cache answering long past the staleness bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_keeps_up_keeps_the_cache_answering() {
    let db = TestDb::new("cache_keeps_up").await;
    let bound = Duration::from_secs(1);
    let (client, log) = CommandLog::named_client("mss-cache-keeps-up").await;
    let store = cached(&client, &db, ReadCache::new().staleness_bound(bound)).await;
    assert_eq!(store.cache_mode(), Some(CacheMode::ChangeStreams));
    let hot = new_session(&store, json!({"n": 0}), None).await;
    let other = new_session(&store, json!({"n": 0}), None).await;
    store.load(&hot).await.unwrap().expect("the session");
    let before = finds(&log);

    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (sessions, other, done) = (
            db.collection("sessions"),
            store.stored_id(&other),
            done.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0;
            while !done.load(Ordering::SeqCst) {
                sessions
                    .update_one(doc! {"_id": &other}, doc! {"$set": {"x": n}})
                    .await
                    .unwrap();
                n += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let mut loads = 0;
    let start = std::time::Instant::now();
    while start.elapsed() < bound * 3 {
        store.load(&hot).await.unwrap().expect("the session");
        loads += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    done.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let read = finds(&log) - before;
    // Not a timing claim: a moment of scheduling delay may send a few loads
    // to the database, but a cache that could not judge its stream fresh
    // would send every load after the first bound.
    assert!(
        read * 10 < loads,
        "{read} of {loads} loads read the database"
    );
    store.close().await;
}

/// Whether `store`'s cache answers for session `id` again (a load that
/// sends no `find`, as `log` records them) within 100 tries.
async fn answers_again(store: &MongoSessionStore, id: &str, log: &CommandLog) -> bool {
    for _ in 0..100 {
        store.load(id).await.unwrap().expect("the session");
        let before = finds(log);
        store.load(id).await.unwrap().expect("the session");
        if finds(log) == before {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// What a stalled or lagging stream looks like from here, produced on one
/// node: the other instance's getMore is held by the server while a logout
/// happens. The stream answers nothing new, so within the bound the cache
/// steps aside; when the stream catches up, it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_is_trusted_no_longer_than_the_bound() {
    let db = TestDb::new("cache_stalled").await;
    let bound = Duration::from_millis(300);
    let app = format!("mss-cache-stall-{}", std::process::id());
    let (client, log) = CommandLog::named_client(&app).await;
    let a = cached(&db.client, &db, ReadCache::new().staleness_bound(bound)).await;
    let b = cached(&client, &db, ReadCache::new().staleness_bound(bound)).await;
    let id = new_session(&a, json!({"n": 0}), None).await;
    b.load(&id).await.unwrap().expect("cached on b");

    let hold = Duration::from_millis(2_000);
    let held = i64::try_from(hold.as_millis()).unwrap();
    let held = doc! { "blockConnection": true, "blockTimeMS": held };
    let point = FailPoint::fail_command(&db.client, &app, &["getMore"], Times::Next(1), held);
    let point = match point.await {
        Ok(point) => point,
        Err(why) => {
            eprintln!("{why}");
            b.close().await;
            a.close().await;
            return;
        }
    };
    // b's next getMore is now held.
    let held_at = std::time::Instant::now();
    tokio::time::sleep(bound / 2).await;
    assert!(a.delete(&id).await.unwrap());
    let lag = time_until_gone(&b, &id).await;
    assert!(lag <= bound, "served {lag:?} after the logout");
    assert!(
        held_at.elapsed() < hold,
        "the stream was released before the check"
    );

    // Once the stream is released and catches up, the cache answers again.
    // (The new session is also a write: on the test server, only a write
    // moves a stream past a cluster time that advanced without one.)
    tokio::time::sleep(hold).await;
    let kept = new_session(&a, json!({"n": 1}), None).await;
    let answered = answers_again(&b, &kept, &log).await;
    assert!(answered, "the cache never answered again after the stall");
    assert!(b.load(&id).await.unwrap().is_none());
    point.off().await;
    a.close().await;
    b.close().await;
}
