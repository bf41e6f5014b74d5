//! A TTL index a collection needs — `{field: 1}` with an
//! `expireAfterSeconds` and maybe a partial filter — compared with what the
//! collection has and brought in line ("reconciled").
//!
//! Nothing here is specific to the sessions collection: any collection's
//! TTL index is described by a [`TtlIndex`] and reconciled the same way.

use std::time::Duration;

use mongodb::{bson::Document, options::IndexOptions, Collection, IndexModel};

use super::{
    ascending, describe, find_indexes_on, is_conflict, name_of,
    repair::{coll_mod, drop_index, report, Changed, CollMod},
    same_document, IndexAction, IndexRepair,
};
use crate::error::{Error, Result};

/// How many times reconciling looks again after another process changed the
/// index between its look and its change.
const PASSES: usize = 3;

/// A TTL index: documents go `expire_after` past the date in `field`, and
/// only those matching `partial_filter` when there is one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TtlIndex {
    pub(crate) field: String,
    pub(crate) expire_after: Duration,
    pub(crate) partial_filter: Option<Document>,
}

impl TtlIndex {
    /// `expire_after` in whole seconds, as the server keeps it (so that a
    /// fraction never reads back as a difference).
    pub(crate) fn new(field: impl Into<String>, expire_after: Duration) -> Self {
        Self {
            field: field.into(),
            expire_after: Duration::from_secs(expire_after.as_secs()),
            partial_filter: None,
        }
    }

    /// The index to create.
    pub(crate) fn model(&self) -> IndexModel {
        let options = IndexOptions::builder()
            .expire_after(self.expire_after)
            .partial_filter_expression(self.partial_filter.clone())
            .build();
        ascending(&self.field, options)
    }

