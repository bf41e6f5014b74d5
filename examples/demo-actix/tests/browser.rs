//! The demo page in headless Chromium, as a person on a laptop and a phone
//! uses it (testkit::devices), against the actix-web demo.

use testkit::suite::Settings;

/// A fixed signing key (base64 of 64 bytes), so that the restarted
/// instance accepts the first one's cookies, as instances sharing a secret
/// do.
const SIGNING_KEY: &str =
    "dGVzdC1vbmx5IHNpZ25pbmcga2V5IGZvciB0aGUgZGVtby1hY3RpeCBhY2NlcHRhbmNlIHN1aXRlLCA2NCBiIQ==";

fn with_signing_key(settings: Settings) -> Settings {
    Box::new(move |name| {
        settings(name).or_else(|| (name == "SESSION_SIGNING_KEY").then(|| SIGNING_KEY.into()))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_uses_the_page_on_a_laptop_and_a_phone() {
    testkit::devices::a_person_uses_the_page_on_a_laptop_and_a_phone(
        "browseractix",
        |settings| {
            testkit::spawn_binary(env!("CARGO_BIN_EXE_demo-actix"), with_signing_key(settings))
        },
        None,
    )
    .await;
}
