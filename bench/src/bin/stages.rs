//! The per-stage cost budget of issue 25: one read and one one-key modify
//! of a 12-key, ~1 KiB session through each adapter, stage by stage, in µs
//! of CPU time (this thread's, the server's excluded) and allocations per
//! call, beside the raw driver's floor and the peer
//! tower-sessions-mongodb-store's equivalent.
//!
//! `scripts/with-mongodb cargo run --release -p bench --bin stages` (it
//! needs `MONGODB_URI`; add `-- --quick` for a short smoke run).
//!
//! Every stage is measured in each of several passes over all of them, and
//! each figure is the best of the passes: a stage and the floor it is
//! compared with then see the same spells of a busy machine.

use std::future::IntoFuture;

use bench::{
    contract::IDLE,
    stages::{
        actix::actix,
        ours::{tower, Bench, TOUCH_AFTER},
        peer::peer,
        runtime, table, thread_cpu_ns, Meter,
    },
};
use mongodb_session_store::{__bench::DocumentCodec, MongoSessionStore};

#[global_allocator]
static ALLOCATOR: counting_alloc::Counting = counting_alloc::Counting;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let uri = std::env::var("MONGODB_URI")
        .map_err(|_| "MONGODB_URI is not set (run it under scripts/with-mongodb)")?;
    let rt = runtime()?;
    let client = rt.block_on(mongodb::Client::with_uri_str(&uri))?;
    let database = client.database("bench_stages");
    rt.block_on(database.drop().into_future())?;
    let store = rt.block_on(
        MongoSessionStore::from_client(client.clone())
            .database("bench_stages")
            .idle_timeout(IDLE)
            .touch_after(TOUCH_AFTER)
            .build(),
    )?;
    let bench = Bench {
        rt: &rt,
        meter: Meter::new(quick),
        store: &store,
        sessions: database.collection("sessions"),
        database: database.clone(),
        codec: DocumentCodec::plain(),
    };
    let passes = if quick { 1 } else { 3 };
    let mut columns: Vec<table::Column> = Vec::new();
    for pass in 0..passes {
        eprintln!("pass {} of {passes}", pass + 1);
        let (towers, shared) = tower(&bench)?;
        let actixes = actix(&bench)?;
        let peers = peer(&bench, &shared)?;
        let measured: Vec<_> = towers.into_iter().chain(actixes).chain(peers).collect();
        if columns.is_empty() {
            columns = measured;
        } else {
            for (best, this) in columns.iter_mut().zip(&measured) {
                best.fastest_with(this);
            }
        }
    }
    for column in &mut columns {
        column.derive_rests();
    }
    rt.block_on(database.drop().into_future())?;
    rt.block_on(store.close());

    let clock = if thread_cpu_ns().is_some() {
        "CPU time of the measuring thread (CLOCK_THREAD_CPUTIME_ID)"
    } else {
        "wall-clock time (no thread CPU clock here)"
    };
    let meter = bench.meter;
    println!(
        "Per-stage budget: µs of {clock} / allocations, per call; fastest of {passes} passes \
         of {} rounds of {} calls ({} with a round trip){}. A 12-key, ~1 KiB session; store without cache, \
         ttl {} s, touch_after {} s. The server's own work is in another process and not \
         counted.\n",
        meter.rounds,
        meter.calls,
        meter.trips,
        if quick { ", quick" } else { "" },
        IDLE.as_secs(),
        TOUCH_AFTER.as_secs(),
    );
    println!("{}", table::markdown(&columns));
    Ok(())
}
