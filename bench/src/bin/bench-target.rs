//! One of this repository's systems under test, serving the HTTP contract of
//! `bench/CONTRACT.md`: `bench-target bare|raw|tower|tower-cache|tower-memory|actix`;
//! the three `tower` systems also as `…-always-save` (`with_always_save(true)`).

use bench::{contract::Env, targets};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let system = std::env::args().nth(1).unwrap_or_default();
    let env = Env::from_env()?;
    if system == "actix" {
        return actix_web::rt::System::new().block_on(async {
            let store = targets::store(&env, false).await?;
            Ok(targets::actix::serve(&env, store).await?)
        });
    }
    tokio::runtime::Runtime::new()?.block_on(serve_axum(&system, &env))
}

async fn serve_axum(system: &str, env: &Env) -> Result<(), Box<dyn std::error::Error>> {
    let (system, always_save) = match system.strip_suffix("-always-save") {
        Some(tower) if tower.starts_with("tower") => (tower, true),
        _ => (system, false),
    };
    let router = match system {
        "bare" => targets::bare::router(),
        "raw" => {
            let collection = env
                .client()
                .await?
                .database(&env.database)
                .collection(&env.collection);
            targets::raw::router(collection)
        }
        "tower" => targets::tower::router(targets::store(env, false).await?, always_save),
        "tower-cache" => targets::tower::router(targets::store(env, true).await?, always_save),
        "tower-memory" => {
            targets::tower::router(tower_sessions::MemoryStore::default(), always_save)
        }
        other => {
            return Err(format!(
                "unknown system {other:?}: bare, raw, tower, tower-cache, tower-memory (each \
                 of the three tower ones also with -always-save) or actix"
            )
            .into())
        }
    };
    let listener = tokio::net::TcpListener::bind(env.address()).await?;
    axum::serve(listener, router).await?;
    Ok(())
}
