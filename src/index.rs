//! The indexes the store relies on: the TTL index that lets the server
//! delete expired sessions (`index/ttl.rs`, reconciled as
//! [`IndexRepair`] allows), the unique index on a custom id field, and the
//! owner index; `index/plan.rs` says what ensuring them would do.
//!
//! Ensuring is idempotent: an index with the same key and options is
//! accepted whatever its name (another app or an operator may have made
//! it), and a missing one is created. A TTL index with another
//! `expireAfterSeconds` is changed in place with `collMod` by default; what
//! `collMod` cannot change is dropped and recreated only when the caller
//! says so, since another service may depend on it
//! (connect-mongodb-session #119, mongoose #9323).

use std::time::Duration;

use futures_util::TryStreamExt;
use mongodb::{
    bson::{doc, Bson, Document},
    options::IndexOptions,
    Collection, IndexModel,
};

use crate::error::{command_code, Error, Result};

mod endings;
mod plan;
mod repair;
mod ttl;

pub(crate) use endings::ensure_endings_indexes;

pub(crate) use plan::IndexSpec;
pub use plan::{IndexAction, IndexPlan, IndexPurpose, PlannedIndex};
pub use repair::IndexRepair;
pub(crate) use ttl::TtlIndex;

const NAMESPACE_NOT_FOUND: i32 = 26;
const INDEX_OPTIONS_CONFLICT: i32 = 85;
const INDEX_KEY_SPECS_CONFLICT: i32 = 86;

/// Makes sure a custom id field has a unique index, without which `create`
/// could not detect collisions. With `create` false (indexes are the
/// operator's job) a missing index is a configuration error naming the fix.
pub(crate) async fn ensure_unique_index(
    collection: &Collection<Document>,
    field: &str,
    create: bool,
    bound: Duration,
) -> Result<()> {
    if let Some(existing) = find_index_on(collection, field, bound).await? {
        if existing.options.as_ref().and_then(|o| o.unique) == Some(true) {
            return Ok(());
        }
        return Err(Error::index_conflict(format!(
            "index on {{{field}: 1}} in `{}` is not unique; the session id field needs a unique \
             index so that create cannot overwrite another session",
            collection.namespace()
        )));
    }
    if !create {
        return Err(Error::config(format!(
            "the id field `{field}` has no unique index and AutoRemove::Disabled forbids creating \
             one: run db.getCollection(\"{}\").createIndex({{{field}: 1}}, {{unique: true}})",
            collection.name()
        )));
    }
    create_index(
        collection,
        ascending(field, IndexOptions::builder().unique(true).build()),
        bound,
    )
    .await
}

/// The index behind listing and revoking a user's sessions: only documents
/// with an owner are in it.
pub(crate) async fn ensure_user_index(
    collection: &Collection<Document>,
    bound: Duration,
) -> Result<()> {
    let field = crate::schema::USER_FIELD;
    if find_index_on(collection, field, bound).await?.is_some() {
        return Ok(());
    }
    let options = IndexOptions::builder()
        .partial_filter_expression(doc! { field: { "$exists": true } })
        .build();
    create_index(collection, ascending(field, options), bound).await
}

fn ascending(field: &str, options: IndexOptions) -> IndexModel {
    IndexModel::builder()
        .keys(doc! { field: 1 })
        .options(options)
        .build()
}

async fn create_index(
    collection: &Collection<Document>,
    model: IndexModel,
    bound: Duration,
) -> Result<()> {
    collection
        .create_index(model)
        .await
        .map(drop)
        .map_err(|e| Error::from_driver("createIndex", bound, e))
}

async fn find_index_on(
    collection: &Collection<Document>,
    field: &str,
    bound: Duration,
) -> Result<Option<IndexModel>> {
    Ok(find_indexes_on(collection, field, bound)
        .await?
        .into_iter()
        .next())
}

/// Every index on `{field: 1}` (there can be several, with different partial
/// filters); none if the collection does not exist yet.
async fn find_indexes_on(
    collection: &Collection<Document>,
    field: &str,
    bound: Duration,
) -> Result<Vec<IndexModel>> {
    let cursor = match collection.list_indexes().await {
        Ok(cursor) => cursor,
        Err(e) if command_code(&e) == Some(NAMESPACE_NOT_FOUND) => return Ok(Vec::new()),
        Err(e) => return Err(Error::from_driver("listIndexes", bound, e)),
    };
    let indexes: Vec<IndexModel> = cursor
        .try_collect()
        .await
        .map_err(|e| Error::from_driver("listIndexes", bound, e))?;
    Ok(indexes
        .into_iter()
        .filter(|index| is_ascending_on(&index.keys, field))
        .collect())
}

fn is_ascending_on(keys: &Document, field: &str) -> bool {
    keys.len() == 1
        && match keys.get(field) {
            Some(Bson::Int32(1)) | Some(Bson::Int64(1)) => true,
            Some(Bson::Double(d)) => *d == 1.0,
            _ => false,
        }
}

fn is_conflict(error: &mongodb::error::Error) -> bool {
    matches!(
        command_code(error),
        Some(INDEX_OPTIONS_CONFLICT | INDEX_KEY_SPECS_CONFLICT)
    )
}

fn name_of(index: &IndexModel, field: &str) -> String {
    index
        .options
        .as_ref()
        .and_then(|o| o.name.clone())
        .unwrap_or_else(|| format!("{field}_1"))
}

/// `{expires: 1}, {expireAfterSeconds: 0}` and the like.
fn describe(index: &IndexModel) -> String {
    let mut options = Document::new();
    if let Some(o) = &index.options {
        if let Some(delay) = o.expire_after {
            options.insert(
                "expireAfterSeconds",
                i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
            );
        }
        if o.unique == Some(true) {
            options.insert("unique", true);
        }
        if let Some(filter) = &o.partial_filter_expression {
            options.insert("partialFilterExpression", filter.clone());
        }
    }
    if options.is_empty() {
        index.keys.to_string()
    } else {
        format!("{}, {options}", index.keys)
    }
}

/// Documents equal field by field, in order, numbers by value: the server
/// may hand back `1` as an Int32 where the configuration has an Int64.
fn same_document(a: &Document, b: &Document) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, va), (kb, vb))| ka == kb && same_value(va, vb))
}

fn same_value(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Document(a), Bson::Document(b)) => same_document(a, b),
        (Bson::Array(a), Bson::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_value(a, b))
        }
        _ => match (number(a), number(b)) {
            (Some(a), Some(b)) => a == b,
            _ => a == b,
        },
    }
}

fn number(value: &Bson) -> Option<f64> {
    match value {
        Bson::Int32(n) => Some(f64::from(*n)),
        // Filters hold small integers; precision past 2^53 does not matter.
        #[allow(clippy::cast_precision_loss)]
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(d) => Some(*d),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_single_ascending_key_counts() {
        assert!(is_ascending_on(&doc! {"expires": 1}, "expires"));
        assert!(is_ascending_on(&doc! {"expires": 1.0}, "expires"));
        assert!(!is_ascending_on(&doc! {"expires": -1}, "expires"));
        assert!(!is_ascending_on(&doc! {"expires": 1, "x": 1}, "expires"));
        assert!(!is_ascending_on(&doc! {"other": 1}, "expires"));
    }
}
