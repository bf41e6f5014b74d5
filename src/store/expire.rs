//! Removing expired sessions.

use mongodb::bson::DateTime;

use super::MongoSessionStore;
use crate::{
    error::Result,
    observe::{observed, Op},
};

impl MongoSessionStore {
    /// Deletes every expired session and returns how many. Only needed with
    /// [`AutoRemove::Disabled`](crate::AutoRemove::Disabled); the TTL index
    /// or the interval task does this otherwise.
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn delete_expired(&self) -> Result<u64> {
        observed(Op::DeleteExpired, None, self.delete_expired_unobserved()).await
    }

    async fn delete_expired_unobserved(&self) -> Result<u64> {
        let filter = self.inner.layout.expired_filter(DateTime::now());
        let result = self
            .run("deleteMany", self.inner.collection.delete_many(filter))
            .await?;
        Ok(result.deleted_count)
    }
}
