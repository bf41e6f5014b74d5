//! The `metrics` feature: what reaches the application's recorder. Each
//! test installs its own recorder on its own thread
//! (`metrics::with_local_recorder`) and runs the store on a current-thread
//! runtime there, so tests running at once do not see each other's figures.

use std::future::Future;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use testkit::TestDb;

#[cfg(not(feature = "metrics"))]
use crate::common::Build;

/// A figure as the recorder holds it: name, sorted labels, value.
#[derive(Debug, PartialEq)]
struct Figure {
    name: String,
    labels: Vec<(String, String)>,
    value: DebugValue,
}

/// Runs `test` with a fresh recorder on this thread and returns what it
/// recorded.
fn recorded<F: Future<Output = ()>>(test: impl FnOnce() -> F) -> Vec<Figure> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || runtime.block_on(test()));
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            labels.sort();
            Figure {
                name: key.name().to_string(),
                labels,
                value,
            }
        })
        .collect()
}

#[cfg(not(feature = "metrics"))]
#[test]
fn without_the_feature_nothing_is_recorded() {
    let figures = recorded(|| async {
        let db = TestDb::new("observe_nometrics").await;
        let cache = mongodb_session_store::ReadCache::new();
        let store = crate::common::builder(&db).cache(cache).built().await;
        let n1 = serde_json::json!({"n": 1});
        let id = crate::common::new_session(&store, n1, None).await;
        store.load(&id).await.unwrap();
        store.load(&id).await.unwrap();
        store.close().await;
    });
    assert_eq!(figures, vec![]);
}

#[cfg(feature = "metrics")]
mod enabled {
    use serde_json::json;

    use super::{
        super::{cached_store_and_uncached_session, strict_store_and_a_losing_save},
        recorded, DebugValue, Figure, TestDb,
    };

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut labels: Vec<_> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        labels
    }

    fn find<'a>(
        figures: &'a [Figure],
        name: &str,
        pairs: &[(&str, &str)],
    ) -> Option<&'a DebugValue> {
        let wanted = labels(pairs);
        figures
            .iter()
            .find(|f| f.name == name && f.labels == wanted)
            .map(|f| &f.value)
    }

    /// A counter's name, labels and value.
    type Count<'a> = (&'a str, &'a [(&'a str, &'a str)], u64);

    fn counter(figures: &[Figure], name: &str, pairs: &[(&str, &str)]) -> u64 {
        match find(figures, name, pairs) {
            Some(DebugValue::Counter(n)) => *n,
            other => panic!("{name} {pairs:?}: {other:?} in {figures:#?}"),
        }
    }

    #[test]
    fn operations_are_counted_and_timed_by_op_and_outcome() {
        let figures = recorded(|| async {
            let db = TestDb::new("observe_metrics_ops").await;
            let (store, id, losing) = strict_store_and_a_losing_save(&db).await;
            store.save(&id, &losing, None).await.unwrap_err();
            let made_up = mongodb_session_store::id::generate_id();
            store.load(&made_up).await.unwrap();
            store.rewrap().await.unwrap_err();
            store.close().await;
        });
        let ops = "mongodb_sessions_operations_total";
        let errors = "mongodb_sessions_errors_total";
        let trips = "mongodb_sessions_round_trips_total";
        let expected: [Count<'_>; 10] = [
            (ops, &[("op", "create"), ("outcome", "created")], 1),
            (ops, &[("op", "load"), ("outcome", "miss")], 2),
            (ops, &[("op", "load"), ("outcome", "missing")], 1),
            (ops, &[("op", "save"), ("outcome", "updated")], 1),
            (ops, &[("op", "save"), ("outcome", "conflict")], 1),
            (ops, &[("op", "rewrap"), ("outcome", "error")], 1),
            (errors, &[("op", "save"), ("kind", "conflict")], 1),
            (errors, &[("op", "rewrap"), ("kind", "config")], 1),
            // 1 update + 1 failed update and its re-read.
            (trips, &[("op", "save")], 3),
            (trips, &[("op", "load")], 3),
        ];
        for (name, pairs, n) in expected {
            assert_eq!(counter(&figures, name, pairs), n, "{name} {pairs:?}");
        }
        let duration = "mongodb_sessions_operation_duration_seconds";
        match find(&figures, duration, &[("op", "load"), ("outcome", "miss")]) {
            Some(DebugValue::Histogram(samples)) => {
                assert_eq!(samples.len(), 2);
                assert!(
                    samples.iter().all(|s| s.0 > 0.0 && s.0 < 60.0),
                    "{samples:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(figures
            .iter()
            .all(|f| f.name.starts_with("mongodb_sessions_")));
        assert!(
            find(&figures, "mongodb_sessions_cache_misses_total", &[]).is_none(),
            "no cache, no cache figures"
        );
    }

    #[test]
    fn cache_hits_misses_evictions_and_the_change_stream_are_reported() {
        let figures = recorded(|| async {
            let db = TestDb::new("observe_metrics_cache").await;
            let (store, id) = cached_store_and_uncached_session(&db).await;
            let loaded = store.load(&id).await.unwrap().unwrap();
            store.load(&id).await.unwrap().unwrap();
            store.load(&id).await.unwrap().unwrap();
            let mut data = loaded.into_map();
            data.insert("n".into(), json!(2));
            // Cached as written (a replacement, not an eviction) ...
            store.save(&id, &data, None).await.unwrap();
            // ... and evicted by the delete.
            store.delete(&id).await.unwrap();
            // The watcher reports its stream from its own task, which has
            // run during the awaits above (one thread runs them all).
            tokio::task::yield_now().await;
            store.close().await;
        });
        assert_eq!(
            counter(&figures, "mongodb_sessions_cache_hits_total", &[]),
            2
        );
        assert_eq!(
            counter(&figures, "mongodb_sessions_cache_misses_total", &[]),
            1
        );
        let evicted = "mongodb_sessions_cache_evictions_total";
        assert!(counter(&figures, evicted, &[("reason", "invalidated")]) >= 1);
        assert_eq!(
            counter(
                &figures,
                "mongodb_sessions_operations_total",
                &[("op", "load"), ("outcome", "hit")]
            ),
            2
        );
        match find(&figures, "mongodb_sessions_change_stream_up", &[]) {
            Some(DebugValue::Gauge(up)) => assert_eq!(up.0, 1.0),
            other => panic!("the change stream gauge: {other:?}"),
        }
    }
}
