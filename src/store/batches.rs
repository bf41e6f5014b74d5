//! Reading a cursor a batch at a time, each batch one round trip bounded by
//! the operation timeout (the walks over the whole collection: purge,
//! rewrap, stats, migration).

use futures_util::TryStreamExt;
use mongodb::{action::Find, Cursor};
use serde::de::DeserializeOwned;

use super::MongoSessionStore;
use crate::error::Result;

impl MongoSessionStore {
    /// Runs `find` (whose batch size is `size`) and reads its first batch,
    /// which its reply carries: one round trip.
    pub(crate) async fn open_batches<T>(
        &self,
        find: Find<'_, T>,
        size: usize,
    ) -> Result<(Cursor<T>, Vec<T>)>
    where
        T: DeserializeOwned + Send + Sync + Unpin,
    {
        let open = async {
            let mut cursor = find.await?;
            let batch = read(&mut cursor, size).await?;
            Ok((cursor, batch))
        };
        self.run("find", open).await
    }

    /// The cursor's next batch of `size`: one round trip (a `getMore`),
    /// none at the cursor's end (an empty batch).
    pub(crate) async fn next_batch<T>(&self, cursor: &mut Cursor<T>, size: usize) -> Result<Vec<T>>
    where
        T: DeserializeOwned + Send + Sync + Unpin,
    {
        // Between batches nothing is buffered: whether there is more is
        // whether the server kept the cursor open.
        if !cursor.has_next() {
            return Ok(Vec::new());
        }
        self.run("getMore", read(cursor, size)).await
    }
}

/// The cursor's next `size` documents (fewer at its end).
async fn read<T>(cursor: &mut Cursor<T>, size: usize) -> mongodb::error::Result<Vec<T>>
where
    T: DeserializeOwned + Send + Sync + Unpin,
{
    let mut batch = Vec::with_capacity(size.min(10_000));
    while batch.len() < size {
        let Some(document) = cursor.try_next().await? else {
            break;
        };
        batch.push(document);
    }
    Ok(batch)
}
