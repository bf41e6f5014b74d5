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
//!   pending: bool,  // written just before the copy, cleared after it
//!   at: ISODate }
//! ```
//!
//! A fingerprint covers every field of a document, so any write by the
//! native service (a save, a touch, a new owner) makes the copy differ from
//! the ledger: from then on it is the native side's. Raw session ids are
//! never stored here.

use std::collections::HashSet;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use futures_util::TryStreamExt;
use mongodb::{
    bson::{doc, Bson, DateTime, Document},
    options::CollectionOptions,
    Collection,
};
use sha2::{Digest, Sha256};

use crate::{error::Result, MongoSessionStore};

/// What the ledger remembers of one copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) key: String,
    pub(super) from: String,
    pub(super) copy: String,
    pub(super) pending: bool,
}

impl Entry {
    fn parse(document: &Document) -> Option<Self> {
        Some(Self {
            key: document.get_str("_id").ok()?.to_string(),
            from: document.get_str("from").ok()?.to_string(),
            copy: document.get_str("copy").ok()?.to_string(),
            pending: document.get_bool("pending").unwrap_or(true),
        })
    }
}

pub(super) struct Ledger<'a> {
    store: &'a MongoSessionStore,
    collection: Collection<Document>,
    source: String,
}

impl<'a> Ledger<'a> {
    /// The ledger of copies from `source` into `target`, with the target's
    /// read and write concerns.
    pub(super) fn new(target: &'a MongoSessionStore, source: &MongoSessionStore) -> Self {
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
        Self {
            store: target,
            collection,
            source: source.collection().namespace().to_string(),
        }
    }

    pub(super) async fn get(&self, key: &str) -> Result<Option<Entry>> {
        let found = self
            .store
            .run("find", self.collection.find_one(doc! { "_id": key }))
            .await?;
        Ok(found.as_ref().and_then(Entry::parse))
    }

    /// Remembers that `key` holds (or, while `pending`, is about to hold) a
    /// copy fingerprinted `copy` of a source fingerprinted `from`.
    pub(super) async fn record(
        &self,
        key: &str,
        from: &str,
        copy: &str,
        pending: bool,
    ) -> Result<()> {
        let entry = doc! {
            "_id": key, "source": &self.source, "from": from, "copy": copy,
            "pending": pending, "at": DateTime::now(),
        };
        let replace = self
            .collection
            .replace_one(doc! { "_id": key }, entry)
            .upsert(true);
        self.store.run("replace", replace).await?;
        Ok(())
    }

    /// The copy announced by [`record`](Self::record) is written.
    pub(super) async fn settle(&self, key: &str) -> Result<()> {
        let update = self
            .collection
            .update_one(doc! { "_id": key }, doc! { "$set": { "pending": false } });
        self.store.run("update", update).await?;
        Ok(())
    }

    /// Entries for this source whose session was not among `seen`: their
    /// source is gone.
    pub(super) async fn gone(&self, seen: &HashSet<String>) -> Result<Vec<Entry>> {
        let find = self.collection.find(doc! { "source": &self.source });
        let mut cursor = self.store.run("find", find).await?;
        let mut gone = Vec::new();
        while let Some(document) = self.store.run("find", cursor.try_next()).await? {
            match Entry::parse(&document) {
                Some(entry) if !seen.contains(&entry.key) => gone.push(entry),
                _ => {}
            }
        }
        Ok(gone)
    }

    pub(super) async fn forget(&self, key: &str) -> Result<()> {
        let delete = self.collection.delete_one(doc! { "_id": key });
        self.store.run("delete", delete).await?;
        Ok(())
    }
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
