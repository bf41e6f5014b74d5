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
//!   that changed at the source since; run it once more at cut-over, and
//!   when nothing changed it writes no session (it marks the ledger's
//!   entries as seen, one update a batch). A ledger beside the target
//!   (`<target>.migration`, see below) records each copy, so that a rerun
//!   also carries over what happened in between:
//!   - a session gone from the source (an Express logout, or its expiry)
//!     has its native copy removed, but only while that copy is exactly as
//!     the migration wrote it; a copy the native service has changed since
//!     (a save, a touch) is the native side's and stays, and sessions the
//!     native service created itself are never looked at;
//!   - a copy the native side deleted (a native logout) or changed is left
//!     as it is while its source is unchanged since it was copied, so a
//!     rerun never brings back a native logout. A source that *did* change
//!     since is copied again over whatever the native side has: until
//!     cut-over the source is authoritative.
//!
//!   Drop the ledger once the Express app is retired and the last run is
//!   done; a run after that treats every copy as new. A run keeps nothing
//!   per session in memory: it marks the ledger entries of the sources it
//!   saw with its run id and, once the whole source is read, takes the
//!   unmarked ones for gone. (A dry run writes no marks: it keeps 8 bytes
//!   per source session instead.)
//! - **In place** (same collection): each source document is deleted only
//!   if it is still exactly as copied. One that changed or vanished (a
//!   logout) meanwhile has its copy undone at once (the native document is
//!   deleted, or restored to what it was, unless something else changed it
//!   in between) and is counted as deferred: a changed one moves on the next
//!   run, a vanished one stays gone. Documents already native are skipped.
//!   No ledger is used.
//!
//! A source without a creation time (connect-mongodb-session writes none)
//! gets the earliest time the session is known to have existed: the
//! migration time, its `lastModified`, and its expiry minus the cookie's
//! `originalMaxAge` (when the cookie has one, the expiry was last set that
//! long before it, so the session existed then), whichever is earliest; a
//! copy made by an earlier run keeps its older creation time. So a
//! [`absolute_timeout`](crate::StoreBuilder::absolute_timeout) on the native store
//! never lets a migrated session outlive it counted from that time, and the
//! stored expiry is capped to it as for any session. (A session can be older
//! than anything the source records; then it gets that much extra.)
//!
//! A copy never moves a session's `version` backwards: a re-copy over a
//! native document continues from its version (one atomic update), so a
//! request that loaded the earlier copy finds a version it did not expect
//! (`ConflictPolicy::Fail` and the write-through cache see the change).
//!
//! The work goes in batches of [`batch_size`](MigrateOptions::batch_size)
//! source documents: each is read in one round trip, the target's
//! documents and the ledger's entries for the whole batch are read in one
//! `$in` query each, new copies (and ledger entries) are written in one
//! unordered insert each, and only what needs an answer per document goes
//! one at a time, [`concurrency`](MigrateOptions::concurrency) at once
//! (re-copies over a native document, in place the source deletes). Every
//! database operation runs under the target's (or, for the source's, the
//! source's) [`operation_timeout`](crate::StoreBuilder::operation_timeout).
//! A run that fails part way returns [`Incomplete`] with what the completed
//! batches did; running it again carries on.

mod batch;
mod ledger;
mod writes;

use mongodb::bson::{doc, Bson, DateTime, Document};
use serde_json::Value;

use self::ledger::{DrySeen, Ledger};
pub use crate::batch::Incomplete;
use crate::{
    error::{Error, Result},
    id::RedactedId,
    schema::{Decoded, Layout},
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
    /// In place: sessions changed or deleted while being moved; their copy
    /// was undone, and a changed one is left for the next run.
    pub deferred: u64,
    /// Into another collection: native copies removed (or that would be)
    /// because their source session is gone since they were copied.
    pub removed: u64,
    /// Into another collection: sessions the native side changed or deleted
    /// since they were copied, from a source unchanged since; left as the
    /// native side has them.
    pub kept_native: u64,
    /// Documents that cannot be converted, with why (ids redacted).
    pub failures: Vec<String>,
}

impl MigrationReport {
    fn add(&mut self, batch: Self) {
        self.examined += batch.examined;
        self.converted += batch.converted;
        self.unchanged += batch.unchanged;
        self.deferred += batch.deferred;
        self.removed += batch.removed;
        self.kept_native += batch.kept_native;
        self.failures.extend(batch.failures);
    }
}

/// How to migrate.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct MigrateOptions {
    /// Report only; write nothing.
    pub dry_run: bool,
    /// Source documents per batch (default 1,000; at least 1): what one
    /// round trip reads or writes.
    pub batch_size: usize,
    /// Per-document writes in flight at once (default 32; at least 1):
    /// re-copies over a native document, in place the source deletes.
    pub concurrency: usize,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            batch_size: 1_000,
            concurrency: 32,
        }
    }
}

impl MigrateOptions {
    /// Only report what would change.
    pub fn dry_run(mut self, on: bool) -> Self {
        self.dry_run = on;
        self
    }

    /// At most `documents` source documents per batch (0 counts as 1).
    pub fn batch_size(mut self, documents: usize) -> Self {
        self.batch_size = documents.max(1);
        self
    }

    /// At most `writes` per-document writes at once (0 counts as 1).
    pub fn concurrency(mut self, writes: usize) -> Self {
        self.concurrency = writes.max(1);
        self
    }
}

