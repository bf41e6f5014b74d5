//! The copy-mode ledger: which native documents the migration wrote, and
//! from what.
//!
//! One entry per copied session, keyed by its native (hashed) id, in the
//! collection `<target>.migration`:
//!
//! ```text
//! { _id: "<native id>", source: "<db>.<collection>",
//!   from: "<fingerprint of the source document>",
//!   copy: "<fingerprint of the native document as written>",
//!   version: Int64,     // the copy's version, so a re-copy continues from it
//!   batch: ObjectId,    // the batch that wrote it: pending while that
//!                       // batch's record (below) is there
//!   run: ObjectId,      // the last run that saw its source
//!   at: ISODate }
//! ```
//!
//! A batch that copies records itself first, `{ _id: ObjectId, open:
//! "<source>", at }`, and removes that record once its copies are written:
//! should the run stop in between, the next one can tell an unfinished copy
//! from a native logout (one write a batch, where marking each entry settled
//! would be one a session). Entries of earlier versions carry `pending:
//! bool` instead, still honoured.
//!
//! A fingerprint covers every field of a document, so any write by the
//! native service (a save, a touch, a new owner) makes the copy differ from
//! the ledger: from then on it is the native side's. Raw session ids are
//! never stored here.

use std::{
    collections::{HashMap, HashSet},
    hash::{DefaultHasher, Hash, Hasher},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use futures_util::{StreamExt, TryStreamExt};
use mongodb::{
    bson::{doc, oid::ObjectId, Bson, DateTime, Document},
    options::CollectionOptions,
    Collection,
};
use sha2::{Digest, Sha256};

use super::writes::insert_new;
use crate::{error::Result, MongoSessionStore};

/// What the ledger remembers of one copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) key: String,
    pub(super) from: String,
    pub(super) copy: String,
    pub(super) version: Option<i64>,
    pub(super) pending: bool,
}

pub(super) struct Ledger<'a> {
    store: &'a MongoSessionStore,
    collection: Collection<Document>,
    source: String,
    /// This run: entries it wrote or saw carry it.
    run: ObjectId,
    /// Batches of earlier runs that stopped before their copies were all
    /// written (as many as such stops, not sessions).
    open: HashSet<ObjectId>,
}

