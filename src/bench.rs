//! Not public API: the store's own per-operation work, stage by stage, for
//! `bench/` (the micro benchmark and the per-stage budget) and the
//! allocation tests. Compiled only with the `bench` feature. Every function
//! here calls what the store calls, in the order it calls it; none changes
//! how the store works.

use std::{collections::HashMap, time::Duration, time::SystemTime};

use mongodb::{
    bson::{DateTime, Document, RawDocument},
    options::UpdateModifications,
};
use serde_json::{Map, Value};

use crate::{
    changes::Changes,
    lifetime::Rules,
    observe::{observed, Op},
    outcome::LoadedSession,
    plan::{plan_save, SaveInput, SavePlan},
    schema::Layout,
    session::SaveOutcome,
    snapshot::split_map,
    write::Clock,
    KeyRing, Result,
};

/// Encodes and decodes whole session documents as the store does.
#[derive(Debug)]
pub struct DocumentCodec(Layout);

/// A document as `decode_raw` returns it, before the load prepares it for
/// the save.
#[derive(Debug)]
pub struct Decoded(crate::schema::Decoded);

/// What a save would send, as `plan_save` decides it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Plan {
    /// Nothing: unchanged, no touch due.
    Nothing,
    /// One update (plus a guarded rewrite first, if `guarded`).
    Write {
        /// The update the save sends to the live session.
        update: Option<Document>,
        /// Whether a guarded rewrite of stale keys comes first.
        guarded: bool,
    },
    /// A compare-and-swap (opaque codecs, `ConflictPolicy::Fail`).
    Swap,
}

impl DocumentCodec {
    /// The default layout: BSON values, hashed ids.
    pub fn plain() -> Self {
        Self(Layout::default())
    }

    /// The default layout with encryption.
    pub fn encrypted(keys: KeyRing) -> Self {
        Self(Layout {
            encryption: Some(keys),
            ..Layout::default()
        })
    }

    /// The stored id of a session id (an HMAC-SHA-256).
    pub fn stored_id(&self, id: &str) -> String {
        self.0.stored_id(id)
    }

    /// A new session's document, as the bytes an insert sends.
    pub fn encode(&self, stored_id: &str, values: &Map<String, Value>) -> Result<Vec<u8>> {
        let now = DateTime::now();
        let data = self.0.encode_values(stored_id, values)?;
        let document = self.0.new_document(stored_id, data, now, now, now, None);
        mongodb::bson::to_vec(&document).map_err(|e| crate::Error::encode(e.to_string()))
    }

    /// What a load does with the bytes a find returns: decodes them and
    /// fingerprints every value for the save to compare against.
    pub fn decode(&self, bytes: &[u8]) -> Result<Map<String, Value>> {
        let raw =
            RawDocument::from_bytes(bytes).map_err(|e| crate::codec::malformed("document", &e))?;
        Ok(self.prepare(self.decode_document(raw)?).data)
    }

    /// A load's decode alone: the document's fields and values, checked.
    pub fn decode_document(&self, raw: &RawDocument) -> Result<Decoded> {
        self.0.decode_raw(raw).map(Decoded)
    }

    /// What a load prepares for the save after decoding: the fingerprints,
    /// the handle and the lineage (`LoadedSession::new`).
    pub fn prepare(&self, decoded: Decoded) -> LoadedSession {
        LoadedSession::new(decoded.0, &self.0)
    }

    /// The filter of a write to the live session `stored_id`.
    pub fn live_filter(&self, stored_id: &str) -> Document {
        self.0.live_filter_stored(stored_id, DateTime::now())
    }

    /// A save's comparison alone: the tracking entry read back from the
    /// framework's map and every key compared with it; the number of keys
    /// set or removed (`None` without a usable tracking entry).
    pub fn compare(&self, data: &HashMap<String, Value>) -> Option<usize> {
        let (entries, snapshot) = split_map(data);
        let snapshot = snapshot?;
        let changes = Changes::between(&snapshot, entries);
        Some(changes.set.len() + changes.unset.len())
    }

    /// What a save of the framework's map `data` would send, decided as
    /// `MongoSessionStore::save_map` decides it (`touch_after`
    /// `touch_after`, `expires` or now + `ttl`), without a server.
    ///
    /// # Errors
    ///
    /// As the save: a reserved key, an oversized session, a codec failure.
    pub fn plan_save(
        &self,
        stored_id: &str,
        data: &HashMap<String, Value>,
        expires: Option<SystemTime>,
        ttl: Duration,
        touch_after: Duration,
    ) -> Result<Plan> {
        let layout = &self.0;
        let (entries, snapshot) = split_map(data);
        let created_at = snapshot.as_ref().and_then(|s| s.created_at);
        let rules = Rules {
            idle_timeout: ttl,
            absolute_timeout: layout.absolute_timeout,
            limit: layout.lifetime_limit,
            touch_after,
        };
        let now = DateTime::now();
        let expiry = rules.expiry(now, expires, created_at, entries.lifetime());
        let input = SaveInput {
            layout,
            stored_id,
            entries,
            snapshot: snapshot.as_ref(),
            ruled: None,
            clock: Clock {
                now,
                expires: expiry.expires,
                touch_after: expiry.window,
                cap_on_server: expiry.cap_on_server,
                stored: None,
            },
            strict: false,
            max_session_bytes: crate::options::Config::default().max_session_bytes,
        };
        Ok(match plan_save(&input)? {
            SavePlan::Nothing => Plan::Nothing,
            SavePlan::Write { guarded, then, .. } => Plan::Write {
                update: match then {
                    Some(UpdateModifications::Document(update)) => Some(update),
                    _ => None,
                },
                guarded: guarded.is_some(),
            },
            SavePlan::Swap { .. } => Plan::Swap,
        })
    }
}

/// The span and metrics around an operation whose body does nothing: what
/// observing one operation costs (no subscriber or recorder installed
/// unless the caller installed one).
///
/// # Errors
///
/// Never; the signature is the store's.
pub async fn observed_nothing(id: &str) -> Result<SaveOutcome> {
    observed(Op::Save, Some(id), async { Ok(SaveOutcome::Unchanged) }).await
}

/// actix-session's `update` reading its state, as the adapter does: the
/// values whose text changed since the load parsed, the others only
/// recognised; how many were parsed (`None`: the adapter would parse every
/// value, as without a usable tracking entry).
#[cfg(feature = "actix-session")]
pub fn actix_changed_only(
    store: &crate::MongoSessionStore,
    state: &HashMap<String, String>,
) -> Option<usize> {
    match store.changed_only(state) {
        Ok(Some((changed, ..))) => Some(changed.len()),
        _ => None,
    }
}