impl MongoSessionStore {
    /// Migrates every live session of `source` (a store built with
    /// [`express_layout`](crate::StoreBuilder::express_layout)) into this
    /// store's native layout, a [batch](MigrateOptions::batch_size) at a
    /// time; `progress` is called after each batch with the report so far.
    /// Into another collection, copies whose source is gone are then
    /// removed. See the [module docs](crate::express::migrate).
    ///
    /// # Errors
    ///
    /// [`Incomplete`] with what the completed batches did, and the error:
    /// [`Error::is_config`] if this store is not native or `source` is not
    /// an Express layout; server errors and timeouts. Documents that cannot
    /// be converted are reported, not errors.
    pub async fn migrate_from(
        &self,
        source: &MongoSessionStore,
        options: MigrateOptions,
        progress: impl FnMut(&MigrationReport),
    ) -> Result<MigrationReport, Incomplete<MigrationReport>> {
        let mut report = MigrationReport::default();
        match self.migrate(source, options, progress, &mut report).await {
            Ok(()) => Ok(report),
            Err(error) => Err(Incomplete::new(report, error)),
        }
    }

    async fn migrate(
        &self,
        source: &MongoSessionStore,
        options: MigrateOptions,
        mut progress: impl FnMut(&MigrationReport),
        report: &mut MigrationReport,
    ) -> Result<()> {
        let (from, to) = (source.layout(), self.layout());
        if from.value_rules.is_none() || to.value_rules.is_some() {
            return Err(Error::config(
                "migrate from a store in an Express layout into a native one",
            ));
        }
        let in_place = source.collection().namespace() == self.collection().namespace();
        let ledger = match in_place {
            true => None,
            false => Some(Ledger::open(self, source).await?),
        };
        let mut dry = (options.dry_run && !in_place).then(DrySeen::default);
        let size = options.batch_size.max(1);
        let filter = doc! { &from.fields.data: { "$exists": true } };
        let find = source
            .collection()
            .find(filter)
            .batch_size(u32::try_from(size).unwrap_or(u32::MAX));
        // A batch is one round trip to the source (the cursor's batch).
        let (mut cursor, mut batch) = source.open_batches(find, size).await?;
        while !batch.is_empty() {
            let mut tally = MigrationReport {
                examined: batch.len() as u64,
                ..MigrationReport::default()
            };
            match &ledger {
                Some(ledger) => {
                    self.copy_batch(source, ledger, &batch, options, &mut tally, dry.as_mut())
                        .await?
                }
                None => self.move_batch(source, &batch, options, &mut tally).await?,
            }
            report.add(tally);
            progress(report);
            batch = source.next_batch(&mut cursor, size).await?;
        }
        if let Some(ledger) = &ledger {
            if let Some(dry) = &mut dry {
                dry.sort();
            }
            self.remove_orphans(ledger, options, dry.as_ref(), report)
                .await?;
            progress(report);
        }
        Ok(())
    }

    /// The native document for a decoded source session, at `version`.
    fn native_copy(
        &self,
        key: &str,
        mut decoded: Decoded,
        existing: Option<&Document>,
        version: i64,
    ) -> Result<Document> {
        let to = self.layout();
        let cookie = decoded.data.remove("cookie");
        let mut created = creation_time(&decoded, cookie.as_ref(), DateTime::now());
        let earlier_copy = to
            .fields
            .created_at
            .as_ref()
            .and_then(|field| existing?.get_datetime(field).ok());
        if let Some(earlier) = earlier_copy {
            created = created.min(*earlier);
        }
        let modified = decoded.last_modified.unwrap_or(created).max(created);
        let expires = to.cap_expiry(decoded.expires, Some(created.timestamp_millis()));
        let values = to.encode_values(key, &decoded.data)?;
        let mut document = to.new_document(
            key,
            values,
            expires,
            created,
            modified,
            decoded.user.as_ref(),
        );
        if let Some(field) = &to.fields.version {
            document.insert(field, version);
        }
        Ok(document)
    }
}

/// When the session began, as far as the source tells: its own record, or
/// else the earliest time it is known to have existed (see the module docs).
fn creation_time(decoded: &Decoded, cookie: Option<&Value>, now: DateTime) -> DateTime {
    if let Some(created) = decoded.created_at {
        return created.min(now);
    }
    let cookie_set = cookie
        .and_then(|c| c.get("originalMaxAge"))
        .and_then(Value::as_f64)
        .filter(|age| age.is_finite() && *age > 0.0)
        .and_then(|age| {
            // Saturating on purpose: a float beyond i64 becomes i64::MAX.
            #[allow(clippy::cast_possible_truncation)]
            let age = age as i64;
            decoded.expires.timestamp_millis().checked_sub(age)
        })
        .map(DateTime::from_millis);
    [Some(now), decoded.last_modified, cookie_set]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now)
}

/// Matches the source document only while it is as read.
fn as_read(layout: &Layout, document: &Document) -> Document {
    let id_field = &layout.fields.id;
    let mut filter = doc! { id_field: document.get(id_field).cloned() };
    for field in [&layout.fields.data, &layout.fields.expires] {
        if let Some(value) = document.get(field) {
            filter.insert(field, value.clone());
        }
    }
    filter
}

/// Matches a document only while every one of `document`'s fields is
/// exactly as given (`$eq`, so values are never read as operators).
fn exactly(document: &Document) -> Document {
    document
        .iter()
        .map(|(name, value)| (name.clone(), Bson::Document(doc! { "$eq": value.clone() })))
        .collect()
}

/// What became of one session.
enum Step {
    Converted,
    Unchanged,
    Deferred,
    KeptNative,
}

impl Step {
    fn converted_unless(up_to_date: bool) -> Self {
        if up_to_date {
            Self::Unchanged
        } else {
            Self::Converted
        }
    }

    fn count(self, report: &mut MigrationReport) {
        match self {
            Self::Converted => report.converted += 1,
            Self::Unchanged => report.unchanged += 1,
            Self::Deferred => report.deferred += 1,
            Self::KeptNative => report.kept_native += 1,
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
