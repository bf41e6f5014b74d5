//! The task that keeps a [`SessionCache`] coherent: it tails the sessions
//! collection's change stream and evicts whatever another writer touched.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use mongodb::{
    bson::{doc, Document},
    change_stream::ChangeStream,
    Collection,
};
use tokio::{sync::watch, task::JoinHandle};

use super::SessionCache;

/// Opens the change stream a cache with this staleness `bound` listens to:
/// only what can make a cached session stale, and only the session's key.
pub(crate) async fn open_stream(
    collection: &Collection<Document>,
    bound: Duration,
) -> mongodb::error::Result<ChangeStream<Document>> {
    let pipeline = [
        doc! { "$match": { "operationType": { "$in": [
            "update", "replace", "delete", "invalidate", "drop", "rename", "dropDatabase",
        ] } } },
        doc! { "$project": { "operationType": 1, "documentKey": 1 } },
    ];
    let stream = collection
        .watch()
        .pipeline(pipeline)
        .max_await_time(poll_interval(bound))
        .await?;
    Ok(stream.with_type::<Document>())
}

/// The server answers an idle stream this often, so that silence longer
/// than the bound means trouble, not quiet.
fn poll_interval(bound: Duration) -> Duration {
    (bound / 3).clamp(Duration::from_millis(5), Duration::from_secs(1))
}

/// Tails `stream` until the store stops or is dropped, reopening it after a
/// failure (the cache steps aside meanwhile).
pub(crate) fn spawn_watcher(
    cache: &Arc<SessionCache>,
    collection: Collection<Document>,
    stream: ChangeStream<Document>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let cache = Arc::downgrade(cache);
    tokio::spawn(async move {
        let mut stream = Some(stream);
        let mut failures = 0u32;
        loop {
            let current = match stream.take() {
                Some(open) => open,
                None => {
                    let Some(bound) = cache.upgrade().map(|c| c.bound) else {
                        return;
                    };
                    let reopened = tokio::select! {
                        opened = open_stream(&collection, bound) => opened,
                        _ = stop.changed() => return,
                    };
                    match reopened {
                        Ok(open) => open,
                        Err(error) => {
                            failures += 1;
                            tracing::warn!(%error, "cache: reopening the change stream failed");
                            let pause = Duration::from_millis(100 << failures.min(5));
                            tokio::select! {
                                _ = tokio::time::sleep(pause) => continue,
                                _ = stop.changed() => return,
                            }
                        }
                    }
                }
            };
            failures = 0;
            if !tail(&cache, current, &mut stop).await {
                return;
            }
        }
    })
}

/// Applies events until the stream fails (`true`: reopen) or the store
/// goes away (`false`).
async fn tail(
    cache: &Weak<SessionCache>,
    mut stream: ChangeStream<Document>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    match cache.upgrade() {
        Some(cache) => {
            cache.set_streaming(true);
            cache.heard_from_server();
        }
        None => return false,
    }
    loop {
        let next = tokio::select! {
            next = stream.next_if_any() => next,
            _ = stop.changed() => return false,
        };
        let Some(cache) = cache.upgrade() else {
            return false;
        };
        match next {
            Ok(Some(event)) => {
                cache.heard_from_server();
                cache.changed(changed_key(&event));
            }
            Ok(None) if stream.is_alive() => cache.heard_from_server(),
            Ok(None) => {
                // Invalidated (collection dropped or renamed): start over.
                cache.set_streaming(false);
                return true;
            }
            Err(error) => {
                tracing::warn!(%error, "cache: the change stream failed; reads bypass the cache until it is back");
                cache.set_streaming(false);
                return true;
            }
        }
    }
}

/// The session key an event names, if it names one.
fn changed_key(event: &Document) -> Option<&str> {
    event
        .get_document("documentKey")
        .ok()
        .and_then(|key| key.get_str("_id").ok())
}
