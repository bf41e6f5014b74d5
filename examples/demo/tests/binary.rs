//! The acceptance suite against the `demo` binary itself, configured only
//! through its environment, exactly as the README runs it.

testkit::acceptance_suite!(|settings| testkit::spawn_binary(env!("CARGO_BIN_EXE_demo"), settings));
