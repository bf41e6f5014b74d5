//! What may be done to an index that disagrees with the configuration
//! ([`IndexRepair`]), the server commands that do it, and the report of what
//! was done. Knows nothing of which index it is: `ttl.rs` decides.

use std::time::Duration;

use mongodb::{
    bson::{doc, Document},
    Collection,
};

use super::IndexAction;
use crate::error::{command_code, Error, Result};

const NAMESPACE_NOT_FOUND: i32 = 26;
const INDEX_NOT_FOUND: i32 = 27;

/// What the store may do to an existing TTL index that disagrees with its
/// configuration (see [`StoreBuilder::index_repair`](crate::StoreBuilder::index_repair)).
///
/// Whatever the choice, an index that agrees is kept (whatever its name), a
/// missing one is created, and every change is logged (`tracing`, target
/// `mongodb_session_store::index`, level warn).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IndexRepair {
    /// Change nothing that exists: a disagreeing index is an error for which
    /// [`Error::is_index_conflict`](crate::Error::is_index_conflict) is true,
    /// naming the fixes. For an index another service also sets up (the
    /// default with an Express layout: the Node store recreates its index
    /// on every start and fails every request when the options differ).
    Refuse,
    /// Change a TTL index's `expireAfterSeconds` in place with `collMod`
    /// (instant, and the index never goes away). A difference `collMod`
    /// cannot fix (another partial filter, a unique index, or a server that
    /// refuses `collMod`) is an error as with [`Refuse`](Self::Refuse). The
    /// default.
    #[default]
    InPlace,
    /// As [`InPlace`](Self::InPlace), and drop and recreate what cannot be
    /// changed in place. Until the new index is built, expired documents
    /// wait, and the build reads the whole collection.
    Recreate,
}

/// A change reconciling made, for the report.
#[derive(Debug)]
pub(super) struct Changed {
    pub(super) action: IndexAction,
    /// The index's name (before a recreate, the old one's).
    pub(super) name: String,
    /// The index as it was, in the shell's notation.
    pub(super) before: Option<String>,
    /// Why a change in place became a recreate.
    pub(super) reason: Option<String>,
}

/// How the server answered a `collMod` of an index's `expireAfterSeconds`.
#[derive(Debug)]
pub(super) enum CollMod {
    /// It said it did it (read it back before trusting it).
    Done,
    /// The index or the collection went away meanwhile.
    Gone,
    /// It refused: too old to make a plain index a TTL index (before
    /// MongoDB 5.1), no `collMod` privilege, or no `collMod` at all.
    Refused(String),
}

/// Sets the `expireAfterSeconds` of the index `name` with `collMod`.
pub(super) async fn coll_mod(
    collection: &Collection<Document>,
    name: &str,
    expire_after: Duration,
    bound: Duration,
) -> Result<CollMod> {
    // mongod takes 0..=2^31-1 seconds; `build` refuses longer delays.
    let seconds = i32::try_from(expire_after.as_secs()).map_err(|_| {
        Error::config(format!(
            "expireAfterSeconds must be at most {}, not {}",
            i32::MAX,
            expire_after.as_secs()
        ))
    })?;
    let namespace = collection.namespace();
    let command = doc! {
        "collMod": &namespace.coll,
        "index": { "name": name, "expireAfterSeconds": seconds },
    };
    let database = collection.client().database(&namespace.db);
    match database.run_command(command).await {
        Ok(_) => Ok(CollMod::Done),
        Err(e) => match command_code(&e) {
            Some(INDEX_NOT_FOUND | NAMESPACE_NOT_FOUND) => Ok(CollMod::Gone),
            Some(code) => Ok(CollMod::Refused(refusal(&e, code))),
            None => Err(Error::from_driver("collMod", bound, e)),
        },
    }
}

/// Drops the index `name`; one already gone (another instance dropped it
/// first) is as good.
pub(super) async fn drop_index(
    collection: &Collection<Document>,
    name: &str,
    bound: Duration,
) -> Result<()> {
    match collection.drop_index(name).await {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                command_code(&e),
                Some(INDEX_NOT_FOUND | NAMESPACE_NOT_FOUND)
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(Error::from_driver("dropIndex", bound, e)),
    }
}

/// Logs a change: creating an index is routine; changing or replacing one
/// that someone may have set up on purpose is a warning.
pub(super) fn report(collection: &Collection<Document>, wanted: &str, changed: &Changed) {
    let namespace = collection.namespace().to_string();
    let before = changed.before.as_deref().unwrap_or("none");
    let (index, action) = (&changed.name, changed.action);
    match action {
        IndexAction::Create => tracing::info!(
            target: "mongodb_session_store::index",
            collection = %namespace, index = %index, %action, wanted,
            "created the index"
        ),
        IndexAction::ChangeInPlace => tracing::warn!(
            target: "mongodb_session_store::index",
            collection = %namespace, index = %index, %action, before, wanted,
            "changed the index's expireAfterSeconds in place (collMod)"
        ),
        _ => tracing::warn!(
            target: "mongodb_session_store::index",
            collection = %namespace, index = %index, %action, before, wanted,
            reason = changed.reason.as_deref().unwrap_or("its options cannot be changed in place"),
            "dropped and recreated the index"
        ),
    }
}

/// The server's reason, without the driver's wrapping.
fn refusal(error: &mongodb::error::Error, code: i32) -> String {
    match &*error.kind {
        mongodb::error::ErrorKind::Command(refused) => {
            format!("{} (code {code})", refused.message)
        }
        _ => format!("{error} (code {code})"),
    }
}
