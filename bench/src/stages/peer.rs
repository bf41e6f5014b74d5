//! The peer tower-sessions-mongodb-store 0.11's read and modify, its code
//! (`src/lib.rs` of the crate) replayed on this workspace's driver (3.x;
//! the peer's own build uses 2.8): the session is one msgpack blob
//! (`rmp_serde` of the whole `Record`) in a `Binary` beside `expireAt`; a
//! load is `findOne({_id, expireAt: {$gt: now}})` into that struct and one
//! `rmp_serde::from_slice`; a save is `rmp_serde::to_vec`, `to_document`
//! and an `updateOne` upsert. No id hash, no tracking, no liveness guard.

use mongodb::{
    bson::{doc, spec::BinarySubtype, to_document, Binary, DateTime},
    options::UpdateOptions,
    Collection,
};
use serde::{Deserialize, Serialize};
use tower_sessions_core::session::{Id, Record};

use super::{
    ours::{tower_cookie_in, tower_cookie_out, Bench, Shared},
    table::{Column, Stage},
};
use crate::fixture::one_kib_session;

/// The peer's document.
#[derive(Debug, Serialize, Deserialize)]
struct PeerRecord {
    data: Binary,
    #[serde(rename = "expireAt")]
    expiry_date: DateTime,
}

fn encode(record: &Record) -> mongodb::bson::Document {
    let blob = PeerRecord {
        data: Binary {
            subtype: BinarySubtype::Generic,
            bytes: rmp_serde::to_vec(record).expect("msgpack"),
        },
        expiry_date: DateTime::from(std::time::SystemTime::from(record.expiry_date)),
    };
    to_document(&blob).expect("a document")
}

/// The peer's read and modify columns, with our floors (`shared`) beside.
///
/// # Errors
///
/// A driver call failed.
pub fn peer(bench: &Bench<'_>, shared: &Shared) -> Result<[Column; 2], Box<dyn std::error::Error>> {
    let (rt, meter) = (bench.rt, bench.meter);
    let collection: Collection<PeerRecord> = bench.database.collection("peer");
    let record = Record {
        id: Id::default(),
        data: one_kib_session().into_iter().collect(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    let id = record.id;
    let upsert = |record: &Record| {
        collection
            .update_one(
                doc! { "_id": id.to_string() },
                doc! { "$set": encode(record) },
            )
            .with_options(UpdateOptions::builder().upsert(true).build())
    };
    rt.block_on(async { upsert(&record).await })?;
    let find = || {
        collection.find_one(doc! { "_id": id.to_string(), "expireAt": { "$gt": DateTime::now() } })
    };
    let found = rt.block_on(async { find().await })?.ok_or("missing")?;
    let decode = || rmp_serde::from_slice::<Record>(&found.data.bytes).expect("msgpack");
    let header = format!("id={id}");

    let mut read = Column::new("peer read");
    read.set(Stage::CookieIn, meter.call(|| tower_cookie_in(&header)))
        .set(Stage::Find, meter.call_async(rt, find))
        .set(Stage::Decode, meter.call(decode))
        .set(
            Stage::LoadWhole,
            meter.call_async(rt, || async {
                let found = find().await?.expect("present");
                Ok::<_, mongodb::error::Error>(rmp_serde::from_slice::<Record>(&found.data.bytes))
            }),
        );
    let mut modify = read.clone();
    modify.name = "peer modify".into();
    let mut changed = decode();
    let mut visits = 1_000_i64;
    let whole = meter.each_async(
        rt,
        || {
            visits += 1;
            changed.data.insert("visits".into(), visits.into());
            changed.clone()
        },
        |record| async move { (upsert(&record).await, record) },
    );
    modify
        .set(Stage::Plan, meter.call(|| encode(&changed)))
        .set(Stage::Write, {
            let document = encode(&changed);
            meter.call_async(rt, || {
                collection
                    .update_one(
                        doc! { "_id": id.to_string() },
                        doc! { "$set": document.clone() },
                    )
                    .with_options(UpdateOptions::builder().upsert(true).build())
            })
        })
        .set(Stage::RawUpdate, shared.raw_update())
        .set(Stage::SaveWhole, whole)
        .set(Stage::CookieOut, meter.call(|| tower_cookie_out(id)));
    let (read_floor, modify_floor) = shared.floors();
    read.set_floor(read_floor).derive_rests();
    modify.set_floor(modify_floor).derive_rests();
    Ok([read, modify])
}
