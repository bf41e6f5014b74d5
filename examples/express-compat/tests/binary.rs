//! The demo contract's acceptance suite against the `express-compat`
//! binary, for each Node layout, configured only through its environment.
//! (Encryption does not apply to layouts the Node side must read, and the
//! Node layouts store the session whole — last writer wins, as in Express —
//! so those groups are not run here.)

use testkit::suite::Settings;

/// Starts the binary with an Express app's settings on top of the suite's.
async fn spawn(layout: &'static str, settings: Settings) -> Result<std::net::SocketAddr, String> {
    let express: Settings = Box::new(move |name| match name {
        "SESSION_SECRET" => Some("current-secret,previous-secret".into()),
        "COOKIE_NAME" => Some("sid".into()),
        "STORE_LAYOUT" => Some(layout.into()),
        other => settings(other),
    });
    testkit::spawn_binary(env!("CARGO_BIN_EXE_express-compat"), express).await
}

mod connect_mongo {
    testkit::acceptance_suite!(|s| super::spawn("connect-mongo", s), contract);
}

mod connect_mongo_object {
    testkit::acceptance_suite!(|s| super::spawn("connect-mongo-object", s), contract);
}

mod connect_mongodb_session {
    testkit::acceptance_suite!(|s| super::spawn("connect-mongodb-session", s), contract);
}
