//! `mss-migrate`: moves sessions from a connect-mongo or
//! connect-mongodb-session collection to the native layout, resumably and
//! without logging anyone out (see `mongodb_session_store::migrate`).
//!
//! ```text
//! mss-migrate --uri mongodb://host/app --layout connect-mongo --into sessions_native --dry-run
//! mss-migrate --uri mongodb://host/app --layout connect-mongo --into sessions_native
//! mss-migrate --uri mongodb://host/app --layout connect-mongo --in-place
//! # with the service's settings (see --help)
//! SESSION_ID_HASH_KEY=… SESSION_ENCRYPTION_KEY=… mss-migrate --uri … --layout connect-mongo \
//!     --encryption-key-id 2 --max-lifetime 12h --operation-timeout 5s --into sessions_native
//! ```

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use mongodb_session_store::{
    express::ExpressLayout, migrate::MigrateOptions, AutoRemove, KeyRing, MongoSessionStore,
    StoreBuilder,
};

/// Options that name what the service's store is built with are named
/// after the `StoreBuilder` method they mirror: give the migration the same
/// values as the service, or it will not find the migrated sessions.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The MongoDB server (and, in its path, the database).
    #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
    uri: String,
    /// The database, if not in the URI.
    #[arg(long)]
    database: Option<String>,
    /// The collection the Node store uses.
    #[arg(long, default_value = "sessions")]
    from: String,
    /// The Node store's layout: connect-mongo, connect-mongo-object or connect-mongodb-session.
    #[arg(long)]
    layout: ExpressLayout,
    /// Copy into this collection (the source stays; rerun at cut-over).
    /// Copies are recorded in `<collection>.migration`.
    #[arg(long, conflicts_with = "in_place")]
    into: Option<String>,
    /// Convert the source collection itself.
    #[arg(long)]
    in_place: bool,
    /// The secret for the keyed hashes of session ids (`id_hash_key`; its
    /// UTF-8 bytes). Without it, the built-in public key.
    #[arg(long, env = "SESSION_ID_HASH_KEY", hide_env_values = true)]
    id_hash_key: Option<String>,
    /// Encrypt values in the native layout (`encryption`: base64 of 32
    /// bytes), as the service will read them.
    #[arg(long, env = "SESSION_ENCRYPTION_KEY", hide_env_values = true)]
    encryption_key: Option<String>,
    /// The id of that key in the service's key ring [default: 1].
    #[arg(long, requires = "encryption_key")]
    encryption_key_id: Option<u32>,
    /// The native layout's id field (`id_field`) [default: _id].
    #[arg(long)]
    id_field: Option<String>,
    /// The native layout's data field (`data_field`) [default: data].
    #[arg(long)]
    data_field: Option<String>,
    /// The native layout's expiry field (`expires_field`) [default: expires].
    #[arg(long)]
    expires_field: Option<String>,
    /// The native layout's creation time field (`timestamp_fields`) [default: createdAt].
    #[arg(long)]
    created_at_field: Option<String>,
    /// The native layout's modification time field (`timestamp_fields`) [default: lastModified].
    #[arg(long)]
    last_modified_field: Option<String>,
    /// The service's absolute lifetime (`max_lifetime`, e.g. `12h`): the
    /// stored expiry of a migrated session is capped to it.
    #[arg(long, value_parser = parse_duration)]
    max_lifetime: Option<Duration>,
    /// Bound on each database operation (`operation_timeout`, e.g. `10s`, `500ms`).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    operation_timeout: Duration,
    /// How long to wait for the server at start (`connect_timeout`).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    connect_timeout: Duration,
    /// Report what would change, and every document that cannot be
    /// converted; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Sessions migrated at once: the load the migration puts on the server.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

#[tokio::main]
async fn main() {
    if let Err(error) = run(Args::parse()).await {
        eprintln!("mss-migrate: {error:#}");
        std::process::exit(1);
    }
}

/// `10s`, `500ms`, `2m`, `12h`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s, 500ms, 2m or 12h"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("unknown unit {unit:?} in {text:?}: ms, s, m or h")),
    };
    if duration.is_zero() {
        return Err("a duration must be above zero".into());
    }
    Ok(duration)
}

