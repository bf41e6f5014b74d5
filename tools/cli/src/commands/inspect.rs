//! The commands that only read: `stats` and `list`.

use std::fmt::Write as _;

use anyhow::Result;
use serde_json::{json, Map, Value};

use super::{date, estimate, namespace, open};
use crate::{
    options::StoreOptions,
    run::{Report, Ui},
};

pub(super) async fn stats(options: &StoreOptions, ui: Ui) -> Result<Report> {
    let store = open(options).await?;
    let bar = ui.progress(estimate(&store, options).await);
    let stats = store.stats_with(|read| bar.set_position(read)).await;
    bar.finish_and_clear();
    let stats = stats?;
    let primary = options.key_ring()?.map(|ring| ring.primary_id());
    let key_ids: Map<String, Value> = stats
        .key_ids
        .iter()
        .map(|(id, count)| (id.to_string(), json!(count)))
        .collect();
    let json = json!({
        "collection": namespace(&store),
        "documents": stats.documents,
        "live": stats.live,
        "expired": stats.expired,
        "with_owner": stats.with_owner,
        "owners": stats.owners,
        "size_bytes": { "p50": stats.size.p50, "p99": stats.size.p99, "max": stats.size.max },
        "key_ids": key_ids,
        "primary_key_id": primary,
    });
    let mut text = format!(
        "{}: {} documents\n\
         live sessions            {}\n\
         expired, not yet removed {}\n\
         live with an owner       {}\n\
         distinct owners          {}\n\
         document size (bytes)    p50 {}  p99 {}  max {}\n",
        namespace(&store),
        stats.documents,
        stats.live,
        stats.expired,
        stats.with_owner,
        stats.owners,
        stats.size.p50,
        stats.size.p99,
        stats.size.max,
    );
    if !stats.key_ids.is_empty() {
        text.push_str("documents per encryption key id\n");
        for (id, count) in &stats.key_ids {
            let mark = if Some(*id) == primary {
                " (primary)"
            } else {
                ""
            };
            let _ = writeln!(text, "  {id}{mark}: {count}");
        }
    }
    store.close().await;
    Ok(Report::new(json, text))
}

pub(super) async fn list(options: &StoreOptions, user: &str) -> Result<Report> {
    let store = open(options).await?;
    let sessions = store.user_sessions(user, None).await;
    store.close().await;
    let sessions = sessions?;
    let listed: Vec<Value> = sessions
        .iter()
        .map(|s| {
            json!({
                "handle": s.handle,
                "created_at": date(s.created_at),
                "last_active": date(s.last_active),
                "user_agent": s.user_agent,
                "ip": s.ip,
            })
        })
        .collect();
    let mut text = format!("{} live sessions of {user:?}\n", sessions.len());
    for s in &listed {
        let field = |name: &str| s[name].as_str().unwrap_or("-").to_string();
        let _ = writeln!(
            text,
            "{}  created {}  last active {}  {}  {}",
            field("handle"),
            field("created_at"),
            field("last_active"),
            field("ip"),
            field("user_agent"),
        );
    }
    Ok(Report::new(
        json!({ "user": user, "sessions": listed }),
        text,
    ))
}
