//! Benchmark peer: axum + axum_session + axum_session_mongo, serving the
//! contract in bench/CONTRACT.md. `SessionConfig` is left at its defaults
//! (in-memory cache of 60 min, 10 s database-update throttle, ...) except:
//! the session lifetime (1 hour), the table (collection) name, and
//! `SessionMode::Manual`, so that a request without a session (`/read`,
//! `/incr`) does not create and persist an empty one, as the default
//! `SessionMode::Persistent` does.
//!
//! axum_session_mongo uses the client's *default database*, so BENCH_DB is set
//! as `ClientOptions::default_database`.
//!
//! PEER_ASM_ID_INDEX=1 (off by default) creates an index on `id`, which the
//! crate itself never does; every load/save/exists filters on `id`.

use std::{env, net::SocketAddr};

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use axum_session::{SessionConfig, SessionLayer, SessionMode, SessionStore};
use axum_session_mongo::{SessionMongoPool, SessionMongoSession};
use mongodb::{bson::doc, options::ClientOptions, Client, IndexModel};

fn var(name: &str) -> String {
    env::var(name).unwrap_or_else(|_| panic!("{name} must be set"))
}

async fn health() -> &'static str {
    "ok"
}

async fn new_session(session: SessionMongoSession) -> &'static str {
    // SessionMode::Manual: the data is created here, marked storable; the
    // session layer upserts it after the handler, before the response is sent.
    session.create_data();
    session.set("n", 0i64);
    session.set("user", "bench");
    session.set("blob", "x".repeat(900));
    "created"
}

/// No live session: make sure nothing is kept or persisted (when the cookie
/// names a session missing from the database, axum_session makes up an empty
/// one; `set_store(false)` makes the layer drop it and clear the cookies).
fn unauthorized(session: &SessionMongoSession) -> Response {
    if session.data_exists() {
        session.set_store(false);
    }
    StatusCode::UNAUTHORIZED.into_response()
}

async fn read(session: SessionMongoSession) -> Response {
    match session.get::<i64>("n") {
        Some(n) => n.to_string().into_response(),
        None => unauthorized(&session),
    }
}

async fn incr(session: SessionMongoSession) -> Response {
    match session.get::<i64>("n") {
        Some(n) => {
            let n = n + 1;
            session.set("n", n);
            n.to_string().into_response()
        }
        None => unauthorized(&session),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = var("PORT").parse()?;
    let uri = var("MONGODB_URI");
    let db = var("BENCH_DB");
    let collection = env::var("BENCH_COLLECTION").unwrap_or_else(|_| "sessions".into());

    let mut options = ClientOptions::parse(&uri).await?;
    options.max_pool_size = Some(64);
    options.default_database = Some(db.clone());
    let client = Client::with_options(options)?;

    if env::var("PEER_ASM_ID_INDEX").is_ok_and(|v| v == "1") {
        client
            .database(&db)
            .collection::<mongodb::bson::Document>(&collection)
            .create_index(IndexModel::builder().keys(doc! { "id": 1 }).build())
            .await?;
    }

    let config = SessionConfig::default()
        .with_table_name(collection)
        .with_lifetime(time::Duration::hours(1))
        .with_mode(SessionMode::Manual);
    // `new` runs the pool's `initiate` (insert + delete of a blank record).
    let store = SessionStore::<SessionMongoPool>::new(Some(client.into()), config).await?;

    // /health is added after the session layer, so it never touches a session.
    let app = Router::new()
        .route("/new", get(new_session))
        .route("/read", get(read))
        .route("/incr", post(incr))
        .layer(SessionLayer::new(store))
        .route("/health", get(health));

    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
