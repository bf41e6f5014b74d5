//! `rewrap`: re-encryption under the primary key, after a rotation.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use clap::Args;
use mongodb_session_store::{admin::BatchOptions, admin::Incomplete, admin::RewrapEvent};
use serde_json::json;

use super::{estimate, namespace, open};
use crate::{
    options::StoreOptions,
    run::{Report, Ui},
};

/// How `rewrap` splits its work.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct RewrapArgs {
    /// Sessions per batch: what one round trip reads.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Sessions written back at once (each a compare-and-swap): the load
    /// on the server.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

impl RewrapArgs {
    fn options(self) -> BatchOptions {
        BatchOptions::default()
            .size(self.batch_size)
            .concurrency(self.concurrency)
    }
}

pub(super) async fn rewrap(options: &StoreOptions, args: &RewrapArgs, ui: Ui) -> Result<Report> {
    let ring = options
        .key_ring()?
        .context("rewrap needs the key ring: --encryption-keys or --encryption-keys-file")?;
    let store = open(options).await?;
    ui.confirm(&format!(
        "re-encrypt every session of {} not yet under key {}",
        namespace(&store),
        ring.primary_id()
    ))?;
    let bar = ui.progress(estimate(&store, options).await);
    let mut undecodable = Vec::new();
    let report = store
        .rewrap_with(args.options(), |event| match event {
            RewrapEvent::Progress(report) => bar.set_position(report.examined),
            RewrapEvent::Undecodable { session, error } => {
                undecodable
                    .push(json!({ "session": session.to_string(), "error": error.to_string() }));
            }
            _ => {}
        })
        .await;
    bar.finish_and_clear();
    store.close().await;
    let (report, stopped) = match report {
        Ok(report) => (report, None),
        Err(stopped) if stopped.done.examined == 0 => return Err(stopped.error.into()),
        Err(Incomplete { done, error, .. }) => (done, Some(error)),
    };
    let mut text = format!(
        "examined {}, rewrapped {} under key {}, changed meanwhile (run again) {}, \
         undecodable (skipped) {}\n",
        report.examined,
        report.rewrapped,
        ring.primary_id(),
        report.skipped,
        report.undecodable
    );
    for skipped in &undecodable {
        let _ = writeln!(
            text,
            "  undecodable {}: {}",
            skipped["session"].as_str().unwrap_or_default(),
            skipped["error"].as_str().unwrap_or_default()
        );
    }
    let json = json!({
        "collection": namespace(&store),
        "primary_key_id": ring.primary_id(),
        "examined": report.examined,
        "rewrapped": report.rewrapped,
        "skipped": report.skipped,
        "undecodable": report.undecodable,
        "undecodable_sessions": undecodable,
    });
    if let Some(error) = stopped {
        return Ok(Report::stopped(json, &text, &error));
    }
    Ok(Report::new(json, text).incomplete_if(report.skipped + report.undecodable > 0))
}
