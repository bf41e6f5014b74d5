//! Ending many lineages at once (a user's "sign out everywhere", the
//! session limit): the endings appended by one unordered bulk `update` of
//! upserts per batch, the records read back by `$in`, the sessions deleted
//! by `deleteMany` per batch. A few go one at a time (`findAndModify`,
//! `deleteOne`: retryable writes).

use std::collections::HashMap;

use futures_util::{future::join_all, TryStreamExt};
use mongodb::bson::{doc, Bson, Document};

use super::MongoSessionStore;
use crate::{endings::Record, error::Result};

/// From this many lineages (or sessions), the bulk path.
pub(super) const BULK_FROM: usize = 8;
/// Statements, ids or sessions per round trip of the bulk path.
const BATCH: usize = 1_000;

impl MongoSessionStore {
    /// Appends `update` to each lineage's record (created if missing), and
    /// returns the records as they are after it, by lineage. Every ending is
    /// on record before any record is read: a regeneration that claims
    /// after it sees it, and one that claimed before is in what is read.
    pub(super) async fn record_endings(
        &self,
        updates: Vec<(String, Document)>,
        deadline: tokio::time::Instant,
    ) -> Result<HashMap<String, Record>> {
        if updates.len() < BULK_FROM {
            let appends = updates.iter().map(|(lineage, update)| {
                let filter = doc! { "_id": lineage };
                self.record_ending(filter, update.clone(), true, deadline)
            });
            let mut records = HashMap::new();
            for ((lineage, _), record) in updates.iter().zip(join_all(appends).await) {
                records.extend(record?.map(|record| (lineage.clone(), record)));
            }
            return Ok(records);
        }
        for batch in updates.chunks(BATCH) {
            self.append_in_bulk(batch).await?;
        }
        let mut records = HashMap::new();
        for batch in updates.chunks(BATCH) {
            let lineages: Vec<&str> = batch.iter().map(|(lineage, _)| lineage.as_str()).collect();
            let find = self
                .inner
                .endings
                .find(doc! { "_id": { "$in": lineages } })
                .projection(doc! { "v": 1, "events": 1 });
            let read = async { find.await?.try_collect::<Vec<Document>>().await };
            for document in self.run("find", read).await? {
                if let Ok(lineage) = document.get_str("_id") {
                    records.insert(lineage.to_string(), Record::parse(&document));
                }
            }
        }
        Ok(records)
    }

    /// One unordered `update` command of upserts. A statement the server
    /// refused (two upserts of one new record racing) and a write concern
    /// the server could not meet are redone one at a time, whose errors are
    /// the driver's: an ending appended twice only ends the lineage twice.
    async fn append_in_bulk(&self, batch: &[(String, Document)]) -> Result<()> {
        let endings = &self.inner.endings;
        let statements: Vec<Document> = batch
            .iter()
            .map(|(lineage, update)| doc! { "q": { "_id": lineage }, "u": update, "upsert": true })
            .collect();
        let mut command = doc! {
            "update": endings.name(),
            "updates": statements,
            "ordered": false,
        };
        if let Some(concern) = endings.write_concern() {
            if let Ok(concern) = mongodb::bson::to_document(concern) {
                if !concern.is_empty() {
                    command.insert("writeConcern", concern);
                }
            }
        }
        let database = endings.client().database(&endings.namespace().db);
        let reply = self.run("update", database.run_command(command)).await?;
        let redo: Vec<usize> = if reply.contains_key("writeConcernError") {
            (0..batch.len()).collect()
        } else {
            reply
                .get_array("writeErrors")
                .map(|errors| errors.iter().filter_map(statement_index).collect())
                .unwrap_or_default()
        };
        let deadline = self.deadline();
        for index in redo.into_iter().filter(|&i| i < batch.len()) {
            let (lineage, update) = &batch[index];
            let filter = doc! { "_id": lineage };
            self.record_ending(filter, update.clone(), true, deadline)
                .await?;
        }
        Ok(())
    }

    /// Deletes the sessions stored under `keys` by `deleteMany` of a batch
    /// of ids per round trip, counting in `deleted` how many there were
    /// (also those of the batches before one that failed).
    pub(super) async fn delete_in_bulk(&self, keys: &[String], deleted: &mut u64) -> Result<()> {
        let id_field = &self.inner.layout.fields.id;
        for batch in keys.chunks(BATCH) {
            let filter = doc! { id_field: { "$in": batch } };
            let delete = self.inner.collection.delete_many(filter);
            *deleted += self.run("deleteMany", delete).await?.deleted_count;
        }
        Ok(())
    }
}

fn statement_index(error: &Bson) -> Option<usize> {
    let index = error.as_document()?.get("index")?;
    match index {
        Bson::Int32(i) => usize::try_from(*i).ok(),
        Bson::Int64(i) => usize::try_from(*i).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use mongodb::{
        bson::Document,
        options::{
            Acknowledgment, ClientOptions, CollectionOptions, ReadPreference,
            ReadPreferenceOptions, SelectionCriteria, WriteConcern,
        },
        Client,
    };

    use crate::store::endings_collection;

    /// The endings are the check of a write-then-check: read on the
    /// primary even when the sessions are read on secondaries, written
    /// with the sessions' write concern.
    #[tokio::test]
    async fn the_endings_are_read_on_the_primary_whatever_the_sessions_preference() {
        let options = ClientOptions::parse("mongodb://localhost:27017")
            .await
            .unwrap();
        let client = Client::with_options(options).unwrap();
        let secondaries = ReadPreference::SecondaryPreferred {
            options: Some(ReadPreferenceOptions::default()),
        };
        let majority = WriteConcern::builder().w(Acknowledgment::Majority).build();
        let sessions = CollectionOptions::builder()
            .selection_criteria(SelectionCriteria::ReadPreference(secondaries))
            .write_concern(majority.clone())
            .build();
        let sessions = client
            .database("app")
            .collection_with_options::<Document>("sessions", sessions);
        let endings = endings_collection(&sessions);
        assert_eq!(endings.name(), "sessions.endings");
        assert!(matches!(
            endings.selection_criteria(),
            Some(SelectionCriteria::ReadPreference(ReadPreference::Primary))
        ));
        assert_eq!(endings.write_concern(), Some(&majority));
    }
}
