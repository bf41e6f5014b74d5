//! Which indexes a configuration relies on, what the collection has, and
//! what ensuring them would do — so an operator can see it before anything
//! changes (`mongodb-sessions ensure-indexes --dry-run`).

use std::{fmt, time::Duration};

use mongodb::{
    bson::{doc, Document},
    options::IndexOptions,
    Collection, IndexModel,
};

use super::{
    ascending, create_index, describe, ensure_unique_index, ensure_user_index, find_index_on,
    find_indexes_on, name_of, IndexRepair, TtlIndex,
};
use crate::{
    error::{Error, Result},
    schema::USER_FIELD,
};

/// What a store's configuration asks of the collection's indexes.
#[derive(Debug, Clone, Default)]
pub(crate) struct IndexSpec {
    /// The TTL index through which the server removes expired sessions.
    pub(crate) ttl: Option<TtlIndex>,
    /// A custom id field, which needs a unique index.
    pub(crate) unique_id: Option<String>,
    /// The partial index on the owner field.
    pub(crate) owner: bool,
    /// The endings collection's indexes (see `index/endings.rs`), with the
    /// Cosmos DB profile's TTL index when `Some(true)`.
    pub(crate) endings: Option<bool>,
}

/// Why the store needs an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexPurpose {
    /// The TTL index through which the server removes expired sessions.
    Expiry,
    /// The unique index on a custom id field, which keeps `create` from
    /// overwriting another session.
    UniqueId,
    /// The index behind listing and revoking a user's sessions.
    Owner,
}

impl fmt::Display for IndexPurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Expiry => "expiry",
            Self::UniqueId => "unique-id",
            Self::Owner => "owner",
        })
    }
}

/// What ensuring an index does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexAction {
    /// It is there as needed: nothing.
    Keep,
    /// It is missing: it is created.
    Create,
    /// The TTL index on its field has another `expireAfterSeconds` (or none):
    /// it is changed in place with `collMod`, unless the caller refuses
    /// ([`IndexRepair::Refuse`]). Should the server refuse `collMod`, it
    /// needs a drop and recreate, as [`Replace`](Self::Replace).
    ChangeInPlace,
    /// The index on its field disagrees in a way `collMod` cannot change
    /// (another partial filter, or unique): it is dropped and created anew,
    /// but only when the caller says so ([`IndexRepair::Recreate`]), since
    /// another service may rely on it.
    Replace,
    /// It disagrees in a way the store does not repair (a non-unique index
    /// on the id field: making it unique can fail on duplicates); fix it by
    /// hand.
    Conflict,
}

impl fmt::Display for IndexAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Keep => "keep",
            Self::Create => "create",
            Self::ChangeInPlace => "change-in-place",
            Self::Replace => "replace",
            Self::Conflict => "conflict",
        })
    }
}

/// One index the store relies on, compared with what the collection has.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlannedIndex {
    /// Why the store needs it.
    pub purpose: IndexPurpose,
    /// The indexed field.
    pub field: String,
    /// The index the store needs, in the shell's notation.
    pub wanted: String,
    /// The collection's index on that field (name and options), if any.
    pub existing: Option<String>,
    /// What ensuring it does (in the plan
    /// [`ensure_indexes`](crate::MongoSessionStore::ensure_indexes)
    /// returns: what it did).
    pub action: IndexAction,
}

/// Every index a store relies on and what ensuring each does (from
/// [`MongoSessionStore::index_plan`](crate::MongoSessionStore::index_plan)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexPlan {
    /// The indexes, expiry first.
    pub indexes: Vec<PlannedIndex>,
}

impl IndexPlan {
    /// Whether every index is there as needed.
    pub fn is_satisfied(&self) -> bool {
        self.indexes.iter().all(|i| i.action == IndexAction::Keep)
    }

    /// Whether carrying it out drops an existing index.
    pub fn replaces(&self) -> bool {
        self.indexes
            .iter()
            .any(|i| i.action == IndexAction::Replace)
    }

    /// Whether carrying it out changes an existing index in place.
    pub fn changes_in_place(&self) -> bool {
        self.indexes
            .iter()
            .any(|i| i.action == IndexAction::ChangeInPlace)
    }
}

impl IndexSpec {
    /// What `build` does: create what is missing, accept what agrees,
    /// reconcile the TTL index as `repair` allows, and fail on the rest.
    pub(crate) async fn ensure(
        &self,
        collection: &Collection<Document>,
        create_unique: bool,
        repair: IndexRepair,
        bound: Duration,
    ) -> Result<()> {
        if let Some(ttl) = &self.ttl {
            ttl.reconcile(collection, repair, bound).await?;
        }
        if let Some(field) = &self.unique_id {
            ensure_unique_index(collection, field, create_unique, bound).await?;
        }
        if self.owner {
            ensure_user_index(collection, bound).await?;
        }
        Ok(())
    }

