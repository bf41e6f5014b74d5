//! One of this repository's systems under test, serving the HTTP contract of
//! `bench/CONTRACT.md`: `bench-target bare|raw|tower|tower-cache|tower-memory|actix`.

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
        "tower" => targets::tower::router(targets::store(env, false).await?),
        "tower-cache" => targets::tower::router(targets::store(env, true).await?),
        "tower-memory" => targets::tower::router(tower_sessions::MemoryStore::default()),
        other => {
            return Err(format!(
                "unknown system {other:?}: bare, raw, tower, tower-cache, tower-memory or actix"
            )
            .into())
        }
    };
    let listener = tokio::net::TcpListener::bind(env.address()).await?;
    axum::serve(listener, router).await?;
    Ok(())
}
