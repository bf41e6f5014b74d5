//! The per-user session limit, and the devices it (or a revocation)
//! signed out.
//!
//! Enforced on every write that gives a session an owner, with one query
//! on the owner index (the user's live sessions):
//!
//! - [`OverLimit::EndLeastRecentlyActive`]: the sessions are ranked in one
//!   fixed order (most recently active first, ties by id) and everything
//!   past the first `max` is ended. Every write is followed by its own
//!   listing, so concurrent logins converge: once they have all returned,
//!   exactly `max` sessions keep the owner. The ranking of a subset never
//!   puts a session that is among the first `max` of all behind `max`
//!   others, so nobody ends a session that should stay (unless its
//!   activity reorders it during the race).
//! - [`OverLimit::RefuseNewLogin`]: before the write, a login takes a place
//!   in the user's logins record (one document in the endings collection)
//!   with one conditional update, so racing logins are admitted one at a
//!   time: exactly as many as there is room for, none admitted and then
//!   undone, and a refused one writes nothing (see `admit_or_refuse`).

use futures_util::TryStreamExt;
use mongodb::bson::{doc, DateTime, RawDocumentBuf};

use super::{users::signed_out_note, users::Target, MongoSessionStore};
use crate::{
    error::{Error, Result},
    observe::{observed, Op},
    options::{OverLimit, SessionLimit},
    schema::{optional_date, LINEAGE_FIELD, USER_FIELD},
    user::{EndReason, SignedOut},
};

/// How long an admitted login's place is kept before its write shows: far
/// longer than a request takes between the two.
const PLACE_GRACE_MS: i64 = 60_000;

impl MongoSessionStore {
    /// Whether `user` may get another session: an error for which
    /// [`Error::is_session_limit`](crate::Error::is_session_limit) is true
    /// when the limit is [`OverLimit::RefuseNewLogin`] and the user already
    /// has [`max_sessions_per_user`](crate::StoreBuilder::max_sessions_per_user)
    /// live sessions. For a login handler to answer before it sets the
    /// owner; the save that sets it checks again (concurrent logins may
    /// pass this together).
    ///
    /// # Errors
    ///
    /// As above; server errors and timeouts.
    pub async fn check_session_limit(&self, user: &str) -> Result<()> {
        let Some(SessionLimit {
            max,
            policy: OverLimit::RefuseNewLogin,
        }) = self.inner.config.session_limit
        else {
            return Ok(());
        };
        let live = self.user_documents(user).await?.len();
        if live >= usize::try_from(max).unwrap_or(usize::MAX) {
            return Err(Error::session_limit(max));
        }
        Ok(())
    }

    /// Before a write that gives the session stored as `stored_id` the
    /// owner `user`: under [`OverLimit::RefuseNewLogin`], takes a place for
    /// it or refuses it (nothing is written then).
    pub(super) async fn admit_session(&self, user: &str, stored_id: &str) -> Result<()> {
        match self.inner.config.session_limit {
            Some(SessionLimit {
                max,
                policy: OverLimit::RefuseNewLogin,
            }) => self.admit_or_refuse(user, stored_id, max).await,
            _ => Ok(()),
        }
    }

    /// After a write gave the session stored as `stored_id` the owner
    /// `user`: under [`OverLimit::EndLeastRecentlyActive`], makes the limit
    /// hold.
    pub(super) async fn enforce_session_limit(&self, user: &str) -> Result<()> {
        match self.inner.config.session_limit {
            Some(SessionLimit {
                max,
                policy: OverLimit::EndLeastRecentlyActive,
            }) => {
                let max = usize::try_from(max).unwrap_or(usize::MAX);
                self.end_least_recently_active(user, max).await
            }
            _ => Ok(()),
        }
    }

    /// Ends every session of `user` past the `max` most recently active.
    async fn end_least_recently_active(&self, user: &str, max: usize) -> Result<()> {
        let deadline = self.deadline();
        let mut sessions = self.user_documents(user).await?;
        if sessions.len() <= max {
            return Ok(());
        }
        let layout = &self.inner.layout;
        let last_active = |d: &RawDocumentBuf| match &layout.fields.last_modified {
            Some(field) => optional_date(d, field).ok().flatten(),
            None => None,
        };
        let id = |d: &RawDocumentBuf| d.get_str(&layout.fields.id).unwrap_or_default().to_string();
        // One fixed order, the same on every instance: the most recently
        // active first (a missing time counts as the oldest), ties by id.
        sessions.sort_by(|a, b| {
            let order = last_active(b).cmp(&last_active(a));
            order.then_with(|| id(a).cmp(&id(b)))
        });
        let targets = sessions
            .split_off(max)
            .iter()
            .map(|document| {
                let key = id(document);
                Target {
                    lineage: layout.lineage(&key, document.get_str(LINEAGE_FIELD).ok()),
                    note: Some(signed_out_note(layout, document, EndReason::SessionLimit)),
                    key: Some(key),
                }
            })
            .collect();
        self.end_lineages(user, targets, deadline).await?;
        Ok(())
    }

