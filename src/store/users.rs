//! A user's sessions: listing and revocation.

use std::time::SystemTime;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, DateTime, RawDocument, RawDocumentBuf};

use super::MongoSessionStore;
use crate::{
    error::{Error, Result},
    id::RedactedId,
    observe::{observed, Op},
    schema::{optional_date, Layout, USER_FIELD},
    user::UserSession,
};

impl MongoSessionStore {
    /// The live sessions of `user`, newest activity first. `current` is the
    /// handle of the session asking (from [`LoadedSession::handle`](crate::LoadedSession::handle) or the
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

    /// Ends `user`'s session with this `handle`; `false` if there is none
    /// (a handle of another user's session ends nothing).
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn revoke(&self, user: &str, handle: &str) -> Result<bool> {
        let revoke = async { Ok(self.revoke_where(user, |h| h == handle).await? > 0) };
        observed(Op::Revoke, None, revoke).await
    }

    /// Ends every session of `user` except the one with handle `keep`
    /// ("log out my other devices"); returns how many were ended.
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn revoke_others(&self, user: &str, keep: &str) -> Result<u64> {
        let revoke = self.revoke_where(user, |h| h != keep);
        observed(Op::RevokeOthers, None, revoke).await
    }

    /// Deletes the sessions of `user` whose handle matches `pick`. Handles
    /// are not stored, so they are computed for the user's (few, indexed)
    /// sessions; the delete repeats the owner in its filter.
    async fn revoke_where(&self, user: &str, pick: impl Fn(&str) -> bool) -> Result<u64> {
        let layout = &self.inner.layout;
        let keys: Vec<String> = self
            .user_documents(user)
            .await?
            .iter()
            .filter_map(|d| d.get_str(&layout.fields.id).ok())
            .filter(|stored_id| pick(&layout.handle(stored_id)))
            .map(str::to_string)
            .collect();
        if keys.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Bson> = keys.iter().cloned().map(Bson::String).collect();
        let filter = doc! { &layout.fields.id: { "$in": ids }, USER_FIELD: user };
        let pending = self.expect_changes();
        let result = self
            .run("deleteMany", self.inner.collection.delete_many(filter))
            .await;
        // Only sessions that were still there produce change events.
        let pending = pending.filter(|_| {
            result
                .as_ref()
                .is_ok_and(|r| r.deleted_count == keys.len() as u64)
        });
        self.settle(pending, &keys).await;
        Ok(result?.deleted_count)
    }

    async fn user_documents(&self, user: &str) -> Result<Vec<RawDocumentBuf>> {
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
