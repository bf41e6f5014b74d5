//! The demo page in headless Chromium, as a person on a laptop and a phone
//! uses it (testkit::devices). `UPDATE_SCREENSHOTS=1` also rewrites the
//! README's screenshots in docs/.

use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_uses_the_page_on_a_laptop_and_a_phone() {
    let screenshots = std::env::var_os("UPDATE_SCREENSHOTS")
        .map(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs"));
    testkit::devices::a_person_uses_the_page_on_a_laptop_and_a_phone(
        "browseraxum",
        |settings| testkit::spawn_binary(env!("CARGO_BIN_EXE_demo"), settings),
        screenshots.as_deref(),
    )
    .await;
}
