//! `mongodb-sessions`, the operations CLI of mongodb-session-store, and
//! `mss-migrate`, its migration command under its former name. The two
//! binaries are thin: everything is here.

mod commands;
mod options;
mod run;

use std::process::ExitCode;

use clap::Parser;

use crate::{
    commands::{migrate::MigrateArgs, Command},
    options::StoreOptions,
    run::{finish, Ui, EXIT_CODES},
};

/// Runs `mongodb-sessions`, sessions operations for a MongoDB session store.
#[derive(Debug, Parser)]
#[command(
    name = "mongodb-sessions",
    version,
    about = "Operations on a mongodb-session-store collection: stats, a user's sessions, \
             revocation, purging, indexes, key rotation, migration from the Node stores.",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(flatten)]
    store: StoreOptions,
    /// Print one JSON document on stdout instead of text (and no progress bar).
    #[arg(long, global = true)]
    json: bool,
    /// Make destructive changes without asking.
    #[arg(long, short = 'y', global = true)]
    yes: bool,
    #[command(subcommand)]
    command: Command,
}

/// `mss-migrate`: `mongodb-sessions migrate` as it was before the CLI,
/// without the confirmation (scripts written for it keep working).
#[derive(Debug, Parser)]
#[command(
    name = "mss-migrate",
    version,
    about = "Moves connect-mongo / connect-mongodb-session sessions to the native layout \
             without logging anyone out (the same as `mongodb-sessions migrate --yes`).",
    after_help = EXIT_CODES
)]
struct MssMigrate {
    #[command(flatten)]
    store: StoreOptions,
    #[command(flatten)]
    migrate: MigrateArgs,
    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// The `mongodb-sessions` command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let ui = Ui {
        json: cli.json,
        yes: cli.yes,
    };
    let outcome = runtime().block_on(commands::run(&cli.store, cli.command, ui));
    finish("mongodb-sessions", ui, outcome)
}

/// The `mss-migrate` command.
pub fn mss_migrate() -> ExitCode {
    let args = MssMigrate::parse();
    let ui = Ui {
        json: args.json,
        yes: true,
    };
    let outcome = runtime().block_on(commands::migrate::run(&args.store, &args.migrate, ui));
    finish("mss-migrate", ui, outcome)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}
