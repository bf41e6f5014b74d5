//! `mongodb-sessions`: see `mongodb-sessions --help`.

fn main() -> std::process::ExitCode {
    mongodb_sessions::main()
}
