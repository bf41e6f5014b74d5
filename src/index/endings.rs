//! The endings collection's indexes (see `crate::endings`): its TTL index,
//! and the two lookups the protocol makes by something other than `_id`.

use std::time::Duration;

use mongodb::{
    bson::{doc, Document},
    options::IndexOptions,
    Collection, IndexModel,
};

use crate::error::{Error, Result};

/// Makes sure the endings collection has its indexes: records go when their
/// `expires` passes (or, on Cosmos DB, `retention` after their last write,
/// read from `_ts`), and are found by an ended id and by owner.
pub(crate) async fn ensure_endings_indexes(
    endings: &Collection<Document>,
    cosmos: bool,
    retention: Duration,
    bound: Duration,
) -> Result<()> {
    let ttl = if cosmos {
        IndexModel::builder()
            .keys(doc! { "_ts": 1 })
            .options(IndexOptions::builder().expire_after(retention).build())
            .build()
    } else {
        IndexModel::builder()
            .keys(doc! { "expires": 1 })
            .options(IndexOptions::builder().expire_after(Duration::ZERO).build())
            .build()
    };
    let ids = IndexModel::builder().keys(doc! { "ids": 1 }).build();
    let user = IndexModel::builder()
        .keys(doc! { "user": 1 })
        .options(
            IndexOptions::builder()
                .partial_filter_expression(doc! { "user": { "$exists": true } })
                .build(),
        )
        .build();
    endings
        .create_indexes([ttl, ids, user])
        .await
        .map(drop)
        .map_err(|e| Error::from_driver("createIndexes", bound, e))
}
