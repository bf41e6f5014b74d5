//! The session every per-operation measurement uses, so the micro
//! benchmark, the per-stage budget and `tests/alloc.rs` describe the same
//! work: about 1 KiB of JSON under 12 top-level keys.

use serde_json::{json, Map, Value};

/// About 1 KiB as JSON under 12 top-level keys (`tests/alloc.rs` holds a
/// copy; keep the two equal).
///
/// # Panics
///
/// If an edit moved it out of 12 keys or 900–1,200 bytes.
pub fn one_kib_session() -> Map<String, Value> {
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
        "locale": "en",
        "consent": {"analytics": true, "marketing": false},
    });
    let map = session.as_object().expect("an object").clone();
    assert_eq!(map.len(), 12, "the session has 12 keys");
    let size = serde_json::to_vec(&map).expect("JSON").len();
    assert!((900..=1200).contains(&size), "the session is {size} bytes");
    map
}

/// The same values under 4 top-level keys: encryption works per top-level
/// key, so its cost follows the key count more than the byte count.
pub fn one_kib_in_four_keys() -> Map<String, Value> {
    let mut grouped = Map::new();
    for (i, (key, value)) in one_kib_session().into_iter().enumerate() {
        let group = grouped
            .entry(format!("group{}", i % 4))
            .or_insert_with(|| json!({}));
        if let Some(group) = group.as_object_mut() {
            group.insert(key, value);
        }
    }
    grouped
}
