//! A user's sessions: listing and revocation.

use std::time::SystemTime;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, DateTime, Document, RawDocument, RawDocumentBuf};

use super::MongoSessionStore;
use crate::{
    error::{Error, Result},
    id::RedactedId,
    observe::{observed, Op},
    schema::{optional_date, Layout, LINEAGE_FIELD, USER_FIELD},
    user::{EndReason, UserSession},
};

impl MongoSessionStore {
    /// The live sessions of `user`, newest activity first. `current` is the
    /// handle of the session asking (from [`LoadedSession::handle`](crate::session::LoadedSession::handle) or the
    /// adapters' `current_handle`), flagged in the answer.
    ///
    /// A document that cannot be read (a wrongly typed date, say) is left
    /// out and logged with a redacted id; the others are listed.
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn user_sessions(
        &self,
        user: &str,
        current: Option<&str>,
    ) -> Result<Vec<UserSession>> {
        let sessions = self.user_sessions_unobserved(user, current);
        observed(Op::UserSessions, None, sessions).await
    }

    async fn user_sessions_unobserved(
        &self,
        user: &str,
        current: Option<&str>,
    ) -> Result<Vec<UserSession>> {
        let layout = &self.inner.layout;
        let documents = self.user_documents(user).await?;
        let mut sessions: Vec<UserSession> = documents
            .iter()
            .filter_map(|document| match user_session(layout, document, current) {
                Ok(session) => Some(session),
                Err(error) => {
                    // One malformed document must not hide the others.
                    let id = document.get_str(&layout.fields.id).unwrap_or_default();
                    let session = RedactedId::new(id);
                    tracing::warn!(%session, %error, "user_sessions: skipped an undecodable session");
                    None
                }
            })
            .collect();
        sessions.sort_by_key(|s| std::cmp::Reverse(s.last_active));
        Ok(sessions)
    }

    /// Ends `user`'s session with this `handle`, and its lineage (a
    /// regeneration of it in flight stores nothing); `false` if the handle
    /// names no session of this user, live or ended within the last hour
    /// (a handle of another user's session ends nothing).
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn revoke(&self, user: &str, handle: &str) -> Result<bool> {
        let revoke = async {
            let (_, lineages) = self.revoke_where(user, Pick::Handle(handle)).await?;
            Ok(lineages > 0)
        };
        observed(Op::Revoke, None, revoke).await
    }

    /// Ends every session of `user` except the one with handle `keep`
    /// ("log out my other devices"), with their lineages: a request of
    /// another device that is regenerating its session meanwhile stores
    /// nothing. Returns how many sessions were ended.
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn revoke_others(&self, user: &str, keep: &str) -> Result<u64> {
        let revoke = async { Ok(self.revoke_where(user, Pick::AllBut(keep)).await?.0) };
        observed(Op::RevokeOthers, None, revoke).await
    }

    /// Ends the lineages of `user`'s sessions that `pick` names: those of
    /// live sessions, and those of recent endings (a session between a
    /// regeneration's delete and its create is in neither list otherwise).
    /// Each lineage's record gets an ending first, then its sessions go.
    /// Returns how many live sessions were deleted and how many lineages
    /// were ended.
    async fn revoke_where(&self, user: &str, pick: Pick<'_>) -> Result<(u64, usize)> {
        let layout = &self.inner.layout;
        let deadline = self.deadline();
        let mut targets: Vec<Target> = Vec::new();
        let mut kept = None;
        // Live sessions first, then endings: a session that ends in between
        // has its ending recorded before it is deleted, so it is in one list
        // or the other.
        for document in self.user_documents(user).await? {
            let Ok(key) = document.get_str(&layout.fields.id) else {
                continue;
            };
            let lineage = layout.lineage(key, document.get_str(LINEAGE_FIELD).ok());
            if pick.picks(&layout.handle(key)) {
                let note = signed_out_note(layout, &document, EndReason::Revoked);
                targets.push(Target {
                    lineage,
                    key: Some(key.to_string()),
                    note: Some(note),
                });
            } else if matches!(pick, Pick::AllBut(_)) {
                kept = Some(lineage);
            }
        }
        let find = self
            .inner
            .endings
            .find(doc! { USER_FIELD: user })
            .projection(doc! { "ids": 1 });
        let cursor = self.run_until("find", find, deadline).await?;
        let records: Vec<Document> = self
            .run_until("find", cursor.try_collect(), deadline)
            .await?;
        for record in records {
            let Ok(lineage) = record.get_str("_id") else {
                continue;
            };
            let ids = record
                .get_array("ids")
                .map(|a| a.as_slice())
                .unwrap_or_default();
            let named = ids
                .iter()
                .filter_map(Bson::as_str)
                .any(|id| pick.picks(&layout.handle(id)));
            let whole_user = matches!(pick, Pick::AllBut(_));
            if named || whole_user {
                targets.push(Target {
                    lineage: lineage.to_string(),
                    key: None,
                    note: None,
                });
            }
        }
        // The lineage of the session kept: never its own older ids.
        targets.retain(|target| kept.as_ref() != Some(&target.lineage));
        let ended = targets.len();
        let deleted = self.end_lineages(user, targets, deadline).await?;
        Ok((deleted, ended))
    }

