//! `mss-migrate`: `mongodb-sessions migrate` under its former name.

fn main() -> std::process::ExitCode {
    mongodb_sessions::mss_migrate()
}
