//! Per-session lifetimes set from handlers, through both frameworks.

use mongodb::bson::doc;
use mongodb_session_store::{MongoSessionStore, SessionLifetime};
use testkit::TestDb;

use super::{expires_near, lifetime_of};
use crate::common::{builder, from_now, only_document, Build, DAY, HOUR, MINUTE};

async fn store(db: &TestDb) -> MongoSessionStore {
    let builder = builder(db).idle_timeout(12 * HOUR);
    builder.lifetime_limit(30 * DAY).built().await
}

/// Moves every stored expiry to a minute from now, so the next write shows
/// which window it applied.
async fn expire_soon(db: &TestDb) {
    let soon = doc! { "$set": { "expires": from_now(MINUTE) } };
    let sessions = db.collection("sessions");
    sessions.update_many(doc! {}, soon).await.unwrap();
}

mod with_axum {
    use axum::{
        body::Body, extract::Request, http::header, response::Response, routing::get, Router,
    };
    use tower::ServiceExt;
    use tower_sessions::{Expiry, Session, SessionManagerLayer};

    use super::*;
    use mongodb_session_store::tower::{apply_lifetime, lifetime, set_lifetime};

    async fn login(session: Session) -> &'static str {
        session.insert("user", "ada").await.unwrap();
        set_lifetime(&session, SessionLifetime::new().idle_timeout(30 * DAY))
            .await
            .unwrap();
        "in"
    }

    async fn page(session: Session) -> String {
        let own = apply_lifetime(&session).await.unwrap();
        format!("{:?}", own.and_then(|l| l.idle_timeout))
    }

    async fn regenerate(session: Session) -> String {
        session.cycle_id().await.unwrap();
        format!(
            "{:?}",
            lifetime(&session)
                .await
                .unwrap()
                .and_then(|l| l.idle_timeout)
        )
    }

    fn app(store: MongoSessionStore) -> Router {
        Router::new()
            .route("/login", get(login))
            .route("/", get(page))
            .route("/regenerate", get(regenerate))
            .layer(
                SessionManagerLayer::new(store)
                    .with_secure(false)
                    .with_expiry(Expiry::OnInactivity(time::Duration::hours(12))),
            )
    }

    async fn get_with(app: &Router, path: &str, cookie: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        app.clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn set_cookie(response: &Response) -> String {
        response.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn a_tower_handler_sets_a_lifetime_that_the_cookie_and_the_store_follow() {
        let db = TestDb::new("lifetower").await;
        let app = app(store(&db).await);
        let response = get_with(&app, "/login", None).await;
        let cookie = set_cookie(&response);
        assert!(
            cookie.contains("Max-Age=2592000"),
            "30 days, not the layer's 12 h: {cookie}"
        );
        let document = only_document(&db).await;
        assert!(expires_near(&document, 30 * DAY), "{document}");
        let pair = cookie.split(';').next().unwrap().to_string();

        // A later request: tower-sessions forgets the expiry between
        // requests; apply_lifetime puts it back, and the store slides by it.
        expire_soon(&db).await;
        let response = get_with(&app, "/", Some(&pair)).await;
        assert!(set_cookie(&response).contains("Max-Age=2592000"));
        assert!(expires_near(&only_document(&db).await, 30 * DAY));

        // cycle_id keeps it (and the store keeps it in the new document).
        let response = get_with(&app, "/regenerate", Some(&pair)).await;
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"Some(2592000s)");
        let document = only_document(&db).await;
        let month = doc! { "idleTimeout": 2_592_000_000_i64 };
        assert_eq!(lifetime_of(&document), &month);
    }
}

mod with_actix {
    use actix_session::{
        config::{PersistentSession, TtlExtensionPolicy},
        Session, SessionMiddleware,
    };
    use actix_web::{
        cookie::Key,
        test::{call_service, init_service, TestRequest},
        web, App, HttpResponse,
    };

    use super::*;
    use mongodb_session_store::actix::{lifetime, set_lifetime};

    async fn login(session: Session) -> HttpResponse {
        session.insert("user", "ada").unwrap();
        // Not "remember me": an hour, though every session's cookie lasts 30 days.
        set_lifetime(&session, SessionLifetime::new().idle_timeout(HOUR)).unwrap();
        HttpResponse::Ok().finish()
    }

    async fn page(session: Session) -> HttpResponse {
        let ttl = lifetime(&session).and_then(|l| l.idle_timeout);
        HttpResponse::Ok().body(format!("{ttl:?}"))
    }

    async fn renew(session: Session) -> HttpResponse {
        session.renew();
        HttpResponse::Ok().finish()
    }

    #[actix_web::test]
    async fn an_actix_handler_sets_a_lifetime_that_update_and_update_ttl_follow() {
        let db = TestDb::new("lifeactix").await;
        let store = store(&db).await;
        let app = init_service(
            App::new()
                .route("/login", web::get().to(login))
                .route("/", web::get().to(page))
                .route("/renew", web::get().to(renew))
                .wrap(
                    SessionMiddleware::builder(store.clone(), Key::generate())
                        .cookie_secure(false)
                        .session_lifecycle(
                            PersistentSession::default()
                                .session_ttl(time::Duration::days(30))
                                .session_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest),
                        )
                        .build(),
                ),
        )
        .await;
        let response = call_service(&app, TestRequest::get().uri("/login").to_request()).await;
        let cookie = response.response().cookies().next().unwrap().into_owned();
        assert!(
            expires_near(&only_document(&db).await, HOUR),
            "not the global 30 days"
        );

        // A read-only request: actix-session's update_ttl with the global
        // TTL; the store applies the session's own hour.
        expire_soon(&db).await;
        let request = TestRequest::get()
            .uri("/")
            .cookie(cookie.clone())
            .to_request();
        let response = call_service(&app, request).await;
        assert!(response.status().is_success());
        assert!(expires_near(&only_document(&db).await, HOUR), "update_ttl");

        // Renewal keeps it.
        let request = TestRequest::get().uri("/renew").cookie(cookie).to_request();
        let response = call_service(&app, request).await;
        let renewed = response.response().cookies().next().unwrap().into_owned();
        let document = only_document(&db).await;
        let hour = doc! { "idleTimeout": 3_600_000_i64 };
        assert_eq!(lifetime_of(&document), &hour);
        let request = TestRequest::get().uri("/").cookie(renewed).to_request();
        let body = actix_web::test::call_and_read_body(&app, request).await;
        assert_eq!(&body[..], b"Some(3600s)");
    }
}
