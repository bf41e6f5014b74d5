//! The endings collection's indexes (see `crate::endings`): its TTL index,
//! and the two lookups the protocol makes by something other than `_id`.

use std::time::Duration;

use mongodb::{
    bson::{doc, Document},
    options::IndexOptions,
    Collection, IndexModel,
};

use super::{IndexRepair, TtlIndex};
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
    // The collection is the store's alone: its TTL index may be recreated
    // (a switch to or from the Cosmos DB profile moves it).
    let ttl = if cosmos {
        TtlIndex::new("_ts", retention)
    } else {
        TtlIndex::new("expires", Duration::ZERO)
    };
    ttl.reconcile(endings, IndexRepair::Recreate, bound).await?;
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
        .create_indexes([ids, user])
        .await
        .map(drop)
        .map_err(|e| Error::from_driver("createIndexes", bound, e))
}