    /// Compares the wanted indexes with the collection's; reads only.
    pub(crate) async fn plan(
        &self,
        collection: &Collection<Document>,
        bound: Duration,
    ) -> Result<IndexPlan> {
        let mut plan = IndexPlan::default();
        for (purpose, model) in self.models() {
            let field = model.keys.keys().next().cloned().unwrap_or_default();
            let (action, existing) = match (&self.ttl, purpose) {
                (Some(ttl), IndexPurpose::Expiry) => {
                    let found = find_indexes_on(collection, &field, bound).await?;
                    let (action, existing) = ttl.compare(&found);
                    (action, existing.cloned())
                }
                _ => {
                    let existing = find_index_on(collection, &field, bound).await?;
                    let action = existing
                        .as_ref()
                        .map_or(IndexAction::Create, |found| compare(purpose, found));
                    (action, existing)
                }
            };
            plan.indexes.push(PlannedIndex {
                purpose,
                wanted: describe(&model),
                existing: existing
                    .as_ref()
                    .map(|i| format!("{} {}", name_of(i, &field), describe(i))),
                field,
                action,
            });
        }
        Ok(plan)
    }

    /// Carries out `plan`: creates the missing indexes, changes the TTL
    /// index in place and, with `replace`, drops and recreates what cannot
    /// be changed in place. Returns the plan as carried out (a change in
    /// place the server refused shows as the recreate it became).
    pub(crate) async fn apply(
        &self,
        collection: &Collection<Document>,
        mut plan: IndexPlan,
        replace: bool,
        bound: Duration,
    ) -> Result<IndexPlan> {
        if let Some(conflict) = plan
            .indexes
            .iter()
            .find(|i| i.action == IndexAction::Conflict)
        {
            return Err(Error::index_conflict(format!(
                "`{}` has {} where the store needs {}; fix it by hand",
                collection.namespace(),
                conflict.existing.as_deref().unwrap_or("an index"),
                conflict.wanted
            )));
        }
        if plan.replaces() && !replace {
            return Err(Error::index_conflict(format!(
                "`{}` has indexes that disagree with this configuration in a way only dropping \
                 and recreating them fixes; that was not asked for (ensure_indexes(true), \
                 `mongodb-sessions ensure-indexes --recreate`)",
                collection.namespace()
            )));
        }
        let repair = if replace {
            IndexRepair::Recreate
        } else {
            IndexRepair::InPlace
        };
        let models = self.models();
        for (planned, (purpose, model)) in plan.indexes.iter_mut().zip(models) {
            match (purpose, &self.ttl) {
                (IndexPurpose::Expiry, Some(ttl)) => {
                    planned.action = ttl.reconcile(collection, repair, bound).await?;
                }
                _ if planned.action == IndexAction::Create => {
                    create_index(collection, model, bound).await?;
                }
                _ => {}
            }
        }
        Ok(plan)
    }

    fn models(&self) -> Vec<(IndexPurpose, IndexModel)> {
        let mut models = Vec::new();
        if let Some(ttl) = &self.ttl {
            models.push((IndexPurpose::Expiry, ttl.model()));
        }
        if let Some(field) = &self.unique_id {
            let options = IndexOptions::builder().unique(true).build();
            models.push((IndexPurpose::UniqueId, ascending(field, options)));
        }
        if self.owner {
            let options = IndexOptions::builder()
                .partial_filter_expression(doc! { USER_FIELD: { "$exists": true } })
                .build();
            models.push((IndexPurpose::Owner, ascending(USER_FIELD, options)));
        }
        models
    }
}

/// How an existing index on the right field measures up, for the indexes
/// other than the TTL one (which [`TtlIndex::compare`] judges): the id
/// index must be unique, any owner index will do.
fn compare(purpose: IndexPurpose, found: &IndexModel) -> IndexAction {
    let unique = found.options.as_ref().and_then(|o| o.unique);
    match purpose {
        IndexPurpose::UniqueId if unique != Some(true) => IndexAction::Conflict,
        _ => IndexAction::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_id_index_is_a_conflict_any_owner_index_will_do() {
        let plain = ascending("sid", IndexOptions::default());
        let unique = ascending("sid", IndexOptions::builder().unique(true).build());
        assert_eq!(
            compare(IndexPurpose::UniqueId, &plain),
            IndexAction::Conflict
        );
        assert_eq!(compare(IndexPurpose::UniqueId, &unique), IndexAction::Keep);
        assert_eq!(compare(IndexPurpose::Owner, &plain), IndexAction::Keep);
        let ttl = TtlIndex::new("expires", Duration::from_secs(60));
        assert_eq!(
            describe(&ttl.model()),
            "{ \"expires\": 1 }, { \"expireAfterSeconds\": 60 }"
        );
    }
}
