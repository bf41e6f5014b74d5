//! The subcommands.

mod indexes;
mod inspect;
pub(crate) mod migrate;
mod revoke;
pub(crate) mod rewrap;

use std::time::SystemTime;

use anyhow::{Context, Result};
use clap::Subcommand;
use mongodb_session_store::{admin::BatchOptions, MongoSessionStore};
use serde_json::Value;

use crate::{
    options::StoreOptions,
    run::{Report, Ui, EXIT_CODES},
};

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Live and expired-but-not-yet-removed sessions, owners, document
    /// sizes (p50/p99/max), documents per encryption key id. Reads only.
    Stats,
    /// A user's live sessions: handle, created, last active, client. Never
    /// a session id. Reads only.
    List {
        /// The user (as the application records it with `set_user`).
        #[arg(long)]
        user: String,
    },
    /// End sessions: one or all of a user's, or the one a cookie carries.
    #[command(after_help = EXIT_CODES)]
    Revoke(revoke::RevokeArgs),
    /// Delete every expired session now (what `delete_expired` does; for
    /// deployments without the TTL index, `AutoRemove::Disabled`).
    ///
    /// In batches: each round trip finds or deletes at most --batch-size
    /// sessions, so each stays within --operation-timeout however large the
    /// backlog. It counts what it deleted; if a batch fails after others
    /// were done, it says how many and exits 5: run it again to finish.
    #[command(after_help = EXIT_CODES)]
    PurgeExpired(BatchArgs),
    /// Create the indexes the store relies on; --dry-run shows what would
    /// change. Replacing a disagreeing index asks first.
    #[command(after_help = EXIT_CODES)]
    EnsureIndexes(indexes::IndexArgs),
    /// Re-encrypt every session under the key ring's primary key, so an old
    /// key can be retired.
    ///
    /// Give the whole ring, new primary first (--encryption-keys or
    /// --encryption-keys-file). Documents that cannot be decoded are skipped
    /// and listed (redacted), and so are sessions a request changed during
    /// the run (their next write re-encrypts them anyway). Resumable: it is
    /// idempotent, so after an interruption (Ctrl-C, a lost connection, exit
    /// code 1 or 5) run the same command again; sessions already under the
    /// primary key are only read. When it exits 0 and `stats` shows no
    /// document under the old key id, the old key can go. In batches: each
    /// round trip reads at most --batch-size sessions; a failure after some
    /// batches were done exits 5 with their counts.
    #[command(after_help = EXIT_CODES)]
    Rewrap(rewrap::RewrapArgs),
    /// Move connect-mongo / connect-mongodb-session sessions to the native
    /// layout without logging anyone out (formerly `mss-migrate`). --layout
    /// names the Node layout; the other store options describe the native
    /// store, as the service builds it.
    #[command(after_help = EXIT_CODES)]
    Migrate(migrate::MigrateArgs),
}

/// How a command over the whole collection splits its work.
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct BatchArgs {
    /// Sessions per batch: what one round trip reads or deletes.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
}

impl BatchArgs {
    fn options(self) -> BatchOptions {
        BatchOptions::default().size(self.batch_size)
    }
}

pub(crate) async fn run(options: &StoreOptions, command: Command, ui: Ui) -> Result<Report> {
    match command {
        Command::Stats => inspect::stats(options, ui).await,
        Command::List { user } => inspect::list(options, &user).await,
        Command::Revoke(args) => revoke::revoke(options, &args, ui).await,
        Command::PurgeExpired(args) => revoke::purge_expired(options, &args, ui).await,
        Command::EnsureIndexes(args) => indexes::ensure(options, &args, ui).await,
        Command::Rewrap(args) => rewrap::rewrap(options, &args, ui).await,
        Command::Migrate(args) => migrate::run(options, &args, ui).await,
    }
}

/// The service's store, writing nothing at build.
async fn open(options: &StoreOptions) -> Result<MongoSessionStore> {
    options
        .store()?
        .build()
        .await
        .context("opening the sessions collection")
}

/// `db.collection`, for messages.
fn namespace(store: &MongoSessionStore) -> String {
    store.namespace()
}

/// The collection's size for a progress bar: an estimate, or zero.
async fn estimate(store: &MongoSessionStore, options: &StoreOptions) -> u64 {
    let estimate = store.raw_collection().estimated_document_count();
    match tokio::time::timeout(options.operation_timeout(), estimate).await {
        Ok(Ok(count)) => count,
        _ => 0,
    }
}

/// A time as RFC 3339, or null.
fn date(time: Option<SystemTime>) -> Value {
    time.and_then(|t| {
        mongodb::bson::DateTime::from_system_time(t)
            .try_to_rfc3339_string()
            .ok()
    })
    .map_or(Value::Null, Value::String)
}