    /// What reconciling does with `found`, the collection's indexes on the
    /// field, and to which of them: an index that agrees is kept; otherwise
    /// the one cheapest to fix is changed.
    pub(crate) fn compare<'a>(
        &self,
        found: &'a [IndexModel],
    ) -> (IndexAction, Option<&'a IndexModel>) {
        found
            .iter()
            .map(|index| (self.judge(index), Some(index)))
            .min_by_key(|(action, _)| cost(*action))
            .unwrap_or((IndexAction::Create, None))
    }

    /// One existing index on the field against this one. `collMod` can
    /// change `expireAfterSeconds` (and make a plain index a TTL index, on
    /// MongoDB 5.1+) but not a partial filter; and a unique index on an
    /// expiry date would refuse two documents expiring in the same
    /// millisecond.
    fn judge(&self, index: &IndexModel) -> IndexAction {
        let options = index.options.clone().unwrap_or_default();
        let same_filter = match (&self.partial_filter, &options.partial_filter_expression) {
            (None, None) => true,
            (Some(wanted), Some(found)) => same_document(wanted, found),
            _ => false,
        };
        if !same_filter || options.unique == Some(true) {
            IndexAction::Replace
        } else if options.expire_after == Some(self.expire_after) {
            IndexAction::Keep
        } else {
            IndexAction::ChangeInPlace
        }
    }

    /// Brings the collection's index in line as far as `repair` allows,
    /// reads every change back, reports it (a `tracing` event), and returns
    /// what it did.
    ///
    /// Another process may change the index at the same time (another
    /// instance starting): a change that lost such a race is looked at
    /// again, a few times at most.
    pub(crate) async fn reconcile(
        &self,
        collection: &Collection<Document>,
        repair: IndexRepair,
        bound: Duration,
    ) -> Result<IndexAction> {
        let mut done = IndexAction::Keep;
        for _ in 0..PASSES {
            let found = find_indexes_on(collection, &self.field, bound).await?;
            let (action, existing) = self.compare(&found);
            if action == IndexAction::Keep {
                return Ok(done);
            }
            if let Some(changed) = self
                .step(collection, action, existing, repair, bound)
                .await?
            {
                report(collection, &describe(&self.model()), &changed);
                done = changed.action;
            }
        }
        let found = find_indexes_on(collection, &self.field, bound).await?;
        match self.compare(&found).0 {
            IndexAction::Keep => Ok(done),
            _ => Err(Error::index_conflict(format!(
                "the index on {{{}: 1}} in `{}` kept changing while this store set it up: \
                 another process is changing it (an instance with another configuration?)",
                self.field,
                collection.namespace()
            ))),
        }
    }

    /// One change; `None` when it lost a race, and the index is to be
    /// looked at again.
    async fn step(
        &self,
        collection: &Collection<Document>,
        action: IndexAction,
        existing: Option<&IndexModel>,
        repair: IndexRepair,
        bound: Duration,
    ) -> Result<Option<Changed>> {
        use IndexRepair::{InPlace, Recreate};
        match (action, existing, repair) {
            (IndexAction::Create, _, _) => match collection.create_index(self.model()).await {
                Ok(_) => Ok(Some(Changed {
                    action,
                    name: format!("{}_1", self.field),
                    before: None,
                    reason: None,
                })),
                // Another process created one on the field meanwhile.
                Err(e) if is_conflict(&e) => Ok(None),
                Err(e) => Err(Error::from_driver("createIndex", bound, e)),
            },
            (IndexAction::ChangeInPlace, Some(index), InPlace | Recreate) => {
                self.change_in_place(collection, index, repair, bound).await
            }
            (IndexAction::Replace, Some(index), Recreate) => {
                self.recreate(collection, index, None, bound).await
            }
            (_, existing, _) => Err(self.conflict(collection, existing, action, None)),
        }
    }

    /// `collMod`, read back (a server may answer ok and change nothing);
    /// when the server will not, a recreate if `repair` allows it.
    async fn change_in_place(
        &self,
        collection: &Collection<Document>,
        index: &IndexModel,
        repair: IndexRepair,
        bound: Duration,
    ) -> Result<Option<Changed>> {
        let name = name_of(index, &self.field);
        let refusal = match coll_mod(collection, &name, self.expire_after, bound).await? {
            CollMod::Gone => return Ok(None),
            CollMod::Refused(refusal) => refusal,
            CollMod::Done => {
                let found = find_indexes_on(collection, &self.field, bound).await?;
                let now = found.iter().find(|i| name_of(i, &self.field) == name);
                let delay = |i: &IndexModel| i.options.as_ref().and_then(|o| o.expire_after);
                match now {
                    Some(now) if self.judge(now) == IndexAction::Keep => {
                        return Ok(Some(Changed {
                            action: IndexAction::ChangeInPlace,
                            name,
                            before: Some(describe(index)),
                            reason: None,
                        }))
                    }
                    Some(now) if delay(now) == delay(index) => {
                        "it answered ok but left expireAfterSeconds as it was".to_string()
                    }
                    // Dropped or changed by someone else meanwhile.
                    _ => return Ok(None),
                }
            }
        };
        if repair == IndexRepair::Recreate {
            return self.recreate(collection, index, Some(refusal), bound).await;
        }
        Err(self.conflict(
            collection,
            Some(index),
            IndexAction::ChangeInPlace,
            Some(&refusal),
        ))
    }

    /// Drops `index` and creates this one. Until the new one is built,
    /// expired documents wait; nothing else depends on the index.
    async fn recreate(
        &self,
        collection: &Collection<Document>,
        index: &IndexModel,
        reason: Option<String>,
        bound: Duration,
    ) -> Result<Option<Changed>> {
        let name = name_of(index, &self.field);
        drop_index(collection, &name, bound).await?;
        match collection.create_index(self.model()).await {
            Ok(_) => Ok(Some(Changed {
                action: IndexAction::Replace,
                name,
                before: Some(describe(index)),
                reason,
            })),
            Err(e) if is_conflict(&e) => Ok(None),
            Err(e) => Err(Error::from_driver("createIndex", bound, e)),
        }
    }

    /// The error for a difference the caller did not allow fixing (or that
    /// the server refused to fix in place: `refusal`), naming the fixes.
    fn conflict(
        &self,
        collection: &Collection<Document>,
        existing: Option<&IndexModel>,
        action: IndexAction,
        refusal: Option<&str>,
    ) -> Error {
        let field = &self.field;
        let name = existing.map_or_else(|| format!("{field}_1"), |i| name_of(i, field));
        let found = existing.map_or_else(String::new, found_options);
        let coll = collection.name();
        let why = match (refusal, action) {
            (Some(refusal), _) => format!(
                "the server refused to change it in place ({refusal}), and dropping and \
                 recreating it was not allowed (IndexRepair::Recreate, or `mongodb-sessions \
                 ensure-indexes --recreate`)"
            ),
            (None, IndexAction::ChangeInPlace) => format!(
                "changing it in place was not allowed (IndexRepair::Refuse). Let the store \
                 change it (IndexRepair::InPlace, or `mongodb-sessions ensure-indexes`), or \
                 change it yourself: db.runCommand({{collMod: \"{coll}\", index: {{name: \
                 \"{name}\", expireAfterSeconds: {secs}}}}})",
                secs = self.expire_after.as_secs()
            ),
            (None, _) => "that cannot be changed in place, and dropping and recreating it was \
                 not allowed (IndexRepair::Recreate, or `mongodb-sessions ensure-indexes \
                 --recreate`)"
                .to_string(),
        };
        Error::index_conflict(format!(
            "collection `{ns}` already has index `{name}` on {{{field}: 1}} with {found}, but \
             this store needs {wanted}; {why}. Or drop it \
             (db.getCollection(\"{coll}\").dropIndex(\"{name}\")) and let the store recreate \
             it, configure the store to match it (expire_after), or set AutoRemove::Disabled \
             to manage indexes yourself",
            ns = collection.namespace(),
            wanted = wanted_options(self),
        ))
    }
}

