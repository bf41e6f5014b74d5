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
    ascending, create_index, ensure_ttl_index, ensure_unique_index, ensure_user_index,
    find_index_on,
};
use crate::{
    error::{Error, Result},
    schema::USER_FIELD,
};

/// What a store's configuration asks of the collection's indexes.
#[derive(Debug, Clone, Default)]
pub(crate) struct IndexSpec {
    /// A TTL index on this field with this `expireAfterSeconds`.
    pub(crate) ttl: Option<(String, Duration)>,
    /// A custom id field, which needs a unique index.
    pub(crate) unique_id: Option<String>,
    /// The partial index on the owner field.
    pub(crate) owner: bool,
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
    /// The index on its field disagrees (another `expireAfterSeconds`, or
    /// not a TTL index): it is dropped and created anew, but only when the
    /// caller says so, since another service may rely on it.
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
    /// What ensuring it does.
    pub action: IndexAction,
    /// The existing index's name, for dropping it.
    existing_name: Option<String>,
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
}

impl IndexSpec {
    /// What `build` does: create what is missing, accept what agrees, and
    /// fail on what disagrees.
    pub(crate) async fn ensure(
        &self,
        collection: &Collection<Document>,
        create_unique: bool,
        bound: Duration,
    ) -> Result<()> {
        if let Some((field, delay)) = &self.ttl {
            ensure_ttl_index(collection, field, *delay, bound).await?;
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
            let existing = find_index_on(collection, &field, bound).await?;
            let action = match &existing {
                None => IndexAction::Create,
                Some(found) => compare(purpose, &model, found),
            };
            let existing_name = existing.as_ref().map(|i| name_of(i, &field));
            plan.indexes.push(PlannedIndex {
                purpose,
                wanted: describe(&model),
                existing: existing
                    .as_ref()
                    .map(|i| format!("{} {}", name_of(i, &field), describe(i))),
                existing_name,
                field,
                action,
            });
        }
        Ok(plan)
    }

    /// Carries out `plan`: creates the missing indexes and, with `replace`,
    /// drops and recreates the disagreeing ones.
    pub(crate) async fn apply(
        &self,
        collection: &Collection<Document>,
        plan: &IndexPlan,
        replace: bool,
        bound: Duration,
    ) -> Result<()> {
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
                "`{}` has indexes that disagree with this configuration; replacing them was \
                 not asked for",
                collection.namespace()
            )));
        }
        let models = self.models();
        for (planned, (_, model)) in plan.indexes.iter().zip(models) {
            match planned.action {
                IndexAction::Keep | IndexAction::Conflict => {}
                IndexAction::Create => create_index(collection, model, bound).await?,
                IndexAction::Replace => {
                    let name = planned.existing_name.as_deref().unwrap_or_default();
                    collection
                        .drop_index(name)
                        .await
                        .map_err(|e| Error::from_driver("dropIndex", bound, e))?;
                    create_index(collection, model, bound).await?;
                }
            }
        }
        Ok(())
    }

    fn models(&self) -> Vec<(IndexPurpose, IndexModel)> {
        let mut models = Vec::new();
        if let Some((field, delay)) = &self.ttl {
            let options = IndexOptions::builder().expire_after(*delay).build();
            models.push((IndexPurpose::Expiry, ascending(field, options)));
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

/// How an existing index on the right field measures up (the rules `build`
/// applies: the TTL delay must match, the id index must be unique, any
/// owner index will do).
fn compare(purpose: IndexPurpose, wanted: &IndexModel, found: &IndexModel) -> IndexAction {
    let options = |model: &IndexModel| model.options.clone().unwrap_or_default();
    let (wanted, found) = (options(wanted), options(found));
    match purpose {
        IndexPurpose::Expiry if found.expire_after != wanted.expire_after => IndexAction::Replace,
        IndexPurpose::UniqueId if found.unique != Some(true) => IndexAction::Conflict,
        _ => IndexAction::Keep,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ttl(seconds: u64) -> IndexModel {
        let options = IndexOptions::builder()
            .expire_after(Duration::from_secs(seconds))
            .build();
        ascending("expires", options)
    }

    #[test]
    fn a_ttl_index_with_another_delay_is_replaced_a_plain_id_index_is_a_conflict() {
        assert_eq!(
            compare(IndexPurpose::Expiry, &ttl(0), &ttl(0)),
            IndexAction::Keep
        );
        assert_eq!(
            compare(IndexPurpose::Expiry, &ttl(0), &ttl(60)),
            IndexAction::Replace
        );
        let plain = ascending("sid", IndexOptions::default());
        let unique = ascending("sid", IndexOptions::builder().unique(true).build());
        assert_eq!(
            compare(IndexPurpose::UniqueId, &unique, &plain),
            IndexAction::Conflict
        );
        assert_eq!(
            compare(IndexPurpose::Owner, &plain, &plain),
            IndexAction::Keep
        );
        assert_eq!(
            describe(&ttl(60)),
            "{ \"expires\": 1 }, { \"expireAfterSeconds\": 60 }"
        );
    }
}
