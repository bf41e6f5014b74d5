//! Losing the server and getting it back, through a proxy that cuts traffic.

use std::{
    future::Future,
    time::{Duration, Instant, SystemTime},
};

use mongodb_session_store::{AutoRemove, MongoSessionStore, StoreBuilder};
use serde_json::Map;
use testkit::{Proxy, TestDb};

use crate::common::Build;

async fn proxy_or_skip() -> Option<Proxy> {
    match Proxy::start().await {
        Ok(proxy) => Some(proxy),
        Err(reason) => {
            eprintln!("skipped: {reason}");
            None
        }
    }
}

/// A store on the test database through `proxy`, connecting within `bound`.
fn through(proxy: &Proxy, db: &TestDb, bound: Duration) -> StoreBuilder {
    MongoSessionStore::from_uri(proxy.uri(&db.name)).connect_timeout(bound)
}

/// Retries `attempt` until it succeeds or 20 s pass.
async fn eventually<T, E: std::fmt::Debug, F: Future<Output = Result<T, E>>>(
    mut attempt: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(e) if Instant::now() > deadline => panic!("never recovered: {e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test]
async fn an_outage_is_a_typed_error_within_the_bound_and_the_store_recovers() {
    let Some(proxy) = proxy_or_skip().await else {
        return;
    };
    let db = TestDb::new("outage").await;
    let bound = Duration::from_secs(2);
    let store = through(&proxy, &db, bound).operation_timeout(bound);
    let store = store.built().await;
    let id = store.create(&Map::new(), None).await.unwrap();

    proxy.cut();
    for _ in 0..3 {
        let started = Instant::now();
        let err = store.load(&id).await.unwrap_err();
        assert!(err.is_unreachable() || err.is_timeout(), "{err}");
        assert!(err.is_transient(), "{err}");
        assert!(
            started.elapsed() < bound + Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    proxy.restore();
    let loaded = eventually(|| store.load(&id)).await;
    assert!(
        loaded.is_some(),
        "the session is still there after the outage"
    );
}

#[tokio::test]
async fn building_during_an_outage_fails_fast_and_background_removal_survives_one() {
    let Some(proxy) = proxy_or_skip().await else {
        return;
    };
    let db = TestDb::new("outagebuild").await;
    let bound = Duration::from_secs(1);

    proxy.cut();
    let err = through(&proxy, &db, bound).refused().await;
    assert!(err.is_unreachable(), "{err}");
    proxy.restore();

    let every_200ms = AutoRemove::Interval(Duration::from_millis(200));
    let store = through(&proxy, &db, bound).operation_timeout(bound);
    let store = store.auto_remove(every_200ms).built().await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(2)).await; // several failing ticks
    proxy.restore();

    let past = Some(SystemTime::now() - Duration::from_secs(1));
    let empty = Map::new();
    eventually(|| store.create(&empty, past)).await;
    let sessions = db.collection("sessions");
    eventually(|| async {
        match sessions.count_documents(mongodb::bson::doc! {}).await {
            Ok(0) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    store.close().await;
}
