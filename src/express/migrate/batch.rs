//! One batch of a migration: its source documents decoded, the target's
//! documents and the ledger's entries for all of them read at once (`$in`),
//! what each session needs decided as a session-at-a-time run would, and
//! the writes then made together.

use std::collections::{HashMap, HashSet};

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};

use super::{
    describe,
    ledger::{fingerprint, DrySeen, Entry, Ledger},
    same_session, MigrateOptions, MigrationReport, Step,
};
use crate::{error::Result, schema::Decoded, MongoSessionStore};

/// A source document of the batch that decoded.
struct Item<'d> {
    source: &'d Document,
    key: String,
    decoded: Decoded,
}

impl MongoSessionStore {
    /// Into another collection: copies the sessions of `batch` whose source
    /// changed since the ledger's record of them (or that it has none of),
    /// and records what it did; counts into `tally`.
    pub(super) async fn copy_batch(
        &self,
        source: &MongoSessionStore,
        ledger: &Ledger<'_>,
        batch: &[Document],
        options: MigrateOptions,
        tally: &mut MigrationReport,
        dry: Option<&mut DrySeen>,
    ) -> Result<()> {
        let (items, keys) = decode_batch(self, source, batch, tally);
        let existing = self.targets(&items).await?;
        let entries = ledger.get(&keys).await?;
        let (mut records, mut new, mut over) = (Vec::new(), Vec::new(), Vec::new());
        for item in items {
            let old = existing.get(&item.key);
            let entry = entries.get(&item.key);
            let version = version_after(self, old, entry);
            let copy = self.native_copy(&item.key, item.decoded, old, version);
            let Some(native) = skip_undecodable(copy, source, item.source, tally)? else {
                continue;
            };
            let from = fingerprint(item.source, None);
            if let Some(entry) = entry.filter(|e| e.from == from && !e.pending) {
                // Unchanged at the source since its copy: whatever the
                // native side did with the copy stands.
                let untouched = old.is_some_and(|o| self.copy_print(o) == entry.copy);
                let step = if untouched {
                    Step::Unchanged
                } else {
                    Step::KeptNative
                };
                step.count(tally);
                continue;
            }
            if let Some(old) = old.filter(|o| same_session(self.layout(), o, &native)) {
                Step::Unchanged.count(tally);
                let print = self.copy_print(old);
                records.push((item.key, from, print, self.version_of(old), false));
                continue;
            }
            Step::Converted.count(tally);
            let print = self.copy_print(&native);
            records.push((item.key, from, print, Some(version), true));
            if old.is_some() {
                over.push(native);
            } else {
                new.push(native);
            }
        }
        if let Some(dry) = dry {
            dry.extend(&keys);
            return Ok(());
        }
        // Every source still there whose entry is not rewritten here: its
        // entry is marked seen, so its copy is not taken for an orphan.
        let recorded: HashSet<&str> = records.iter().map(|r| r.0.as_str()).collect();
        let seen_only: Vec<String> = keys
            .iter()
            .filter(|k| entries.contains_key(*k) && !recorded.contains(k.as_str()))
            .cloned()
            .collect();
        // Recorded as pending first: should the run stop before the copies
        // are written, the next one can tell an unfinished copy from a
        // native logout.
        let batch = if new.is_empty() && over.is_empty() {
            None
        } else {
            Some(ledger.open_batch().await?)
        };
        let records = records
            .into_iter()
            .map(|(key, from, copy, version, pending)| {
                let batch = batch.filter(|_| pending);
                ledger.entry(&key, (&from, &copy), version, batch)
            })
            .collect();
        ledger.write(records, &entries, options.concurrency).await?;
        self.write_copies(new, over, options.concurrency).await?;
        if let Some(batch) = batch {
            ledger.close(batch).await?;
        }
        ledger.mark_seen(&seen_only).await
    }

