//! The create half of a regeneration: whether the session it stored may
//! stay, decided against the lineage's endings record (see
//! `crate::endings`).

use std::time::Duration;

use mongodb::{
    bson::{doc, DateTime},
    options::ReturnDocument,
};

use super::MongoSessionStore;
use crate::{
    endings::{self, decide, Record, Verdict},
    error::{Error, Result},
};

/// How long a regeneration waits for an earlier, still open ending of its
/// lineage to show whether it was a logout or another regeneration (whose
/// create comes within its request). Past it, it gives way: a logout wins,
/// and a regeneration that was slow keeps its session instead of this one.
const WAIT: Duration = Duration::from_millis(500);

impl MongoSessionStore {
    /// After a regeneration stored its session under `successor`: claims
    /// the ending its own delete recorded (`token`) and keeps the session
    /// only if [`decide`] says so; otherwise deletes it and fails with
    /// [`Error::is_ended`].
    pub(super) async fn settle_regeneration(
        &self,
        lineage: &str,
        token: &str,
        successor: &str,
    ) -> Result<()> {
        let deadline = self.deadline();
        let kept = self.claim(lineage, token, successor, deadline).await;
        if !matches!(kept, Ok(true)) {
            // Gone again, best effort when the claim failed: an orphan would
            // only live out its expiry, unreachable (nobody has its id).
            let removed = self
                .delete_sessions(vec![successor.to_string()], deadline)
                .await;
            let own = doc! { "_id": lineage, "events.t": token };
            let give_way = self.inner.endings.update_one(own, endings::give_way());
            let marked = self.run_until("update", give_way, deadline).await;
            kept?;
            removed?;
            marked?;
            return Err(Error::ended());
        }
        Ok(())
    }

    /// Claims event `token` for `successor` and waits for the verdict;
    /// whether the session stays.
    async fn claim(
        &self,
        lineage: &str,
        token: &str,
        successor: &str,
        deadline: tokio::time::Instant,
    ) -> Result<bool> {
        let endings = &self.inner.endings;
        let own = doc! { "_id": lineage, "events.t": token };
        let claim = endings
            .find_one_and_update(own.clone(), endings::claim(successor, DateTime::now()))
            .return_document(ReturnDocument::After);
        let Some(found) = self.run_until("update", claim, deadline).await? else {
            return Ok(false);
        };
        let mut record = Record::parse(&found);
        let give_up_at =
            tokio::time::Instant::now() + WAIT.min(self.inner.config.operation_timeout / 4);
        let mut pause = Duration::from_millis(2);
        loop {
            match decide(&record.events, token) {
                Verdict::Proceed => return Ok(true),
                Verdict::Yield => return Ok(false),
                Verdict::Wait if tokio::time::Instant::now() >= give_up_at => {
                    // Gives way only if nothing changed since the record was
                    // read: had the earlier regeneration claimed meanwhile,
                    // it may have given way to this one.
                    let mut unchanged = own.clone();
                    unchanged.insert("v", record.v);
                    let give_way = endings.update_one(unchanged, endings::give_way());
                    if self
                        .run_until("update", give_way, deadline)
                        .await?
                        .matched_count
                        > 0
                    {
                        return Ok(false);
                    }
                }
                Verdict::Wait => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(40));
                }
            }
            let find = endings.find_one(doc! { "_id": lineage });
            let Some(found) = self.run_until("find", find, deadline).await? else {
                return Ok(false);
            };
            record = Record::parse(&found);
        }
    }
}
