//! The tasks that keep a [`SessionCache`] coherent: one tails the sessions
//! collection's change stream and evicts whatever another writer touched;
//! the other samples the server's cluster time, so the cache can tell a
//! stream that keeps up from one that merely answers.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use mongodb::{
    bson::{doc, Bson, Document, Timestamp},
    change_stream::ChangeStream,
    options::{ReadPreference, SelectionCriteria},
    Collection, Database,
};
use tokio::{
    sync::watch,
    task::JoinHandle,
    time::{interval, timeout, MissedTickBehavior},
};

use super::{now_ms, SessionCache};

/// Opens the change stream a cache with this staleness `bound` listens to:
/// only what can make a cached session stale, and only the session's key
/// and, for updates, the version they wrote (the layout's `version_field`),
/// by which the cache recognises the events of its own writes.
///
/// # Errors
///
/// Besides the server's own, a stream whose freshness cannot be judged (its
/// resume tokens carry no cluster time this crate can read, or the server
/// reports no cluster time) is refused: the cache then relies on the
/// staleness bound alone.
pub(crate) async fn open_stream(
    collection: &Collection<Document>,
    bound: Duration,
    version_field: Option<&str>,
) -> mongodb::error::Result<ChangeStream<Document>> {
    let mut projection = doc! { "operationType": 1, "documentKey": 1 };
    if let Some(field) = version_field {
        projection.insert(format!("updateDescription.updatedFields.{field}"), 1);
    }
    let pipeline = [
        doc! { "$match": { "operationType": { "$in": [
            "update", "replace", "delete", "invalidate", "drop", "rename", "dropDatabase",
        ] } } },
        doc! { "$project": projection },
    ];
    let stream = collection
        .watch()
        .pipeline(pipeline)
        .max_await_time(poll_interval(bound))
        .await?
        .with_type::<Document>();
    if stream_time(&stream).is_none() {
        return Err(unjudgeable(
            "its resume tokens carry no cluster time this crate reads",
        ));
    }
    if probe(&database(collection)).await?.is_none() {
        return Err(unjudgeable("the server reports no cluster time"));
    }
    Ok(stream)
}

fn unjudgeable(why: &str) -> mongodb::error::Error {
    mongodb::error::Error::custom(format!(
        "the change stream's freshness cannot be judged: {why}"
    ))
}

/// The server answers an idle stream this often, and the cluster time is
/// sampled as often, so that a stream that keeps up is seen to within a
/// fraction of the bound.
fn poll_interval(bound: Duration) -> Duration {
    (bound / 4).clamp(Duration::from_millis(5), Duration::from_secs(1))
}

fn database(collection: &Collection<Document>) -> Database {
    collection.client().database(&collection.namespace().db)
}

/// The server's cluster time now: `$clusterTime` on a `ping` answered by the
/// primary. Every write acknowledged before the ping was sent has a cluster
/// time at or before it.
async fn probe(db: &Database) -> mongodb::error::Result<Option<Timestamp>> {
    let reply = db
        .run_command(doc! { "ping": 1 })
        .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
        .await?;
    Ok(reply
        .get_document("$clusterTime")
        .ok()
        .and_then(|time| time.get_timestamp("clusterTime").ok()))
}

/// Samples the cluster time every poll interval for the cache's freshness
/// judgment, until the store goes away. Costs one `ping` per interval.
async fn probe_cluster_time(cache: Weak<SessionCache>, db: Database, bound: Duration) {
    let mut ticks = interval(poll_interval(bound));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let sent_at = now_ms();
        // A probe that fails or is slow only delays the judgment, which
        // errs toward reading the database.
        let answer = timeout(bound, probe(&db)).await;
        let Some(cache) = cache.upgrade() else { return };
        match answer {
            Ok(Ok(Some(cluster_time))) => cache.probed(sent_at, cluster_time),
            Ok(Ok(None)) => {}
            Ok(Err(error)) => tracing::debug!(%error, "cache: probing the cluster time failed"),
            Err(_) => tracing::debug!("cache: probing the cluster time timed out"),
        }
    }
}

/// Tails `stream` until the store stops or is dropped, reopening it after a
/// failure (the cache steps aside meanwhile), while sampling the cluster
/// time it is judged against.
pub(crate) fn spawn_watcher(
    cache: &Arc<SessionCache>,
    collection: Collection<Document>,
    stream: ChangeStream<Document>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let probes = probe_cluster_time(Arc::downgrade(cache), database(&collection), cache.bound);
    let watch = watch_changes(Arc::downgrade(cache), collection, stream, stop);
    tokio::spawn(async move {
        // The watcher ends with the store; the prober goes with it.
        tokio::select! {
            () = watch => {}
            () = probes => {}
        }
    })
}

