//! `cargo run -p express-compat`: an axum service sharing sessions with a
//! running Express app. Configured by environment variables: those of
//! `examples/demo`, plus `SESSION_SECRET` (comma-separated; the first
//! signs), `COOKIE_NAME` (default `connect.sid`) and `STORE_LAYOUT`
//! (`connect-mongo` | `connect-mongo-object` | `connect-mongodb-session`, or
//! `native` once the collection has been migrated with `mss-migrate`).

mod routes;
mod session;

use demo_contract::Settings;
use mongodb_session_store::{express::ExpressLayout, AutoRemove, MongoSessionStore};

#[tokio::main]
async fn main() {
    demo_contract::main_with("express-compat", run()).await;
}

async fn run() -> Result<(), String> {
    let settings = Settings::from_env()?;
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let secrets = parse_secrets(&var("SESSION_SECRET").unwrap_or_default())?;
    let layout = var("STORE_LAYOUT").unwrap_or_else(|| "connect-mongo".into());
    let mut builder = MongoSessionStore::from_uri(&settings.mongodb_uri)
        .database(&settings.database)
        .collection(&settings.collection)
        .idle_timeout(settings.ttl);
    // `native`: after mss-migrate, Express's cookies keep working on the
    // native layout.
    if layout != "native" {
        builder = builder
            .express_layout(layout.parse::<ExpressLayout>()?)
            // The Express app's store owns the TTL index.
            .auto_remove(AutoRemove::Disabled);
    }
    let store = builder.build().await.map_err(|e| e.to_string())?;
    let config = session::Config {
        store,
        cookie_name: var("COOKIE_NAME").unwrap_or_else(|| "connect.sid".into()),
        secrets,
        secure: settings.cookie_secure,
    };
    let address = format!("{}:{}", settings.host, settings.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    println!("express-compat listening on http://{address}");
    axum::serve(
        listener,
        routes::router(config).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await
    .map_err(|e| e.to_string())
}

/// express-session's `secret`: one or more, comma-separated; the first signs.
fn parse_secrets(text: &str) -> Result<Vec<String>, String> {
    let secrets: Vec<String> = text
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if secrets.is_empty() {
        return Err(
            "SESSION_SECRET is not set: the secret(s) of the Express app, comma-separated".into(),
        );
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::parse_secrets;

    #[test]
    fn secrets_are_required_and_the_first_signs() {
        for empty in ["", ",", " , ,"] {
            assert!(parse_secrets(empty).is_err(), "{empty:?}");
        }
        assert_eq!(parse_secrets("new, old").unwrap(), ["new", "old"]);
    }
}
