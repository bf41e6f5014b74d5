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
    hint::black_box,
    time::{Duration, Instant},
};

use mongodb_session_store::{__bench::DocumentCodec, id::generate_id, KeyRing};
use serde_json::{json, Map, Value};

/// A session of about 1 KiB as JSON under 12 top-level keys.
fn one_kib_session() -> Map<String, Value> {
    let session = json!({
        "user": {"id": 48213, "name": "Ada Lovelace", "roles": ["admin", "editor"]},
        "cart": (0..8).map(|i| json!({"sku": format!("SKU-{i:05}"), "qty": i + 1, "price": 9.99 * f64::from(i + 1)})).collect::<Vec<_>>(),
        "prefs": {"theme": "dark", "lang": "en-GB", "tz": "Europe/London", "density": "compact"},
        "csrf": "3q2+7wAAAAAbbbbbCCCCCdddddEEEEEfffffGGGGGhhhhh==",
        "flash": "Your changes were saved.",
        "visits": 17,
        "history": ["/", "/products", "/products/42", "/cart", "/checkout"],
        "address": {"line1": "12 St James's Square", "city": "London", "postcode": "SW1Y 4JH", "country": "GB"},
        "draft": "Dear team, please find attached the quarterly figures. The numbers for the second half look better than expected; details in section three.",
        "experiments": {"checkout_v2": "B", "search_ranking": "control", "banner": "off"},
    });
    let map = session.as_object().unwrap().clone();
    let size = serde_json::to_vec(&map).unwrap().len();
    assert!((900..=1200).contains(&size), "the session is {size} bytes");
    map
}

/// The same values under 4 top-level keys: encryption works per top-level
/// key, so its cost follows the key count more than the byte count.
fn one_kib_in_four_keys() -> Map<String, Value> {
    let mut grouped = Map::new();
    for (i, (key, value)) in one_kib_session().into_iter().enumerate() {
        let group = grouped
            .entry(format!("group{}", i % 4))
            .or_insert_with(|| json!({}));
        group.as_object_mut().unwrap().insert(key, value);
    }
    grouped
}

struct Scenario<'a> {
    name: &'static str,
    codec: &'a DocumentCodec,
    session: Map<String, Value>,
    best_ns: f64,
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
        },
        Scenario {
            name: "12 keys, encrypted",
            codec: &encrypted,
            session: one_kib_session(),
            best_ns: f64::MAX,
        },
        Scenario {
            name: "4 keys, BSON",
            codec: &plain,
            session: one_kib_in_four_keys(),
            best_ns: f64::MAX,
        },
        Scenario {
            name: "4 keys, encrypted",
            codec: &encrypted,
            session: one_kib_in_four_keys(),
            best_ns: f64::MAX,
        },
    ];
    let mut hash_best = f64::MAX;
    for _ in 0..rounds {
        for scenario in &mut scenarios {
            let mut last = None;
            let start = Instant::now();
            for _ in 0..per_round {
                let document = scenario
                    .codec
                    .encode(&stored_id, black_box(&scenario.session))
                    .unwrap();
                last = Some(scenario.codec.decode(black_box(&document)).unwrap());
            }
            let ns = start.elapsed().as_nanos() as f64 / f64::from(per_round);
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
    println!("| scenario | ns/op |");
    println!("|---|---:|");
    for s in &scenarios {
        println!("| {} | {:.0} |", s.name, s.best_ns);
    }
    println!("| id hash (HMAC-SHA-256) | {hash_best:.0} |");
    let total = scenarios[0].best_ns;
    println!(
        "encode + decode + fingerprints, 12 keys: {total:.0} ns/op (goal under 5000: {})",
        verdict(total < 5_000.0)
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

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "not met"
    }
}
