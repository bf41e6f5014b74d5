//! The demo page in headless Chromium, as a person on a laptop and a phone
//! uses it (testkit::devices), against the actix-web demo.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_uses_the_page_on_a_laptop_and_a_phone() {
    testkit::devices::a_person_uses_the_page_on_a_laptop_and_a_phone(
        "browseractix",
        |settings| testkit::spawn_binary(env!("CARGO_BIN_EXE_demo-actix"), settings),
        None,
    )
    .await;
}