/// The existing index's options that matter here, as the error shows them.
fn found_options(index: &IndexModel) -> String {
    let options = index.options.clone().unwrap_or_default();
    let mut parts = vec![options.expire_after.map_or_else(
        || "no expireAfterSeconds (not a TTL index)".to_string(),
        |d| format!("expireAfterSeconds: {}", d.as_secs()),
    )];
    if let Some(filter) = &options.partial_filter_expression {
        parts.push(format!("partialFilterExpression: {filter}"));
    }
    if options.unique == Some(true) {
        parts.push("unique: true".into());
    }
    parts.join(", ")
}

fn wanted_options(ttl: &TtlIndex) -> String {
    let mut wanted = format!("expireAfterSeconds: {}", ttl.expire_after.as_secs());
    match &ttl.partial_filter {
        Some(filter) => wanted.push_str(&format!(", partialFilterExpression: {filter}")),
        None => wanted.push_str(" and no partial filter"),
    }
    wanted
}

/// Which existing index to act on when there are several: the cheapest fix.
fn cost(action: IndexAction) -> u8 {
    match action {
        IndexAction::Keep => 0,
        IndexAction::ChangeInPlace => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::doc;

    use super::*;

    fn existing(seconds: Option<u64>, filter: Option<Document>, unique: bool) -> IndexModel {
        let options = IndexOptions::builder()
            .expire_after(seconds.map(Duration::from_secs))
            .partial_filter_expression(filter)
            .unique(unique.then_some(true))
            .name("expires_1".to_string())
            .build();
        ascending("expires", options)
    }

    #[test]
    fn another_delay_is_changed_in_place_another_filter_needs_a_recreate() {
        let wanted = TtlIndex::new("expires", Duration::ZERO);
        let judge = |index| wanted.compare(&[index]).0;
        assert_eq!(judge(existing(Some(0), None, false)), IndexAction::Keep);
        assert_eq!(
            judge(existing(Some(60), None, false)),
            IndexAction::ChangeInPlace
        );
        assert_eq!(
            judge(existing(None, None, false)),
            IndexAction::ChangeInPlace,
            "collMod makes a plain index a TTL index (5.1+)"
        );
        let filter = doc! {"kind": "web"};
        assert_eq!(
            judge(existing(Some(0), Some(filter.clone()), false)),
            IndexAction::Replace
        );
        assert_eq!(judge(existing(Some(0), None, true)), IndexAction::Replace);
        assert_eq!(wanted.compare(&[]).0, IndexAction::Create);

        let partial = TtlIndex {
            partial_filter: Some(doc! {"n": {"$gt": 1_i64}}),
            ..wanted.clone()
        };
        let same = existing(Some(0), Some(doc! {"n": {"$gt": 1_i32}}), false);
        assert_eq!(partial.compare(&[same]).0, IndexAction::Keep, "1 is 1");
        assert_eq!(
            partial.compare(&[existing(Some(0), None, false)]).0,
            IndexAction::Replace
        );
        assert_eq!(
            partial
                .compare(&[existing(Some(9), Some(doc! {"n": {"$gt": 2}}), false)])
                .0,
            IndexAction::Replace
        );
    }

    #[test]
    fn an_agreeing_index_wins_over_a_disagreeing_one_on_the_same_field() {
        let wanted = TtlIndex::new("expires", Duration::ZERO);
        let found = [
            existing(Some(0), Some(doc! {"kind": "web"}), false),
            existing(Some(5), None, false),
            existing(Some(0), None, false),
        ];
        let (action, index) = wanted.compare(&found);
        assert_eq!(action, IndexAction::Keep);
        assert!(std::ptr::eq(index.unwrap(), &found[2]));
        let (action, index) = wanted.compare(&found[..2]);
        assert_eq!(action, IndexAction::ChangeInPlace);
        assert!(std::ptr::eq(index.unwrap(), &found[1]));
    }
}
