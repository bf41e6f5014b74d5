//! This store behind actix-session 0.11.

use actix_session::{
    config::{PersistentSession, TtlExtensionPolicy},
    Session, SessionMiddleware,
};
use actix_web::{cookie::Key, web, HttpResponse};
use mongodb_session_store::MongoSessionStore;

use crate::contract::{blob, Env, IDLE};

/// Serves the contract until the process ends.
///
/// # Errors
///
/// Binding the port failed.
pub async fn serve(env: &Env, store: MongoSessionStore) -> std::io::Result<()> {
    // One key for every worker: the cookie is signed, and any worker must
    // accept what another issued.
    let key = Key::generate();
    actix_web::HttpServer::new(move || {
        let ttl = actix_web::cookie::time::Duration::try_from(IDLE)
            .unwrap_or(actix_web::cookie::time::Duration::HOUR);
        let sessions = SessionMiddleware::builder(store.clone(), key.clone())
            .cookie_secure(false)
            .session_lifecycle(
                PersistentSession::default()
                    .session_ttl(ttl)
                    .session_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest),
            )
            .build();
        actix_web::App::new()
            .route("/health", web::get().to(|| async { "ok" }))
            .service(
                web::scope("")
                    .wrap(sessions)
                    .route("/new", web::get().to(new))
                    .route("/read", web::get().to(read))
                    .route("/incr", web::post().to(incr)),
            )
    })
    .bind(env.address())?
    .run()
    .await
}

async fn new(session: Session) -> HttpResponse {
    let stored = session
        .insert("n", 0_i64)
        .and_then(|()| session.insert("user", "bench"))
        .and_then(|()| session.insert("blob", blob()));
    match stored {
        Ok(()) => HttpResponse::Ok().body("created"),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

async fn read(session: Session) -> HttpResponse {
    match session.get::<i64>("n") {
        Ok(Some(n)) => HttpResponse::Ok().body(n.to_string()),
        Ok(None) => HttpResponse::Unauthorized().finish(),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

async fn incr(session: Session) -> HttpResponse {
    match session.get::<i64>("n") {
        Ok(Some(n)) => match session.insert("n", n + 1) {
            Ok(()) => HttpResponse::Ok().body((n + 1).to_string()),
            Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
        },
        Ok(None) => HttpResponse::Unauthorized().finish(),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}
