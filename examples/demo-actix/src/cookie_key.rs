//! actix-session always signs (or encrypts) its cookie, so every instance of
//! the demo must share one key. A demo has no secret store; it keeps a
//! random key in its own database, created by whichever instance starts
//! first. A real service loads its key from its secrets instead.

use actix_web::cookie::Key;
use base64::{engine::general_purpose::STANDARD, Engine as _};
use mongodb::bson::{doc, Document};
use mongodb_session_store::MongoSessionStore;

const KEY_ID: &str = "actix-cookie-key";

pub(crate) async fn shared_key(
    store: &MongoSessionStore,
) -> Result<Key, mongodb_session_store::Error> {
    let keys = store
        .collection()
        .client()
        .database(&store.collection().namespace().db)
        .collection::<Document>("demo_keys");
    let fresh = STANDARD.encode(Key::generate().master());
    // Insert-if-absent: concurrent first starts agree on one key.
    let _ = keys
        .update_one(doc! {"_id": KEY_ID}, doc! {"$setOnInsert": {"key": fresh}})
        .upsert(true)
        .await;
    let stored = keys
        .find_one(doc! {"_id": KEY_ID})
        .await
        .ok()
        .flatten()
        .and_then(|d| d.get_str("key").ok().and_then(|k| STANDARD.decode(k).ok()));
    Ok(match stored {
        Some(bytes) if bytes.len() >= 64 => Key::from(&bytes),
        _ => {
            tracing::warn!("could not read the shared cookie key; using a per-process one");
            Key::generate()
        }
    })
}
