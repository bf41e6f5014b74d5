//! The acceptance suite against the `demo` binary itself, configured only
//! through its environment, exactly as the README runs it.

testkit::acceptance_suite!(|settings| testkit::spawn_binary(env!("CARGO_BIN_EXE_demo"), settings));

mod settings {
    use std::time::{Duration, SystemTime};

    use mongodb::bson::{doc, DateTime};
    use serde_json::json;
    use testkit::suite::App;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn session_codec_json_and_ttl_reach_the_store() {
        let spawn = |settings| testkit::spawn_binary(env!("CARGO_BIN_EXE_demo"), settings);
        let app = App::start(
            "codecjson",
            spawn,
            &[("SESSION_CODEC", "json"), ("SESSION_TTL_SECS", "60")],
        )
        .await;
        app.browser
            .put("/api/session/n", json!({"deep": [1]}))
            .await;
        let reply = app.browser.get("/api/session").await;
        assert_eq!(reply.body, json!({"data": {"n": {"deep": [1]}}}));

        let document = app
            .db
            .collection("sessions")
            .find_one(doc! {})
            .await
            .unwrap()
            .unwrap();
        assert_eq!(document.get_str("data").unwrap(), r#"{"n":{"deep":[1]}}"#);
        let expires = document.get_datetime("expires").unwrap().timestamp_millis();
        let expected = DateTime::from_system_time(SystemTime::now() + Duration::from_secs(60));
        assert!(
            (expires - expected.timestamp_millis()).abs() < 10_000,
            "{expires}"
        );
        app.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn invalid_settings_stop_the_binary_with_a_message() {
        let spawn = |settings| testkit::spawn_binary(env!("CARGO_BIN_EXE_demo"), settings);
        for bad in [
            ("SESSION_CODEC", "xml"),
            ("SESSION_TOUCH_AFTER_SECS", "soon"),
        ] {
            let db = testkit::TestDb::new("badsettings").await;
            let vars = [
                ("MONGODB_URI".to_string(), testkit::mongodb_uri()),
                ("SESSION_DATABASE".to_string(), db.name.clone()),
                (bad.0.to_string(), bad.1.to_string()),
            ];
            let lookup: testkit::suite::Settings =
                Box::new(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()));
            let err = spawn(lookup).await.unwrap_err();
            assert!(err.contains("exited"), "{bad:?}: {err}");
            db.cleanup().await;
        }
    }
}

mod metrics {
    use testkit::suite::App;

    /// The value of the series `line_start` (name and labels) in a
    /// Prometheus text page.
    fn series(page: &str, line_start: &str) -> Option<f64> {
        page.lines()
            .find_map(|line| line.strip_prefix(line_start)?.trim().parse().ok())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn get_metrics_serves_the_store_series_in_prometheus_text() {
        let spawn = |settings| testkit::spawn_binary(env!("CARGO_BIN_EXE_demo"), settings);
        let app = App::start("metrics", spawn, &[]).await;
        app.browser.post("/api/counter", None).await;
        app.browser.get("/api/session").await;

        let scrape = app.browser.fresh().get("/metrics").await;
        assert_eq!(scrape.status, 200);
        assert!(scrape.set_cookies.is_empty(), "a scrape opens no session");
        let page = scrape.body.as_str().expect("a text page");
        let created = r#"mongodb_sessions_operations_total{op="create",outcome="created"}"#;
        assert!(series(page, created) >= Some(1.0), "{page}");
        let loaded = r#"mongodb_sessions_operations_total{op="load",outcome="miss"}"#;
        assert!(series(page, loaded) >= Some(1.0), "{page}");
        let latency =
            r#"mongodb_sessions_operation_duration_seconds_count{op="load",outcome="miss"}"#;
        assert!(series(page, latency) >= Some(1.0), "{page}");
        assert!(page.contains("# TYPE mongodb_sessions_operations_total counter"));
        app.cleanup().await;
    }
}
