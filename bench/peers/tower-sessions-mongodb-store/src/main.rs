//! Benchmark peer: axum + tower-sessions + tower-sessions-mongodb-store, serving
//! the contract in bench/CONTRACT.md. Configured as the crate's README shows:
//! `MongoDBStore::new(client, <database>)`, the expired-session deletion task
//! every 60 s, `with_secure(false)`, and `Expiry::OnInactivity(1 hour)`.

use std::{env, net::SocketAddr};

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use tower_sessions::{ExpiredDeletion, Expiry, Session, SessionManagerLayer};
use tower_sessions_mongodb_store::{
    mongodb::{bson::doc, options::ClientOptions, Client},
    MongoDBStore,
};

fn var(name: &str) -> String {
    env::var(name).unwrap_or_else(|_| panic!("{name} must be set"))
}

async fn health() -> &'static str {
    "ok"
}

async fn new_session(session: Session) -> Response {
    // The session manager saves the session (an upsert) after the handler
    // returns and before the response is sent.
    let res = async {
        session.insert("n", 0i64).await?;
        session.insert("user", "bench").await?;
        session.insert("blob", "x".repeat(900)).await
    }
    .await;
    match res {
        Ok(()) => "created".into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn read(session: Session) -> Response {
    match session.get::<i64>("n").await {
        Ok(Some(n)) => n.to_string().into_response(),
        Ok(None) => StatusCode::UNAUTHORIZED.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn incr(session: Session) -> Response {
    let n = match session.get::<i64>("n").await {
        Ok(Some(n)) => n + 1,
        Ok(None) => return StatusCode::UNAUTHORIZED.into_response(),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    match session.insert("n", n).await {
        Ok(()) => n.to_string().into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = var("PORT").parse()?;
    let uri = var("MONGODB_URI");
    let db = var("BENCH_DB");
    let collection = env::var("BENCH_COLLECTION").unwrap_or_else(|_| "sessions".into());
    if collection != "sessions" {
        // MongoDBStore::new takes a database name; the collection is always "sessions".
        eprintln!(
            "peer-tsms: tower-sessions-mongodb-store always uses the collection \"sessions\"; \
             BENCH_COLLECTION={collection} is ignored"
        );
    }

    let mut options = ClientOptions::parse(&uri).await?;
    options.max_pool_size = Some(64);
    let client = Client::with_options(options)?;
    // The store has no set-up step (it creates no index); make sure the server
    // answers before /health does.
    client.database(&db).run_command(doc! { "ping": 1 }, None).await?;

    let session_store = MongoDBStore::new(client, db);
    tokio::spawn(
        session_store
            .clone()
            .continuously_delete_expired(tokio::time::Duration::from_secs(60)),
    );

    let session_layer = SessionManagerLayer::new(session_store)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(1)));

    // /health is added after the session layer, so it never touches a session.
    let app = Router::new()
        .route("/new", get(new_session))
        .route("/read", get(read))
        .route("/incr", post(incr))
        .layer(session_layer)
        .route("/health", get(health));

    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
