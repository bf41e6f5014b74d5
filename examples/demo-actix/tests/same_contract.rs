//! Both demo binaries, driven with the same requests, answer the same.

use std::path::PathBuf;

use testkit::suite::{transcript, App};

/// The axum demo's binary, built beside this package's by
/// `cargo test --workspace` (what `scripts/test` runs).
fn axum_demo_binary() -> PathBuf {
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_demo-actix"));
    let theirs = ours.with_file_name(format!("demo{}", std::env::consts::EXE_SUFFIX));
    assert!(
        theirs.exists(),
        "{} is missing: run the suite with `scripts/test` (cargo test --workspace)",
        theirs.display()
    );
    theirs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_behaves_identically_on_both_demos() {
    let axum_binary = axum_demo_binary().to_string_lossy().into_owned();
    let axum = App::start(
        "sameaxum",
        move |s| {
            let binary = axum_binary.clone();
            async move { testkit::spawn_binary(&binary, s).await }
        },
        &[],
    )
    .await;
    let actix = App::start(
        "sameactix",
        |s| testkit::spawn_binary(env!("CARGO_BIN_EXE_demo-actix"), s),
        &[],
    )
    .await;

    let from_axum = transcript(&axum.browser).await;
    let from_actix = transcript(&actix.browser).await;

    assert_eq!(from_axum.len(), from_actix.len());
    for (a, b) in from_axum.iter().zip(&from_actix) {
        assert_eq!(a, b, "axum and actix differ on {}", a.request);
    }
    // The transcript is not vacuous: it saw data, errors and the logout.
    assert!(from_axum.iter().any(|s| s.status == 413));
    assert!(from_axum.iter().any(|s| s.body["data"]["b.c"] == "str"));
    assert!(!from_axum.last().unwrap().has_cookie);
    axum.cleanup().await;
    actix.cleanup().await;
}
