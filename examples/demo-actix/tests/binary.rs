//! The acceptance suite (the same one the axum demo runs) against the
//! `demo-actix` binary, configured only through its environment.

use testkit::suite::Settings;

/// A fixed signing key (base64 of 64 bytes), so that a second instance
/// accepts the first one's cookies, as instances sharing a secret do.
const SIGNING_KEY: &str =
    "dGVzdC1vbmx5IHNpZ25pbmcga2V5IGZvciB0aGUgZGVtby1hY3RpeCBhY2NlcHRhbmNlIHN1aXRlLCA2NCBiIQ==";

/// The suite's settings, with the signing key unless a test sets its own.
fn with_signing_key(settings: Settings) -> Settings {
    Box::new(move |name| {
        settings(name).or_else(|| (name == "SESSION_SIGNING_KEY").then(|| SIGNING_KEY.into()))
    })
}

testkit::acceptance_suite!(|settings| testkit::spawn_binary(
    env!("CARGO_BIN_EXE_demo-actix"),
    with_signing_key(settings)
));
