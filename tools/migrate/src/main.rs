//! `mss-migrate`: moves sessions from a connect-mongo or
//! connect-mongodb-session collection to the native layout, resumably and
//! without logging anyone out (see `mongodb_session_store::migrate`).
//!
//! ```text
//! mss-migrate --uri mongodb://host/app --layout connect-mongo --into sessions_native --dry-run
//! mss-migrate --uri mongodb://host/app --layout connect-mongo --into sessions_native
//! mss-migrate --uri mongodb://host/app --layout connect-mongo --in-place
//! ```

use anyhow::{bail, Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use mongodb_session_store::{
    express::ExpressLayout, migrate::MigrateOptions, AutoRemove, KeyRing, MongoSessionStore,
};

#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The MongoDB server (and, in its path, the database).
    #[arg(long, env = "MONGODB_URI")]
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
    #[arg(long, conflicts_with = "in_place")]
    into: Option<String>,
    /// Convert the source collection itself.
    #[arg(long)]
    in_place: bool,
    /// Encrypt values in the native layout (base64 of 32 bytes, key id 1),
    /// as the service will read them.
    #[arg(long, env = "SESSION_ENCRYPTION_KEY")]
    encryption_key: Option<String>,
    /// Report what would change, and every document that cannot be
    /// converted; write nothing.
    #[arg(long)]
    dry_run: bool,
}

#[tokio::main]
async fn main() {
    if let Err(error) = run(Args::parse()).await {
        eprintln!("mss-migrate: {error:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<()> {
    let target_collection = match (&args.into, args.in_place) {
        (Some(name), false) => name.clone(),
        (None, true) => args.from.clone(),
        _ => bail!("say where to: --into <collection> or --in-place"),
    };
    let mut source = MongoSessionStore::from_uri(&args.uri)
        .collection(&args.from)
        .auto_remove(AutoRemove::Disabled)
        .express_layout(args.layout);
    let mut target = MongoSessionStore::from_uri(&args.uri).collection(&target_collection);
    if let Some(database) = &args.database {
        source = source.database(database);
        target = target.database(database);
    }
    if let Some(key) = &args.encryption_key {
        target = target.encryption(KeyRing::from_base64(1, key)?);
    }
    let source = source.build().await.context("connecting to the source")?;
    let target = target.build().await.context("preparing the target")?;

    let total = source
        .collection()
        .estimated_document_count()
        .await
        .unwrap_or(0);
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta} {msg}")
            .expect("a valid template"),
    );
    let options = MigrateOptions::default().dry_run(args.dry_run);
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
    println!(
        "examined {}, {verb} {}, already up to date {}, deferred (changed meanwhile; rerun) {}, cannot convert {}",
        report.examined,
        report.converted,
        report.unchanged,
        report.deferred,
        report.failures.len()
    );
    for failure in &report.failures {
        println!("  cannot convert {failure}");
    }
    Ok(())
}
