//! `migrate` (and `mss-migrate`): Node layout → native layout, resumably
//! and without logging anyone out (see `mongodb_session_store::express::migrate`).
//!
//! ```text
//! mongodb-sessions migrate --uri mongodb://host/app --layout connect-mongo --into sessions_native --dry-run
//! mongodb-sessions migrate --uri mongodb://host/app --layout connect-mongo --into sessions_native
//! mongodb-sessions migrate --uri mongodb://host/app --layout connect-mongo --in-place
//! ```

use anyhow::{bail, Context, Result};
use clap::Args;
use mongodb_session_store::{admin::Incomplete, express::migrate::MigrateOptions, AutoRemove};
use serde_json::json;

use crate::{
    options::{StoreLayout, StoreOptions},
    run::{Report, Ui},
};

/// What to migrate where.
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// The collection the Node store uses [default: --collection's].
    #[arg(long)]
    from: Option<String>,
    /// Copy into this collection (the source stays; rerun at cut-over).
    /// Copies are recorded in `<collection>.migration`.
    #[arg(long, conflicts_with = "in_place")]
    into: Option<String>,
    /// Convert the source collection itself.
    #[arg(long)]
    in_place: bool,
    /// Report what would change, and every document that cannot be
    /// converted; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Source sessions per batch: what one round trip reads or writes.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Per-session writes in flight at once (re-copies over a native
    /// session, in place the source deletes): the load on the server.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

pub(crate) async fn run(options: &StoreOptions, args: &MigrateArgs, ui: Ui) -> Result<Report> {
    let StoreLayout::Express(layout) = options.layout()? else {
        bail!(
            "say which Node layout to migrate from: --layout connect-mongo, \
             connect-mongo-object or connect-mongodb-session"
        );
    };
    let from = args.from.as_deref().unwrap_or(options.collection());
    let into = match (&args.into, args.in_place) {
        (Some(name), false) => name.as_str(),
        (None, true) => from,
        _ => bail!("say where to: --into <collection> or --in-place"),
    };
    let source = options
        .connection()?
        .collection(from)
        .auto_remove(AutoRemove::Disabled)
        .express_layout(layout);
    let target = options.native_options(options.connection()?.collection(into))?;
    let source = source.build().await.context("connecting to the source")?;
    let target = target.build().await.context("preparing the target")?;
    if !args.dry_run {
        let namespace = source.namespace();
        ui.confirm(&format!(
            "migrate the sessions of {namespace} into {}",
            target.namespace()
        ))?;
        // The target's indexes, as the service's build would make them;
        // only now, so that a refusal or a dry run writes nothing.
        target
            .ensure_indexes(false)
            .await
            .context("preparing the target's indexes")?;
    }

    let total = super::estimate(&source, options).await;
    let bar = ui.progress(total);
    let migrate = MigrateOptions::default()
        .dry_run(args.dry_run)
        .batch_size(args.batch_size)
        .concurrency(args.concurrency);
    let report = target
        .migrate_from(&source, migrate, |report| {
            bar.set_position(report.examined);
            bar.set_message(format!(
                "{} converted, {} failed",
                report.converted,
                report.failures.len()
            ));
        })
        .await;
    bar.finish_and_clear();
    source.close().await;
    target.close().await;
    let (report, stopped) = match report {
        Ok(report) => (report, None),
        Err(stopped) if stopped.done.examined == 0 => return Err(stopped.error.into()),
        Err(Incomplete { done, error, .. }) => (done, Some(error)),
    };

    let (verb, removed) = if args.dry_run {
        ("would convert", "would remove")
    } else {
        ("converted", "removed")
    };
    let mut text = format!(
        "examined {}, {verb} {}, already up to date {}, deferred (changed meanwhile; rerun) {}, \
         {removed} (source gone) {}, left as the native side has them {}, cannot convert {}\n",
        report.examined,
        report.converted,
        report.unchanged,
        report.deferred,
        report.removed,
        report.kept_native,
        report.failures.len()
    );
    let failures: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    for failure in &failures {
        text.push_str(&format!("  cannot convert {failure}\n"));
    }
    let json = json!({
        "dry_run": args.dry_run,
        "examined": report.examined,
        "converted": report.converted,
        "unchanged": report.unchanged,
        "deferred": report.deferred,
        "removed": report.removed,
        "kept_native": report.kept_native,
        "failures": failures,
    });
    if let Some(error) = stopped {
        return Ok(Report::stopped(json, &text, &error));
    }
    Ok(Report::new(json, text).incomplete_if(!failures.is_empty() || report.deferred > 0))
}