    /// Ends each target's lineage: an ending appended to its record (with
    /// the target's note), then its session and every session the record
    /// names as a regeneration's successor deleted. How many sessions went.
    pub(super) async fn end_lineages(
        &self,
        user: &str,
        mut targets: Vec<Target>,
        deadline: tokio::time::Instant,
    ) -> Result<u64> {
        targets.sort_unstable_by(|a, b| (&a.lineage, &a.key).cmp(&(&b.lineage, &b.key)));
        targets.dedup_by(|a, b| a.lineage == b.lineage && a.key == b.key);
        let token = crate::endings::token();
        let now = DateTime::now();
        let updates = targets.iter().map(|target| {
            let mut update = crate::endings::append(&token, target.key.as_deref(), Some(user), now);
            if let (Some(note), Ok(set)) = (&target.note, update.get_document_mut("$set")) {
                set.insert("signedOut", note.clone());
            }
            (target.lineage.clone(), update)
        });
        let records = self.record_endings(updates.collect(), deadline).await?;
        let mut victims: Vec<String> = targets.iter().filter_map(|t| t.key.clone()).collect();
        victims.extend(
            records
                .values()
                .flat_map(|r| r.successors().map(str::to_string)),
        );
        self.delete_sessions(victims, deadline).await
    }

    pub(super) async fn user_documents(&self, user: &str) -> Result<Vec<RawDocumentBuf>> {
        let mut filter = doc! { USER_FIELD: user };
        self.inner
            .layout
            .restrict_to_live(&mut filter, DateTime::now());
        let cursor = self.run("find", self.inner.raw.find(filter)).await?;
        self.run("find", cursor.try_collect::<Vec<_>>()).await
    }
}

fn user_session(
    layout: &Layout,
    document: &RawDocument,
    current: Option<&str>,
) -> Result<UserSession> {
    let stored_id = document
        .get_str(&layout.fields.id)
        .map_err(|_| Error::decode(&layout.fields.id, "not a string"))?;
    let handle = layout.handle(stored_id);
    let date = |field: &Option<String>| -> Result<Option<SystemTime>> {
        let Some(name) = field else { return Ok(None) };
        Ok(optional_date(document, name)?.map(DateTime::to_system_time))
    };
    Ok(UserSession {
        current: current == Some(handle.as_str()),
        handle,
        created_at: date(&layout.fields.created_at)?,
        last_active: date(&layout.fields.last_modified)?,
        user_agent: document.get_str("userAgent").ok().map(str::to_string),
        ip: document.get_str("ip").ok().map(str::to_string),
    })
}

/// Which of a user's sessions a revocation ends, by revocation handle.
#[derive(Debug, Clone, Copy)]
enum Pick<'a> {
    Handle(&'a str),
    AllBut(&'a str),
}

impl Pick<'_> {
    fn picks(self, handle: &str) -> bool {
        match self {
            Self::Handle(wanted) => handle == wanted,
            Self::AllBut(keep) => handle != keep,
        }
    }
}

/// A lineage to end: the live session of it to delete, if any, and what to
/// note about the device in its record.
#[derive(Debug)]
pub(super) struct Target {
    pub(super) lineage: String,
    pub(super) key: Option<String>,
    pub(super) note: Option<Document>,
}

/// What the endings record keeps of a device signed out by someone else
/// (a revocation, the session limit), for [`MongoSessionStore::signed_out`].
pub(super) fn signed_out_note(
    layout: &Layout,
    document: &RawDocument,
    reason: EndReason,
) -> Document {
    let key = document.get_str(&layout.fields.id).unwrap_or_default();
    let text = |name: &str| document.get_str(name).ok().map_or(Bson::Null, Bson::from);
    doc! {
        "at": DateTime::now(),
        "reason": reason.label(),
        "handle": layout.handle(key),
        "userAgent": text("userAgent"),
        "ip": text("ip"),
    }
}
