//! The acceptance suite (the same one the axum demo runs) against the
//! `demo-actix` binary, configured only through its environment.

testkit::acceptance_suite!(|settings| testkit::spawn_binary(
    env!("CARGO_BIN_EXE_demo-actix"),
    settings
));
