//! The adapters call the store inside the framework's request future, so
//! the store's spans are children of the request's span — here opened by a
//! middleware, as `tower-http`'s `TraceLayer` and `tracing-actix-web` do.

use tracing::Instrument;

use crate::common::{capture::Capture, db_and_store};

/// Every store span so far, as (op, outermost enclosing span), then
/// forgets them. (Between the two, a framework may open its own spans:
/// tower-sessions has one around its save.)
fn ops_and_roots(capture: &Capture) -> Vec<(String, Option<String>)> {
    let seen = capture
        .store_spans()
        .into_iter()
        .map(|s| {
            (
                s.field("op").unwrap().to_string(),
                s.ancestors.last().cloned(),
            )
        })
        .collect();
    capture.clear();
    seen
}

fn under_request(ops: &[&str]) -> Vec<(String, Option<String>)> {
    ops.iter()
        .map(|op| (op.to_string(), Some("request".to_string())))
        .collect()
}

#[cfg(feature = "tower-sessions")]
mod with_axum {
    use axum::{
        body::Body,
        extract::Request,
        http::header,
        middleware::{from_fn, Next},
        response::Response,
        routing::get,
        Router,
    };
    use tower::ServiceExt;
    use tower_sessions::{Session, SessionManagerLayer};

    use super::{db_and_store, ops_and_roots, under_request, Capture, Instrument};

    async fn bump(session: Session) -> String {
        let n: i64 = session.get("n").await.unwrap().unwrap_or(0);
        session.insert("n", n + 1).await.unwrap();
        n.to_string()
    }

    async fn request_span(request: Request, next: Next) -> Response {
        next.run(request)
            .instrument(tracing::info_span!("request"))
            .await
    }

    #[tokio::test]
    async fn an_axum_request_span_encloses_the_store_spans() {
        let (_db, store) = db_and_store("observe_axum").await;
        let app = Router::new()
            .route("/", get(bump))
            .layer(SessionManagerLayer::new(store.clone()))
            .layer(from_fn(request_span));
        let (capture, _guard) = Capture::install();

        let first = app
            .clone()
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let cookie = first.headers()[header::SET_COOKIE].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_string();
        assert_eq!(ops_and_roots(&capture), under_request(&["create"]));

        let again = Request::get("/")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap();
        let second = app.oneshot(again).await.unwrap();
        assert!(second.status().is_success());
        assert_eq!(ops_and_roots(&capture), under_request(&["load", "save"]));
        let raw = cookie.split_once('=').unwrap().1;
        capture.assert_never_mentions(raw);
        store.close().await;
    }
}

#[cfg(feature = "actix-session")]
mod with_actix {
    use actix_session::{Session, SessionMiddleware};
    use actix_web::{
        cookie::Key,
        dev::Service,
        test::{call_service, init_service, TestRequest},
        web, App,
    };

    use super::{db_and_store, ops_and_roots, under_request, Capture, Instrument};

    async fn bump(session: Session) -> String {
        let n: i64 = session.get("n").unwrap().unwrap_or(0);
        session.insert("n", n + 1).unwrap();
        n.to_string()
    }

    #[actix_web::test]
    async fn an_actix_request_span_encloses_the_store_spans() {
        let (_db, store) = db_and_store("observe_actix").await;
        let app = init_service(
            App::new()
                .route("/", web::get().to(bump))
                .wrap(SessionMiddleware::new(store.clone(), Key::generate()))
                .wrap_fn(|request, service| {
                    service
                        .call(request)
                        .instrument(tracing::info_span!("request"))
                }),
        )
        .await;
        let (capture, _guard) = Capture::install();

        let first = call_service(&app, TestRequest::get().uri("/").to_request()).await;
        let cookie = first.response().cookies().next().expect("a session cookie");
        let cookie = cookie.into_owned();
        assert_eq!(ops_and_roots(&capture), under_request(&["create"]));

        let again = TestRequest::get().uri("/").cookie(cookie.clone());
        let second = call_service(&app, again.to_request()).await;
        assert!(second.status().is_success());
        assert_eq!(ops_and_roots(&capture), under_request(&["load", "save"]));
        store.close().await;
    }
}
