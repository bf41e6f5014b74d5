//! `ensure-indexes`.

use std::{fmt::Write as _, time::Duration};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use mongodb_session_store::{AutoRemove, IndexAction, IndexPlan};
use serde_json::{json, Value};

use super::namespace;
use crate::{
    options::{parse_duration, StoreOptions},
    run::{Report, Ui},
};

/// The index options of the service's store, named after the builder's.
#[derive(Debug, Args)]
pub(crate) struct IndexArgs {
    /// Show what would be created or replaced; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// How the service removes expired sessions (`auto_remove`): native (a
    /// TTL index), interval or disabled (no TTL index).
    #[arg(long, value_enum, default_value_t = AutoRemoveName::Native)]
    auto_remove: AutoRemoveName,
    /// The TTL index's expireAfterSeconds (`expire_after`, e.g. `1h`) [default: 0].
    #[arg(long, value_parser = parse_duration)]
    expire_after: Option<Duration>,
    /// The Cosmos DB profile (`cosmos_db`): the TTL index on `_ts`.
    #[arg(long)]
    cosmos_db: bool,
    /// The service's `ttl` (the Cosmos DB profile's expireAfterSeconds) [default: 14 days].
    #[arg(long, value_parser = parse_duration)]
    ttl: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AutoRemoveName {
    Native,
    Interval,
    Disabled,
}

pub(super) async fn ensure(options: &StoreOptions, args: &IndexArgs, ui: Ui) -> Result<Report> {
    let mut builder = options.store()?.auto_remove(match args.auto_remove {
        AutoRemoveName::Native => AutoRemove::Native,
        // The CLI's store starts no removal task (`manage_collection(false)`).
        AutoRemoveName::Interval => AutoRemove::Interval(AutoRemove::DEFAULT_INTERVAL),
        AutoRemoveName::Disabled => AutoRemove::Disabled,
    });
    if let Some(delay) = args.expire_after {
        builder = builder.expire_after(delay);
    }
    if let Some(ttl) = args.ttl {
        builder = builder.ttl(ttl);
    }
    if args.cosmos_db {
        builder = builder.cosmos_db();
    }
    let store = builder
        .build()
        .await
        .context("opening the sessions collection")?;
    let result = plan_or_apply(&store, args.dry_run, ui).await;
    store.close().await;
    let plan = result?;
    let json = json!({
        "collection": namespace(&store),
        "dry_run": args.dry_run,
        "indexes": plan.indexes.iter().map(|i| json!({
            "purpose": i.purpose.to_string(),
            "field": i.field,
            "wanted": i.wanted,
            "existing": i.existing,
            "action": i.action.to_string(),
        })).collect::<Vec<Value>>(),
    });
    Ok(Report::new(json, describe(&plan, args.dry_run)))
}

async fn plan_or_apply(
    store: &mongodb_session_store::MongoSessionStore,
    dry_run: bool,
    ui: Ui,
) -> Result<IndexPlan> {
    let plan = store.index_plan().await?;
    if dry_run || plan.is_satisfied() {
        return Ok(plan);
    }
    if plan.replaces() {
        let replaced: Vec<&str> = plan
            .indexes
            .iter()
            .filter(|i| i.action == IndexAction::Replace)
            .filter_map(|i| i.existing.as_deref())
            .collect();
        ui.confirm(&format!(
            "drop and recreate {} in {} (another service may rely on it)",
            replaced.join(", "),
            namespace(store)
        ))?;
    }
    Ok(store.ensure_indexes(plan.replaces()).await?)
}

fn describe(plan: &IndexPlan, dry_run: bool) -> String {
    let mut text = String::new();
    if plan.is_satisfied() {
        text.push_str("every index is in place\n");
    }
    for index in &plan.indexes {
        let existing = index.existing.as_deref().unwrap_or("none");
        let action = match (index.action, dry_run) {
            (IndexAction::Keep, _) => "in place",
            (IndexAction::Create, true) => "would create",
            (IndexAction::Create, false) => "created",
            (IndexAction::Replace, true) => "would replace (asks first)",
            (IndexAction::Replace, false) => "replaced",
            (_, _) => "conflict: fix by hand",
        };
        let _ = writeln!(
            text,
            "{} index {}: {action} (existing: {existing})",
            index.purpose, index.wanted
        );
    }
    text
}
