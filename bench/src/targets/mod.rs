//! This repository's systems under test, each serving `bench/CONTRACT.md`.

pub mod actix;
pub mod bare;
pub mod raw;
pub mod tower;

use mongodb_session_store::{MongoSessionStore, ReadCache};

use crate::contract::{Env, IDLE};

/// The store as a user following the README would configure it for a
/// 1-hour idle session: `touch_after` 30 minutes, optionally with the cache.
///
/// # Errors
///
/// The store could not be built.
pub async fn store(
    env: &Env,
    cache: bool,
) -> Result<MongoSessionStore, Box<dyn std::error::Error>> {
    let client = env.client().await?;
    let mut builder = MongoSessionStore::from_client(client)
        .database(&env.database)
        .collection(&env.collection)
        .idle_timeout(IDLE)
        .touch_after(IDLE / 2);
    if cache {
        builder = builder.cache(ReadCache::new());
    }
    Ok(builder.build().await?)
}
