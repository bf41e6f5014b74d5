//! The TTL index that lets the server delete expired sessions.
//!
//! Ensuring it is idempotent: an index with the same key and the same
//! `expireAfterSeconds` is accepted whatever its name (another app or an
//! operator may have made it), a missing one is created, and one that
//! disagrees is an error that says how to fix it — never silently replaced,
//! since another service may depend on it (connect-mongodb-session #119).

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

pub(crate) use endings::ensure_endings_indexes;

pub(crate) use plan::IndexSpec;
pub use plan::{IndexAction, IndexPlan, IndexPurpose, PlannedIndex};

const NAMESPACE_NOT_FOUND: i32 = 26;
const INDEX_OPTIONS_CONFLICT: i32 = 85;
const INDEX_KEY_SPECS_CONFLICT: i32 = 86;

/// Makes sure `{field: 1}` is a TTL index with `expire_after`.
pub(crate) async fn ensure_ttl_index(
    collection: &Collection<Document>,
    field: &str,
    expire_after: Duration,
    bound: Duration,
) -> Result<()> {
    if let Some(existing) = find_index_on(collection, field, bound).await? {
        return check_existing(collection, field, expire_after, &existing);
    }
    let options = IndexOptions::builder().expire_after(expire_after).build();
    match collection.create_index(ascending(field, options)).await {
        Ok(_) => Ok(()),
        Err(e) if is_conflict(&e) => {
            // Someone created a different one between our look and our create.
            match find_index_on(collection, field, bound).await? {
                Some(existing) => check_existing(collection, field, expire_after, &existing),
                None => Err(Error::from_driver("createIndex", bound, e)),
            }
        }
        Err(e) => Err(Error::from_driver("createIndex", bound, e)),
    }
}

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
    let cursor = match collection.list_indexes().await {
        Ok(cursor) => cursor,
        Err(e) if command_code(&e) == Some(NAMESPACE_NOT_FOUND) => return Ok(None),
        Err(e) => return Err(Error::from_driver("listIndexes", bound, e)),
    };
    let indexes: Vec<IndexModel> = cursor
        .try_collect()
        .await
        .map_err(|e| Error::from_driver("listIndexes", bound, e))?;
    Ok(indexes
        .into_iter()
        .find(|index| is_ascending_on(&index.keys, field)))
}

fn is_ascending_on(keys: &Document, field: &str) -> bool {
    keys.len() == 1
        && match keys.get(field) {
            Some(Bson::Int32(1)) | Some(Bson::Int64(1)) => true,
            Some(Bson::Double(d)) => *d == 1.0,
            _ => false,
        }
}

fn check_existing(
    collection: &Collection<Document>,
    field: &str,
    wanted: Duration,
    existing: &IndexModel,
) -> Result<()> {
    let options = existing.options.as_ref();
    let found = options.and_then(|o| o.expire_after);
    if found == Some(wanted) {
        return Ok(());
    }
    let name = options
        .and_then(|o| o.name.clone())
        .unwrap_or_else(|| format!("{field}_1"));
    let found = found.map_or("no expireAfterSeconds (not a TTL index)".to_string(), |d| {
        format!("expireAfterSeconds: {}", d.as_secs())
    });
    Err(Error::index_conflict(format!(
        "collection `{ns}` already has index `{name}` on {{{field}: 1}} with {found}, but this \
         store needs expireAfterSeconds: {wanted}. Either drop it \
         (db.getCollection(\"{coll}\").dropIndex(\"{name}\")) and let the store recreate it, \
         configure the store to match it (expire_after_seconds), or set \
         AutoRemove::Disabled to manage indexes yourself",
        ns = collection.namespace(),
        coll = collection.name(),
        wanted = wanted.as_secs(),
    )))
}

fn is_conflict(error: &mongodb::error::Error) -> bool {
    matches!(
        command_code(error),
        Some(INDEX_OPTIONS_CONFLICT | INDEX_KEY_SPECS_CONFLICT)
    )
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