    /// In place: writes the native copies of `batch`, then deletes each
    /// source only if it is still as read, undoing the copy of one that is
    /// not; counts into `tally`.
    pub(super) async fn move_batch(
        &self,
        source: &MongoSessionStore,
        batch: &[Document],
        options: MigrateOptions,
        tally: &mut MigrationReport,
    ) -> Result<()> {
        let (items, _) = decode_batch(self, source, batch, tally);
        let existing = self.targets(&items).await?;
        let mut moves = Vec::new();
        for item in items {
            let old = existing.get(&item.key).cloned();
            let version = version_after(self, old.as_ref(), None);
            let copy = self.native_copy(&item.key, item.decoded, old.as_ref(), version);
            let Some(native) = skip_undecodable(copy, source, item.source, tally)? else {
                continue;
            };
            let up_to_date = old
                .as_ref()
                .is_some_and(|o| same_session(self.layout(), o, &native));
            if options.dry_run {
                Step::converted_unless(up_to_date).count(tally);
                continue;
            }
            moves.push((item.source, native, old, up_to_date));
        }
        let (mut new, mut over) = (Vec::new(), Vec::new());
        for (_, native, old, up_to_date) in &moves {
            match (up_to_date, old) {
                (true, _) => {}
                (false, Some(_)) => over.push(native.clone()),
                (false, None) => new.push(native.clone()),
            }
        }
        self.write_copies(new, over, options.concurrency).await?;
        let sources: Vec<&Document> = moves.iter().map(|m| m.0).collect();
        let moved = self
            .delete_sources(source, &sources, options.concurrency)
            .await?;
        for ((_, native, old, up_to_date), moved) in moves.into_iter().zip(moved) {
            if moved {
                Step::converted_unless(up_to_date).count(tally);
                continue;
            }
            let written = (!up_to_date).then_some(native);
            self.undo(written, old).await?;
            Step::Deferred.count(tally);
        }
        Ok(())
    }

    /// The target's documents under the keys of `items`, by key: one read.
    async fn targets(&self, items: &[Item<'_>]) -> Result<HashMap<String, Document>> {
        let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
        self.by_keys(&keys).await
    }

    /// The documents under `keys`, by key: one read.
    pub(super) async fn by_keys(&self, keys: &[&str]) -> Result<HashMap<String, Document>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let id = &self.layout().fields.id;
        let find = self
            .collection()
            .find(doc! { id: { "$in": keys } })
            .batch_size(u32::try_from(keys.len()).unwrap_or(u32::MAX));
        let found: Vec<Document> = self
            .run("find", async { find.await?.try_collect().await })
            .await?;
        Ok(found
            .into_iter()
            .filter_map(|d| Some((d.get_str(id).ok()?.to_string(), d)))
            .collect())
    }

    /// The version field of a native document, if it has one.
    fn version_of(&self, document: &Document) -> Option<i64> {
        let field = self.layout().fields.version.as_ref()?;
        document.get_i64(field).ok()
    }
}

/// A session's native `copy`, or `None` after counting a failure for one
/// that does not decode: the batch goes on without it.
fn skip_undecodable(
    copy: Result<Document>,
    source: &MongoSessionStore,
    raw: &Document,
    tally: &mut MigrationReport,
) -> Result<Option<Document>> {
    match copy {
        Ok(native) => Ok(Some(native)),
        Err(e) if e.is_decode() => {
            tally.failures.push(describe(source.layout(), raw, &e));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Decodes the batch: the documents that decode, and the native key of
/// every document with an id (one that does not decode is still in the
/// source, so its copy stays). Undecodable ones go to `tally.failures`.
fn decode_batch<'d>(
    target: &MongoSessionStore,
    source: &MongoSessionStore,
    batch: &'d [Document],
    tally: &mut MigrationReport,
) -> (Vec<Item<'d>>, Vec<String>) {
    let (from, to) = (source.layout(), target.layout());
    let mut items = Vec::with_capacity(batch.len());
    let mut keys = Vec::with_capacity(batch.len());
    for document in batch {
        if let Ok(id) = document.get_str(&from.fields.id) {
            keys.push(to.stored_id(id));
        }
        match from.decode(document) {
            Ok(decoded) => items.push(Item {
                source: document,
                key: to.stored_id(&decoded.stored_id),
                decoded,
            }),
            Err(e) => tally.failures.push(describe(from, document, &e)),
        }
    }
    (items, keys)
}

/// The version a copy is written with, so that `version` never moves
/// backwards for a stored id: one past the target's document's, so no
/// request holding the earlier copy takes the new one for its own next
/// write; when the native side deleted a copy the ledger recorded (its
/// history since is unknown), past any version it can have reached: the
/// microseconds since the epoch (each write of that history took longer
/// than one); 0 for a first copy.
fn version_after(
    target: &MongoSessionStore,
    existing: Option<&Document>,
    recorded: Option<&Entry>,
) -> i64 {
    match (existing, recorded) {
        (Some(existing), _) => target
            .version_of(existing)
            .map_or(0, |v| v.saturating_add(1)),
        (None, Some(entry)) => {
            let micros = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
            entry.version.map_or(0, |v| v.saturating_add(1)).max(micros)
        }
        (None, None) => 0,
    }
}