async fn watch_changes(
    cache: Weak<SessionCache>,
    collection: Collection<Document>,
    stream: ChangeStream<Document>,
    mut stop: watch::Receiver<bool>,
) {
    let mut stream = Some(stream);
    let mut failures = 0u32;
    loop {
        let current = match stream.take() {
            Some(open) => open,
            None => {
                let Some(live) = cache.upgrade() else {
                    return;
                };
                let (bound, version_field) = (live.bound, live.version_field.clone());
                drop(live);
                let reopened = tokio::select! {
                    opened = open_stream(&collection, bound, version_field.as_deref()) => opened,
                    _ = stop.changed() => return,
                };
                match reopened {
                    Ok(open) => {
                        // Changes between the old stream's end and this one's
                        // start were never delivered. (The first stream was
                        // opened before the cache existed: nothing to undo.)
                        let Some(live) = cache.upgrade() else { return };
                        live.stream_opened();
                        open
                    }
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
}

/// Applies events until the stream fails (`true`: reopen) or the store
/// goes away (`false`).
async fn tail(
    cache: &Weak<SessionCache>,
    mut stream: ChangeStream<Document>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
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
                let version = cache
                    .version_field
                    .as_deref()
                    .and_then(|field| written_version(&event, field));
                cache.changed(changed_key(&event), version);
                cache.stream_answered(stream_time(&stream), false);
            }
            Ok(None) if stream.is_alive() => cache.stream_answered(stream_time(&stream), true),
            Ok(None) => {
                // Invalidated (collection dropped or renamed): start over.
                cache.stream_lost();
                return true;
            }
            Err(error) => {
                tracing::warn!(%error, "cache: the change stream failed; reads bypass the cache until it is back");
                cache.stream_lost();
                return true;
            }
        }
    }
}

/// The cluster time up to which `stream` has delivered every change: the
/// time in its current resume token.
fn stream_time(stream: &ChangeStream<Document>) -> Option<Timestamp> {
    let token = mongodb::bson::to_bson(&stream.resume_token()?).ok()?;
    token_time(&token)
}

/// The cluster time a resume token carries. Tokens are opaque by contract,
/// so this reads the two encodings known: `mongod`'s (4.0.7 and later: hex
/// `_data` whose key string opens with the timestamp, type byte `0x82` then
/// seconds and increment, big-endian) and the test server's (hex `_data`
/// holding a BSON document whose `t` is the timestamp). Anything else is
/// `None`, and such a stream is not used (see [`open_stream`]).
pub(super) fn token_time(token: &Bson) -> Option<Timestamp> {
    let hex = token.as_document()?.get_str("_data").ok()?;
    let bytes = decode_hex(hex)?;
    match bytes.first()? {
        0x82 => {
            let word = |at: usize| -> Option<u32> {
                Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
            };
            Some(Timestamp {
                time: word(1)?,
                increment: word(5)?,
            })
        }
        _ => Document::from_reader(bytes.as_slice())
            .ok()?
            .get_timestamp("t")
            .ok(),
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(hex.get(at..at + 2)?, 16).ok())
        .collect()
}

/// The session key an event names, if it names one.
fn changed_key(event: &Document) -> Option<&str> {
    event
        .get_document("documentKey")
        .ok()
        .and_then(|key| key.get_str("_id").ok())
}

/// The version an update event says it wrote: only an update that
/// incremented the version field carries it.
fn written_version(event: &Document, field: &str) -> Option<i64> {
    if event.get_str("operationType").ok()? != "update" {
        return None;
    }
    match event
        .get_document("updateDescription")
        .ok()?
        .get_document("updatedFields")
        .ok()?
        .get(field)?
    {
        Bson::Int64(v) => Some(*v),
        Bson::Int32(v) => Some(i64::from(*v)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{doc, Bson, Timestamp};

    use super::token_time;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02X}")).collect()
    }

    #[test]
    fn reads_the_cluster_time_of_a_mongod_token() {
        // An insert's token from MongoDB's documentation (8.0).
        let token = doc! { "_data": "82635019A0000000012B022C0100296E5A1004AB1154ACACD849A48C61756D70D3B21F463C6F7065726174696F6E54797065003C696E736572740046646F63756D656E744B65790046645F69640064635019A078BE67426D7CF4D2000004" };
        assert_eq!(
            token_time(&Bson::Document(token)),
            Some(Timestamp {
                time: 0x6350_19A0,
                increment: 1
            })
        );
    }

    #[test]
    fn reads_the_cluster_time_of_a_test_server_token() {
        let inner = doc! { "s": 7_i64, "t": Timestamp { time: 1_700_000_000, increment: 3 }, "n": "", "k": {} };
        let token = doc! { "_data": hex(&mongodb::bson::to_vec(&inner).unwrap()) };
        assert_eq!(
            token_time(&Bson::Document(token)),
            Some(Timestamp {
                time: 1_700_000_000,
                increment: 3
            })
        );
    }

    #[test]
    fn an_unknown_token_has_no_time() {
        for token in [
            Bson::Document(doc! { "_data": "" }),
            Bson::Document(doc! { "_data": "8263" }),
            Bson::Document(doc! { "_data": "zz" }),
            Bson::Document(doc! { "_data": "00112233" }),
            Bson::Document(doc! { "other": 1 }),
            Bson::String("82635019A000000001".into()),
        ] {
            assert_eq!(token_time(&token), None, "{token}");
        }
    }
}
