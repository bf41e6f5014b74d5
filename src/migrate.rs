//! Moving sessions from a Node store's layout to the native one without
//! logging anyone out.
//!
//! Each session is copied under its new (hashed) id with its values, expiry
//! and owner; express-session's `cookie` object is dropped (the native
//! layout keeps the expiry in `expires`). Users keep their cookies: a
//! service that verifies express-session's signature (as
//! `examples/express-compat` does) and uses a native store finds them.
//!
//! - **Into another collection** (the source stays): safe while the apps
//!   keep serving from the source. A rerun copies again only the sessions
//!   that changed since; run it once more at cut-over, and when nothing
//!   changed it writes nothing.
//! - **In place** (same collection): each source document is deleted only
//!   if it is still exactly as copied; one that changed meanwhile is left
//!   for the next run. Documents already native are skipped.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};

use crate::{
    error::{Error, Result},
    id::RedactedId,
    schema::Layout,
    MongoSessionStore,
};

/// What [`MongoSessionStore::migrate_from`] did, or with `dry_run`, would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationReport {
    /// Source documents looked at.
    pub examined: u64,
    /// Sessions written to the native layout (or that would be).
    pub converted: u64,
    /// Sessions whose native copy was already up to date.
    pub unchanged: u64,
    /// In place: sessions changed while being moved, left for the next run.
    pub deferred: u64,
    /// Native copies removed because their source session is gone.
    pub removed: u64,
    /// Sessions the native side changed or ended since they were copied.
    pub kept_native: u64,
    /// Documents that cannot be converted, with why (ids redacted).
    pub failures: Vec<String>,
}

/// How to migrate.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct MigrateOptions {
    /// Report only; write nothing.
    pub dry_run: bool,
}

impl MigrateOptions {
    /// Only report what would change.
    pub fn dry_run(mut self, on: bool) -> Self {
        self.dry_run = on;
        self
    }
}

impl MongoSessionStore {
    /// Migrates every live session of `source` (a store built with
    /// [`express_layout`](crate::StoreBuilder::express_layout)) into this
    /// store's native layout; `progress` is called after each document with
    /// the report so far. See the [module docs](crate::migrate).
    ///
    /// # Errors
    ///
    /// [`Error::is_config`] if this store is not native or `source` is not
    /// an Express layout; server errors and timeouts. Documents that cannot
    /// be converted are reported, not errors.
    pub async fn migrate_from(
        &self,
        source: &MongoSessionStore,
        options: MigrateOptions,
        mut progress: impl FnMut(&MigrationReport),
    ) -> Result<MigrationReport> {
        let (from, to) = (source.layout(), self.layout());
        if !from.express_cookie || to.express_cookie {
            return Err(Error::config(
                "migrate from a store in an Express layout into a native one",
            ));
        }
        let in_place = source.collection().namespace() == self.collection().namespace();
        let filter = doc! { &from.fields.data: { "$exists": true } };
        let mut cursor = source
            .collection()
            .find(filter)
            .await
            .map_err(|e| Error::database("find", e))?;
        let mut report = MigrationReport::default();
        while let Some(document) = cursor
            .try_next()
            .await
            .map_err(|e| Error::database("find", e))?
        {
            report.examined += 1;
            match self.migrate_one(source, &document, in_place, options).await {
                Ok(step) => step.count(&mut report),
                Err(e) if e.is_decode() => report.failures.push(describe(from, &document, &e)),
                Err(e) => return Err(e),
            }
            progress(&report);
        }
        Ok(report)
    }

    async fn migrate_one(
        &self,
        source: &MongoSessionStore,
        document: &Document,
        in_place: bool,
        options: MigrateOptions,
    ) -> Result<Step> {
        let (from, to) = (source.layout(), self.layout());
        let mut decoded = from.decode(document)?;
        decoded.data.remove("cookie");
        let key = to.key(&decoded.stored_id);
        let values = to.encode_values(&key, &decoded.data)?;
        let created = decoded.created_at.unwrap_or(decoded.expires);
        let modified = decoded.last_modified.unwrap_or(created);
        let native = to.new_document(
            &key,
            values,
            decoded.expires,
            created,
            modified,
            decoded.user.as_ref(),
        );
        let existing = self
            .collection()
            .find_one(doc! { &to.fields.id: &key })
            .await
            .map_err(|e| Error::database("find", e))?;
        let up_to_date = existing
            .as_ref()
            .is_some_and(|e| same_session(to, e, &native));
        if options.dry_run {
            return Ok(if up_to_date {
                Step::Unchanged
            } else {
                Step::Converted
            });
        }
        if !up_to_date {
            self.collection()
                .replace_one(doc! { &to.fields.id: &key }, native)
                .upsert(true)
                .await
                .map_err(|e| Error::database("replace", e))?;
        }
        if in_place {
            // Only if the source is still exactly what was copied.
            let id_field = &from.fields.id;
            let mut unchanged = doc! { id_field: document.get(id_field).cloned() };
            for field in [&from.fields.data, &from.fields.expires] {
                if let Some(value) = document.get(field) {
                    unchanged.insert(field, value.clone());
                }
            }
            let deleted = source
                .collection()
                .delete_one(unchanged)
                .await
                .map_err(|e| Error::database("delete", e))?;
            if deleted.deleted_count == 0 {
                return Ok(Step::Deferred);
            }
        }
        Ok(if up_to_date {
            Step::Unchanged
        } else {
            Step::Converted
        })
    }
}

enum Step {
    Converted,
    Unchanged,
    Deferred,
}

impl Step {
    fn count(self, report: &mut MigrationReport) {
        match self {
            Self::Converted => report.converted += 1,
            Self::Unchanged => report.unchanged += 1,
            Self::Deferred => report.deferred += 1,
        }
    }
}

/// Whether the native copy already holds this session (values, expiry,
/// owner); timestamps may differ.
fn same_session(layout: &Layout, existing: &Document, native: &Document) -> bool {
    let fields = &layout.fields;
    let same = |name: &str| existing.get(name) == native.get(name);
    same(&fields.data) && same(&fields.expires) && same("user")
}

fn describe(layout: &Layout, document: &Document, error: &Error) -> String {
    let id = document
        .get(&layout.fields.id)
        .map(|id| RedactedId::new(&id.to_string()).to_string())
        .unwrap_or_else(|| "(no id)".into());
    format!("{id}: {error}")
}