impl<'a> Ledger<'a> {
    /// The ledger of copies from `source` into `target`, with the target's
    /// read and write concerns, and the batches earlier runs left open.
    pub(super) async fn open(
        target: &'a MongoSessionStore,
        source: &MongoSessionStore,
    ) -> Result<Ledger<'a>> {
        let sessions = target.collection();
        let namespace = sessions.namespace();
        let options = CollectionOptions::builder()
            .read_concern(sessions.read_concern().cloned())
            .write_concern(sessions.write_concern().cloned())
            .selection_criteria(sessions.selection_criteria().cloned())
            .build();
        let collection = sessions
            .client()
            .database(&namespace.db)
            .collection_with_options(&name(&namespace.coll), options);
        let source = source.collection().namespace().to_string();
        let find = collection.find(doc! { "open": &source });
        let open: Vec<Document> = target
            .run("find", async { find.await?.try_collect().await })
            .await?;
        Ok(Self {
            store: target,
            collection,
            open: open
                .iter()
                .filter_map(|d| d.get_object_id("_id").ok())
                .collect(),
            source,
            run: ObjectId::new(),
        })
    }

    fn parse(&self, document: &Document) -> Option<Entry> {
        let open = document
            .get_object_id("batch")
            .is_ok_and(|batch| self.open.contains(&batch));
        Some(Entry {
            key: document.get_str("_id").ok()?.to_string(),
            from: document.get_str("from").ok()?.to_string(),
            copy: document.get_str("copy").ok()?.to_string(),
            version: document.get_i64("version").ok(),
            pending: open || document.get_bool("pending").unwrap_or(false),
        })
    }

    /// The entries of `keys`, by key.
    pub(super) async fn get(&self, keys: &[String]) -> Result<HashMap<String, Entry>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let find = self
            .collection
            .find(doc! { "_id": { "$in": keys } })
            .batch_size(u32::try_from(keys.len()).unwrap_or(u32::MAX));
        let found: Vec<Document> = self
            .store
            .run("find", async { find.await?.try_collect().await })
            .await?;
        Ok(found
            .iter()
            .filter_map(|d| self.parse(d))
            .map(|e| (e.key.clone(), e))
            .collect())
    }

    /// The entry recording a copy fingerprinted `copy` (at `version`) of a
    /// source fingerprinted `from`; pending until `batch` is closed.
    pub(super) fn entry(
        &self,
        key: &str,
        (from, copy): (&str, &str),
        version: Option<i64>,
        batch: Option<ObjectId>,
    ) -> Document {
        let mut entry = doc! {
            "_id": key, "source": &self.source, "from": from, "copy": copy,
            "run": self.run, "at": DateTime::now(),
        };
        if let Some(version) = version {
            entry.insert("version", version);
        }
        if let Some(batch) = batch {
            entry.insert("batch", batch);
        }
        entry
    }

    /// Announces a batch whose entries are pending until [`close`](Self::close).
    pub(super) async fn open_batch(&self) -> Result<ObjectId> {
        let batch = ObjectId::new();
        let record = doc! { "_id": batch, "open": &self.source, "at": DateTime::now() };
        self.store
            .run("insert", self.collection.insert_one(record))
            .await?;
        Ok(batch)
    }

    /// Every copy of `batch` is written: its entries are settled.
    pub(super) async fn close(&self, batch: ObjectId) -> Result<()> {
        let delete = self.collection.delete_one(doc! { "_id": batch });
        self.store.run("delete", delete).await?;
        Ok(())
    }

    /// Writes `entries`: new keys in one unordered insert, entries that
    /// exist (`known`) replaced one by one, `concurrency` at a time.
    pub(super) async fn write(
        &self,
        entries: Vec<Document>,
        known: &HashMap<String, Entry>,
        concurrency: usize,
    ) -> Result<()> {
        let (replaced, new): (Vec<Document>, Vec<Document>) = entries
            .into_iter()
            .partition(|e| e.get_str("_id").is_ok_and(|key| known.contains_key(key)));
        let taken = insert_new(self.store, &self.collection, new).await?;
        let replace = |entry: Document| {
            let filter = doc! { "_id": entry.get("_id").cloned() };
            let replace = self.collection.replace_one(filter, entry).upsert(true);
            async move { self.store.run("replace", replace).await.map(drop) }
        };
        let replaced = replaced.into_iter().chain(taken).map(replace);
        let results: Vec<Result<()>> = futures_util::stream::iter(replaced)
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Marks the entries of `keys` as seen by this run: their source is
    /// still there.
    pub(super) async fn mark_seen(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let filter = doc! { "_id": { "$in": keys } };
        let update = doc! { "$set": { "run": self.run } };
        let mark = self.collection.update_many(filter, update);
        self.store.run("update", mark).await?;
        Ok(())
    }

    /// The next `limit` entries of this source after key `after` that this
    /// run did not see (`every`: whether it saw them or not), in key order.
    pub(super) async fn after(
        &self,
        after: Option<&str>,
        limit: usize,
        every: bool,
    ) -> Result<Vec<Entry>> {
        let mut filter = doc! { "source": &self.source };
        if !every {
            filter.insert("run", doc! { "$ne": self.run });
        }
        if let Some(after) = after {
            filter.insert("_id", doc! { "$gt": after });
        }
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let find = self
            .collection
            .find(filter)
            .sort(doc! { "_id": 1 })
            .limit(limit)
            .batch_size(u32::try_from(limit).unwrap_or(u32::MAX));
        let found: Vec<Document> = self
            .store
            .run("find", async { find.await?.try_collect().await })
            .await?;
        Ok(found.iter().filter_map(|d| self.parse(d)).collect())
    }

    pub(super) async fn forget(&self, keys: &[String]) -> Result<()> {
        let delete = self.collection.delete_many(doc! { "_id": { "$in": keys } });
        self.store.run("delete", delete).await?;
        Ok(())
    }
}

/// The native keys a dry run saw, as 64-bit hashes (it writes no marks).
#[derive(Debug, Default)]
pub(super) struct DrySeen(Vec<u64>);

impl DrySeen {
    pub(super) fn extend(&mut self, keys: &[String]) {
        self.0.extend(keys.iter().map(|k| hash(k)));
    }

    /// Once every key is in, before [`contains`](Self::contains).
    pub(super) fn sort(&mut self) {
        self.0.sort_unstable();
    }

    pub(super) fn contains(&self, key: &str) -> bool {
        self.0.binary_search(&hash(key)).is_ok()
    }
}

fn hash(key: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

/// The ledger's collection beside `target`.
pub(super) fn name(target: &str) -> String {
    format!("{target}.migration")
}

/// A digest of every field of `document` but `skip`, in name order, so it
/// does not depend on how the server orders fields.
pub(super) fn fingerprint(document: &Document, skip: Option<&str>) -> String {
    let mut fields: Vec<(&String, &Bson)> = document
        .iter()
        .filter(|(name, _)| Some(name.as_str()) != skip)
        .collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let mut hasher = Sha256::new();
    for (name, value) in fields {
        let mut bytes = Vec::new();
        doc! { name: value.clone() }
            .to_writer(&mut bytes)
            .expect("a document read from or written to the server serializes");
        hasher.update(bytes);
    }
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_ignores_field_order_and_the_skipped_field_only() {
        let a = doc! { "_id": 1, "data": { "x": 1 }, "expires": 2 };
        let b = doc! { "expires": 2, "data": { "x": 1 }, "_id": 9 };
        assert_eq!(fingerprint(&a, Some("_id")), fingerprint(&b, Some("_id")));
        assert_ne!(fingerprint(&a, None), fingerprint(&b, None));
        let touched = doc! { "_id": 1, "data": { "x": 1 }, "expires": 3 };
        assert_ne!(fingerprint(&a, None), fingerprint(&touched, None));
    }
}