/// The store over the Node collection.
fn source_builder(args: &Args) -> StoreBuilder {
    let source = MongoSessionStore::from_uri(&args.uri)
        .collection(&args.from)
        .auto_remove(AutoRemove::Disabled)
        .express_layout(args.layout);
    common(source, args)
}

/// The native store, configured as the service's.
fn target_builder(args: &Args, collection: &str) -> Result<StoreBuilder> {
    let mut target = common(MongoSessionStore::from_uri(&args.uri), args).collection(collection);
    if let Some(secret) = &args.id_hash_key {
        target = target.id_hash_key(secret);
    }
    if let Some(key) = &args.encryption_key {
        let id = args.encryption_key_id.unwrap_or(1);
        target = target.encryption(KeyRing::from_base64(id, key).context("--encryption-key")?);
    }
    if let Some(name) = &args.id_field {
        target = target.id_field(name);
    }
    if let Some(name) = &args.data_field {
        target = target.data_field(name);
    }
    if let Some(name) = &args.expires_field {
        target = target.expires_field(name);
    }
    if args.created_at_field.is_some() || args.last_modified_field.is_some() {
        let created = args.created_at_field.as_deref().unwrap_or("createdAt");
        let modified = args
            .last_modified_field
            .as_deref()
            .unwrap_or("lastModified");
        target = target.timestamp_fields(created, modified);
    }
    if let Some(lifetime) = args.max_lifetime {
        target = target.max_lifetime(lifetime);
    }
    Ok(target)
}

fn common(builder: StoreBuilder, args: &Args) -> StoreBuilder {
    let builder = builder
        .operation_timeout(args.operation_timeout)
        .connect_timeout(args.connect_timeout);
    match &args.database {
        Some(database) => builder.database(database),
        None => builder,
    }
}

async fn run(args: Args) -> Result<()> {
    let target_collection = match (&args.into, args.in_place) {
        (Some(name), false) => name.clone(),
        (None, true) => args.from.clone(),
        _ => bail!("say where to: --into <collection> or --in-place"),
    };
    let source = source_builder(&args);
    let target = target_builder(&args, &target_collection)?;
    let source = source.build().await.context("connecting to the source")?;
    let target = target.build().await.context("preparing the target")?;

    // Only for the progress bar: no answer in time means no estimate.
    let estimate = source.collection().estimated_document_count();
    let total = match tokio::time::timeout(args.operation_timeout, estimate).await {
        Ok(Ok(count)) => count,
        _ => 0,
    };
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta} {msg}")
            .expect("a valid template"),
    );
    let options = MigrateOptions::default()
        .dry_run(args.dry_run)
        .concurrency(args.concurrency);
    let report = target
        .migrate_from(&source, options, |report| {
            bar.set_position(report.examined);
            bar.set_message(format!(
                "{} converted, {} failed",
                report.converted,
                report.failures.len()
            ));
        })
        .await?;
    bar.finish();

    let verb = if args.dry_run {
        "would convert"
    } else {
        "converted"
    };
    let removed = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    println!(
        "examined {}, {verb} {}, already up to date {}, deferred (changed meanwhile; rerun) {}, \
         {removed} (source gone) {}, left as the native side has them {}, cannot convert {}",
        report.examined,
        report.converted,
        report.unchanged,
        report.deferred,
        report.removed,
        report.kept_native,
        report.failures.len()
    );
    for failure in &report.failures {
        println!("  cannot convert {failure}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_or_mean_seconds() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        for bad in ["", "0s", "ten", "5d", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_key_id_needs_a_key() {
        let base = [
            "mss-migrate",
            "--uri",
            "mongodb://h/db",
            "--layout",
            "connect-mongo",
        ];
        let with = |extra: &[&str]| Args::try_parse_from(base.iter().chain(extra));
        assert!(with(&["--encryption-key-id", "7"]).is_err());
        let args = with(&["--encryption-key", "k", "--encryption-key-id", "7"]).unwrap();
        assert_eq!(args.encryption_key_id, Some(7));
        assert_eq!(args.operation_timeout, Duration::from_secs(10));
    }
}
