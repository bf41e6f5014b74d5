//! `ensure-indexes`: what the service's store needs, what the collection
//! has, and what ensuring does for each index (keep / create / change in
//! place / drop and recreate, the last only with `--recreate`).

use std::{fmt::Write as _, time::Duration};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use mongodb_session_store::{admin::IndexAction, admin::IndexPlan, AutoRemove};
use serde_json::{json, Value};

use super::namespace;
use crate::{
    options::{parse_duration, StoreOptions},
    run::{Report, Ui},
};

/// The index options of the service's store, named after the builder's.
#[derive(Debug, Args)]
pub(crate) struct IndexArgs {
    /// Show what would be done to each index (keep, create, change in
    /// place, or drop and recreate); change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Drop and recreate the indexes that cannot be changed in place (another
    /// partial filter, or a server that refuses collMod). Asks first.
    #[arg(long)]
    recreate: bool,
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
        builder = builder.idle_timeout(ttl);
    }
    if args.cosmos_db {
        builder = builder.cosmos_db();
    }
    let store = builder
        .build()
        .await
        .context("opening the sessions collection")?;
    let result = plan_or_apply(&store, args, ui).await;
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
    args: &IndexArgs,
    ui: Ui,
) -> Result<IndexPlan> {
    let plan = store.index_plan().await?;
    if args.dry_run || plan.is_satisfied() {
        return Ok(plan);
    }
    // Changing a TTL index in place is what the service's own build does
    // by default: no question. Dropping an index is asked about, and only
    // with --recreate (without it the library refuses and says so); a
    // change in place the server refuses becomes a drop, so it is named.
    if args.recreate && (plan.replaces() || plan.changes_in_place()) {
        let dropped: Vec<String> = plan
            .indexes
            .iter()
            .filter_map(|i| match i.action {
                IndexAction::Replace => i.existing.clone(),
                IndexAction::ChangeInPlace => i
                    .existing
                    .as_ref()
                    .map(|e| format!("{e} (if the server refuses to change it in place)")),
                _ => None,
            })
            .collect();
        ui.confirm(&format!(
            "drop and recreate {} in {} (another service may rely on it)",
            dropped.join(", "),
            namespace(store)
        ))?;
    }
    Ok(store.ensure_indexes(args.recreate).await?)
}

fn describe(plan: &IndexPlan, dry_run: bool) -> String {
    let mut text = String::new();
    if plan.is_satisfied() {
        text.push_str("every index is as the service needs it\n");
    }
    for index in &plan.indexes {
        let existing = index.existing.as_deref().unwrap_or("none");
        let action = match (index.action, dry_run) {
            (IndexAction::Keep, _) => "keep",
            (IndexAction::Create, true) => "would create",
            (IndexAction::Create, false) => "created",
            (IndexAction::ChangeInPlace, true) => "would change in place (collMod)",
            (IndexAction::ChangeInPlace, false) => "changed in place (collMod)",
            (IndexAction::Replace, true) => "needs drop+recreate (--recreate; asks first)",
            (IndexAction::Replace, false) => "dropped and recreated",
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
