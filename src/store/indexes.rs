//! The collection's indexes, seen and ensured on an operator's request
//! (build ensures them itself unless told not to).

use super::MongoSessionStore;
use crate::{
    error::Result,
    index::{ensure_endings_indexes, IndexPlan},
    observe::{observed, Op},
};

impl MongoSessionStore {
    /// The indexes this store's configuration relies on (the expiry TTL
    /// index with [`AutoRemove::Native`](crate::AutoRemove::Native), a
    /// custom id field's unique index, the owner index), compared with what
    /// the collection has. Reads only.
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn index_plan(&self) -> Result<IndexPlan> {
        observed(Op::IndexPlan, None, self.index_plan_unobserved()).await
    }

    async fn index_plan_unobserved(&self) -> Result<IndexPlan> {
        let bound = self.inner.config.operation_timeout;
        let plan = self.inner.indexes.plan(&self.inner.collection, bound);
        self.bounded("listIndexes", plan).await
    }

    /// Carries out [`index_plan`](Self::index_plan) (and ensures the indexes
    /// of the endings collection, `<collection>.endings`, which are the
    /// store's alone): creates the missing indexes, changes a TTL index with another `expireAfterSeconds` in
    /// place (`collMod`) and, with `replace`, drops and recreates what
    /// cannot be changed in place (another partial filter, or a server that
    /// refuses `collMod`). Returns the plan as carried out: each index's
    /// action is what was done to it. Every change is logged (`tracing`,
    /// target `mongodb_session_store::index`).
    ///
    /// # Errors
    ///
    /// [`Error::is_index_conflict`](crate::Error::is_index_conflict) when an
    /// index needs dropping and recreating and `replace` is false, or when it
    /// cannot be repaired (a non-unique index on the id field); server errors
    /// and timeouts.
    pub async fn ensure_indexes(&self, replace: bool) -> Result<IndexPlan> {
        observed(
            Op::EnsureIndexes,
            None,
            self.ensure_indexes_unobserved(replace),
        )
        .await
    }

    async fn ensure_indexes_unobserved(&self, replace: bool) -> Result<IndexPlan> {
        let plan = self.index_plan_unobserved().await?;
        let bound = self.inner.config.operation_timeout;
        let apply = self
            .inner
            .indexes
            .apply(&self.inner.collection, plan, replace, bound);
        let plan = self.bounded("createIndex", apply).await?;
        if let Some(cosmos) = self.inner.indexes.endings {
            let endings = &self.inner.endings;
            let ensure = ensure_endings_indexes(endings, cosmos, crate::endings::RETENTION, bound);
            self.bounded("createIndexes", ensure).await?;
        }
        Ok(plan)
    }

    /// Runs a sequence of driver operations within the operation timeout.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let bound = self.inner.config.operation_timeout;
        tokio::time::timeout(bound, work)
            .await
            .map_err(|_| crate::error::Error::timeout(operation, bound))?
    }
}
