//! The store's own work per operation, without the network: encoding a
//! 1 KiB session into the bytes of its document and decoding those bytes
//! back as a load does (values, fingerprints for the save, the session's
//! handle), plain and encrypted, and hashing an id. Every round checks its
//! result.
//!
//! `cargo run --release -p bench --bin micro` (add `-- --quick` for a short
//! smoke run, as CI does).
//!
//! Scenarios are measured interleaved, round by round, and the fastest round
//! is reported: on a shared machine, noise only ever adds time.

use std::{
    collections::HashMap,
    hint::black_box,
    time::{Duration, Instant},
};

use bench::fixture::{one_kib_in_four_keys, one_kib_session};
use counting_alloc::{counts, Counting};
use mongodb_session_store::{__bench::DocumentCodec, id::generate_id, KeyRing};
use serde_json::{Map, Value};

// Allocations per operation are counted beside the time (a thread-local
// increment per allocation: a few ns on figures of tens of µs).
#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct Scenario<'a> {
    name: &'static str,
    codec: &'a DocumentCodec,
    session: Map<String, Value>,
    best_ns: f64,
    allocations: f64,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, per_round) = if quick { (3, 200) } else { (15, 4_000) };
    let plain = DocumentCodec::plain();
    let encrypted = DocumentCodec::encrypted(KeyRing::new(1, [7u8; 32]).unwrap());
    let id = generate_id();
    let stored_id = plain.stored_id(&id);

    let mut scenarios = [
        Scenario {
            name: "12 keys, BSON",
            codec: &plain,
            session: one_kib_session(),
            best_ns: f64::MAX,
            allocations: f64::MAX,
        },
        Scenario {
            name: "12 keys, encrypted",
            codec: &encrypted,
            session: one_kib_session(),
            best_ns: f64::MAX,
            allocations: f64::MAX,
        },
        Scenario {
            name: "4 keys, BSON",
            codec: &plain,
            session: one_kib_in_four_keys(),
            best_ns: f64::MAX,
            allocations: f64::MAX,
        },
        Scenario {
            name: "4 keys, encrypted",
            codec: &encrypted,
            session: one_kib_in_four_keys(),
            best_ns: f64::MAX,
            allocations: f64::MAX,
        },
    ];
    let mut hash_best = f64::MAX;
    let (mut round_trip_best, mut round_trip_best_allocations) = (f64::MAX, f64::MAX);
    for _ in 0..rounds {
        for scenario in &mut scenarios {
            let mut last = None;
            let allocated = counts();
            let start = Instant::now();
            for _ in 0..per_round {
                let document = scenario
                    .codec
                    .encode(&stored_id, black_box(&scenario.session))
                    .unwrap();
                last = Some(scenario.codec.decode(black_box(&document)).unwrap());
            }
            let ns = start.elapsed().as_nanos() as f64 / f64::from(per_round);
            let allocations = (counts() - allocated).allocations as f64 / f64::from(per_round);
            scenario.allocations = scenario.allocations.min(allocations);
            assert_eq!(
                last.as_ref(),
                Some(&scenario.session),
                "{} came back changed",
                scenario.name
            );
            scenario.best_ns = scenario.best_ns.min(ns);
        }
        let start = Instant::now();
        for _ in 0..per_round {
            black_box(plain.stored_id(black_box(&id)));
        }
        hash_best = hash_best.min(start.elapsed().as_nanos() as f64 / f64::from(per_round));
        assert_eq!(plain.stored_id(&id).len(), 43);
        let start = Instant::now();
        for _ in 0..per_round {
            round_trip_best_allocations = round_trip_best_allocations.min(compared(
                &plain,
                &stored_id,
                &scenarios[0].session,
            ));
        }
        round_trip_best =
            round_trip_best.min(start.elapsed().as_nanos() as f64 / f64::from(per_round));
    }
    std::thread::sleep(Duration::from_millis(1));

    println!(
        "store work per operation: encode a 1 KiB session's document to bytes, and load it back \
         (decode from the bytes, fingerprint every value)"
    );
    println!(
        "(fastest of {rounds} interleaved rounds of {per_round}{})",
        if quick { ", quick" } else { "" }
    );
    println!("| scenario | ns/op | allocations/op |");
    println!("|---|---:|---:|");
    for s in &scenarios {
        println!("| {} | {:.0} | {:.0} |", s.name, s.best_ns, s.allocations);
    }
    println!("| id hash (HMAC-SHA-256) | {hash_best:.0} | – |");
    println!(
        "| 12 keys, BSON, + tracking entry, tower's map and the save's comparison (unchanged) | \
         {round_trip_best:.0} | {round_trip_best_allocations:.0} |"
    );
    let total = scenarios[0].best_ns;
    println!(
        "encode + decode + fingerprints, 12 keys: {total:.0} ns/op; with the save's comparison \
         (issue 25: decode + encode + compare): {round_trip_best:.0} ns/op (goal under 5000: {})",
        verdict(round_trip_best < 5_000.0)
    );
    for (plain, sealed) in [
        (&scenarios[0], &scenarios[1]),
        (&scenarios[2], &scenarios[3]),
    ] {
        let overhead = sealed.best_ns - plain.best_ns;
        println!(
            "crypto overhead, {}: {overhead:.0} ns/op ({:.2}x plain; goal under 3000: {})",
            &plain.name[..plain.name.find(',').unwrap()],
            sealed.best_ns / plain.best_ns,
            verdict(overhead < 3_000.0)
        );
    }
}

/// Encode, decode as a load does (fingerprints, handle, tracking entry),
/// the map as tower-sessions holds it, and the save's comparison of it,
/// unchanged; returns the allocations it made (and checks it found no
/// change).
fn compared(codec: &DocumentCodec, stored_id: &str, session: &Map<String, Value>) -> f64 {
    let allocated = counts();
    let bytes = codec.encode(stored_id, black_box(session)).unwrap();
    let raw = mongodb::bson::RawDocument::from_bytes(&bytes).unwrap();
    let loaded = codec.prepare(codec.decode_document(raw).unwrap());
    let map: HashMap<String, Value> = loaded.into_map().into_iter().collect();
    let changed = codec.compare(black_box(&map));
    let allocations = (counts() - allocated).allocations as f64;
    assert_eq!(changed, Some(0), "an unchanged session compared as changed");
    allocations
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "not met"
    }
}
