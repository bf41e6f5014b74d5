//! The writes of a migration: a copy (into another collection) or a move
//! (in place), each undone when the source changed or vanished meanwhile,
//! and the removal of copies whose source is gone.

use std::collections::HashSet;

use mongodb::bson::{doc, Document};

use super::{
    as_read, exactly,
    ledger::{fingerprint, Ledger},
    same_session, Candidate, MigrateOptions, MigrationReport, Step,
};
use crate::{error::Result, MongoSessionStore};

impl MongoSessionStore {
    /// Into another collection: copies unless the ledger shows the source
    /// unchanged since its last copy, in which case whatever the native side
    /// did with the copy stands.
    pub(super) async fn copy(
        &self,
        ledger: &Ledger<'_>,
        candidate: Candidate,
        from: &str,
        options: MigrateOptions,
    ) -> Result<Step> {
        let to = self.layout();
        let Candidate {
            key,
            native,
            existing,
        } = candidate;
        let entry = ledger.get(&key).await?;
        if let Some(entry) = entry.filter(|e| e.from == from && !e.pending) {
            let untouched = existing
                .as_ref()
                .is_some_and(|e| self.copy_print(e) == entry.copy);
            return Ok(if untouched {
                Step::Unchanged
            } else {
                Step::KeptNative
            });
        }
        let up_to_date = existing.as_ref().filter(|e| same_session(to, e, &native));
        if options.dry_run {
            return Ok(Step::converted_unless(up_to_date.is_some()));
        }
        if let Some(existing) = up_to_date {
            ledger
                .record(&key, from, &self.copy_print(existing), false)
                .await?;
            return Ok(Step::Unchanged);
        }
        // Recorded as pending first: should the run stop between the two
        // writes, the next one can tell an unfinished copy from a native
        // logout.
        ledger
            .record(&key, from, &self.copy_print(&native), true)
            .await?;
        self.upsert(&key, native).await?;
        ledger.settle(&key).await?;
        Ok(Step::Converted)
    }

    /// In place: copies, then deletes the source only if it is still as
    /// read; if it is not, undoes the copy.
    pub(super) async fn move_in_place(
        &self,
        source: &MongoSessionStore,
        document: &Document,
        candidate: Candidate,
        options: MigrateOptions,
    ) -> Result<Step> {
        let to = self.layout();
        let Candidate {
            key,
            native,
            existing,
        } = candidate;
        let up_to_date = existing
            .as_ref()
            .is_some_and(|e| same_session(to, e, &native));
        if options.dry_run {
            return Ok(Step::converted_unless(up_to_date));
        }
        if !up_to_date {
            self.upsert(&key, native.clone()).await?;
        }
        let unchanged = as_read(source.layout(), document);
        let deleted = source
            .run("delete", source.collection().delete_one(unchanged))
            .await?;
        if deleted.deleted_count == 0 {
            let written = if up_to_date { None } else { Some(native) };
            self.undo(written, existing).await?;
            return Ok(Step::Deferred);
        }
        Ok(Step::converted_unless(up_to_date))
    }

    /// Puts back what the target held before a copy whose source changed or
    /// vanished meanwhile; `written` is the copy, if this run wrote one.
    /// Whatever changed the native document in between wins.
    async fn undo(&self, written: Option<Document>, before: Option<Document>) -> Result<()> {
        let collection = self.collection();
        match (written, before) {
            (Some(written), Some(before)) => {
                let restore = collection.replace_one(exactly(&written), before);
                self.run("replace", restore).await?;
            }
            (Some(copy), None) | (None, Some(copy)) => {
                self.run("delete", collection.delete_one(exactly(&copy)))
                    .await?;
            }
            (None, None) => {}
        }
        Ok(())
    }

    async fn upsert(&self, key: &str, native: Document) -> Result<()> {
        let filter = doc! { &self.layout().fields.id: key };
        let replace = self.collection().replace_one(filter, native).upsert(true);
        self.run("replace", replace).await?;
        Ok(())
    }

    /// Into another collection: removes each copy whose source is gone,
    /// if it is still exactly as copied, and forgets it either way.
    pub(super) async fn remove_orphans(
        &self,
        ledger: &Ledger<'_>,
        seen: &HashSet<String>,
        options: MigrateOptions,
        report: &mut MigrationReport,
    ) -> Result<()> {
        let id_field = &self.layout().fields.id;
        for entry in ledger.gone(seen).await? {
            let filter = doc! { id_field: &entry.key };
            let copy = self.run("find", self.collection().find_one(filter)).await?;
            let untouched = copy.filter(|c| self.copy_print(c) == entry.copy);
            if options.dry_run {
                report.removed += u64::from(untouched.is_some());
                continue;
            }
            if let Some(copy) = untouched {
                let delete = self.collection().delete_one(exactly(&copy));
                report.removed += self.run("delete", delete).await?.deleted_count;
            }
            ledger.forget(&entry.key).await?;
        }
        Ok(())
    }

    /// The fingerprint of a native document, leaving out an `_id` the
    /// server assigned when sessions are keyed by another field.
    fn copy_print(&self, document: &Document) -> String {
        let id_field = &self.layout().fields.id;
        fingerprint(document, (id_field != "_id").then_some("_id"))
    }
}
