//! The indexes of the sessions collection, as the server lists them.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use testkit::TestDb;

/// The indexes of `sessions` (none if the collection does not exist yet).
pub async fn indexes(db: &TestDb) -> Vec<Document> {
    let listed = db
        .database()
        .run_cursor_command(doc! {"listIndexes": "sessions"})
        .await;
    match listed {
        Ok(cursor) => cursor.try_collect().await.unwrap(),
        Err(_) => Vec::new(),
    }
}

/// The indexes of `sessions` whose key is `{field: 1}`.
pub async fn indexes_on(db: &TestDb, field: &str) -> Vec<Document> {
    let key = doc! {field: 1};
    let all = indexes(db).await;
    let on_field = all.into_iter();
    on_field
        .filter(|ix| ix.get_document("key").unwrap() == &key)
        .collect()
}

/// The index of `sessions` whose key is `{field: 1}`, if there is one.
pub async fn index_on(db: &TestDb, field: &str) -> Option<Document> {
    indexes_on(db, field).await.into_iter().next()
}

/// A TTL index's `expireAfterSeconds` (the server may answer an int32 or
/// an int64); `None` for an index that is no TTL index.
pub fn expire_after_seconds(index: &Document) -> Option<i64> {
    let value = index.get("expireAfterSeconds")?;
    value.as_i64().or(value.as_i32().map(i64::from))
}