    /// Takes a place for `stored_id` among `user`'s admitted sessions, or
    /// fails with [`Error::is_session_limit`].
    ///
    /// The places are the user's logins record (a document in the endings
    /// collection): a login takes one with a single conditional update
    /// (only while fewer than `max` are taken), before its session gets the
    /// owner, so racing logins on any instance are admitted one at a time
    /// and a refused one writes nothing. Places of sessions that are no
    /// longer live (after a grace for admitted writes still in flight) are
    /// given back when the record is full; a missing record (no login for
    /// an hour) starts from the user's live sessions — which, since an
    /// owner is only written after admission, are all admitted ones.
    async fn admit_or_refuse(&self, user: &str, stored_id: &str, max: u32) -> Result<()> {
        let deadline = self.deadline();
        let endings = &self.inner.endings;
        let record_id = format!("logins:{user}");
        let places = i64::from(max);
        let now = DateTime::now();
        let expires = now.saturating_add_duration(crate::endings::RETENTION);
        let place = |id: &str| doc! { "id": id, "at": now };
        for _ in 0..4 {
            let room = doc! {
                "_id": &record_id,
                "$expr": { "$lt": [{ "$size": "$slots" }, places] },
                "slots.id": { "$ne": stored_id },
            };
            let take = doc! {
                "$push": { "slots": place(stored_id) },
                "$inc": { "v": 1_i64 },
                "$set": { "expires": expires },
            };
            let taken = self.run_until("update", endings.update_one(room, take), deadline);
            if taken.await?.matched_count > 0 {
                return Ok(());
            }
            let find = endings.find_one(doc! { "_id": &record_id });
            let record = self.run_until("find", find, deadline).await?;
            let slots: Vec<(String, Option<DateTime>)> = record
                .as_ref()
                .and_then(|r| r.get_array("slots").ok())
                .map(|slots| {
                    slots
                        .iter()
                        .filter_map(|s| s.as_document())
                        .filter_map(|s| {
                            let at = s.get_datetime("at").ok().copied();
                            Some((s.get_str("id").ok()?.to_string(), at))
                        })
                        .collect()
                })
                .unwrap_or_default();
            if slots.iter().any(|(id, _)| id == stored_id) {
                return Ok(());
            }
            let layout = &self.inner.layout;
            let live: Vec<String> = self
                .user_documents(user)
                .await?
                .iter()
                .filter_map(|d| d.get_str(&layout.fields.id).ok().map(str::to_string))
                .collect();
            let Some(record) = record else {
                let seed: Vec<_> = live.iter().map(|id| place(id)).collect();
                let insert = doc! {
                    "$setOnInsert": { "slots": seed, "v": 0_i64, "expires": expires },
                };
                let upsert = endings
                    .update_one(doc! { "_id": &record_id }, insert)
                    .upsert(true);
                self.run_until("update", upsert, deadline).await?;
                continue;
            };
            // A place stays while its session is live, or its write may
            // still be on its way.
            let grace = now.timestamp_millis().saturating_sub(PLACE_GRACE_MS);
            let kept: Vec<_> = slots
                .iter()
                .filter(|(id, at)| {
                    live.contains(id) || at.is_some_and(|at| at.timestamp_millis() > grace)
                })
                .map(|(id, at)| doc! { "id": id, "at": at.unwrap_or(now) })
                .collect();
            if kept.len() == slots.len() {
                break;
            }
            let version = record.get_i64("v").unwrap_or_default();
            let unchanged = doc! { "_id": &record_id, "v": version };
            let prune = doc! { "$set": { "slots": kept }, "$inc": { "v": 1_i64 } };
            self.run_until("update", endings.update_one(unchanged, prune), deadline)
                .await?;
        }
        Err(Error::session_limit(max))
    }

    /// The devices of `user` that someone else signed out within the last
    /// hour — a [`revoke`](Self::revoke) or [`revoke_others`](Self::revoke_others),
    /// or a login past [`max_sessions_per_user`](crate::StoreBuilder::max_sessions_per_user) —
    /// most recent first, for a "your devices" page to say what happened.
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn signed_out(&self, user: &str) -> Result<Vec<SignedOut>> {
        observed(Op::SignedOut, None, self.signed_out_unobserved(user)).await
    }

    async fn signed_out_unobserved(&self, user: &str) -> Result<Vec<SignedOut>> {
        let deadline = self.deadline();
        let filter = doc! { USER_FIELD: user, "signedOut": { "$exists": true } };
        let find = self
            .inner
            .endings
            .find(filter)
            .projection(doc! { "signedOut": 1 });
        let cursor = self.run_until("find", find, deadline).await?;
        let records: Vec<mongodb::bson::Document> = self
            .run_until("find", cursor.try_collect(), deadline)
            .await?;
        let mut devices: Vec<SignedOut> = records
            .iter()
            .filter_map(|record| {
                let note = record.get_document("signedOut").ok()?;
                let text = |name: &str| note.get_str(name).ok().map(str::to_string);
                Some(SignedOut {
                    handle: text("handle")?,
                    user_agent: text("userAgent"),
                    ip: text("ip"),
                    at: note.get_datetime("at").ok().map(|d| d.to_system_time())?,
                    reason: EndReason::from_label(note.get_str("reason").ok()?)?,
                })
            })
            .collect();
        devices.sort_by_key(|d| std::cmp::Reverse(d.at));
        Ok(devices)
    }
}
