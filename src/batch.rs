//! Operations over the whole collection work in bounded batches: each round
//! trip handles at most a batch of documents, so none of them takes longer
//! as the collection grows, and each stays within the operation timeout.
//! When a later batch fails, what the earlier ones did is kept and reported.

use std::fmt;

use crate::error::Error;

/// How an operation over the whole collection splits its work
/// ([`delete_expired_with`](crate::MongoSessionStore::delete_expired_with),
/// [`rewrap_with`](crate::MongoSessionStore::rewrap_with)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchOptions {
    /// Documents per batch (default 1,000; at least 1): what one round
    /// trip reads or deletes.
    pub size: usize,
    /// Per-document writes in flight at once, where each document needs a
    /// write of its own (a rewrap's compare-and-swap; default 32; at least 1).
    pub concurrency: usize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            size: 1_000,
            concurrency: 32,
        }
    }
}

impl BatchOptions {
    /// At most `documents` per batch (0 counts as 1).
    #[must_use]
    pub fn size(mut self, documents: usize) -> Self {
        self.size = documents.max(1);
        self
    }

    /// At most `writes` per-document writes at once (0 counts as 1).
    #[must_use]
    pub fn concurrency(mut self, writes: usize) -> Self {
        self.concurrency = writes.max(1);
        self
    }

    /// The batch size as the driver's cursor `batchSize` takes it.
    pub(crate) fn cursor_batch(self) -> u32 {
        u32::try_from(self.size.max(1)).unwrap_or(u32::MAX)
    }
}

/// A batched operation that stopped part way: what it had done before, and
/// why it stopped. What was done stays done; running the operation again
/// carries on from there.
///
/// Converts into [`Error`] (dropping `done`), so `?` works in a function
/// that returns this crate's [`Result`](crate::Result).
///
/// ```no_run
/// # async fn f(store: mongodb_session_store::MongoSessionStore) {
/// use mongodb_session_store::{admin::BatchOptions, admin::Incomplete};
///
/// match store.delete_expired_with(BatchOptions::default(), |_| {}).await {
///     Ok(deleted) => println!("deleted {deleted}"),
///     Err(Incomplete { done, error, .. }) => {
///         eprintln!("deleted {done}, then: {error}; run it again")
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Incomplete<R> {
    /// What the batches that completed did.
    pub done: R,
    /// Why the operation stopped.
    pub error: Error,
}

impl<R> Incomplete<R> {
    pub(crate) fn new(done: R, error: Error) -> Self {
        Self { done, error }
    }
}

impl<R> fmt::Display for Incomplete<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stopped part way (what was done before stays done; run it again): {}",
            self.error
        )
    }
}

impl<R: fmt::Debug> std::error::Error for Incomplete<R> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<R> From<Incomplete<R>> for Error {
    fn from(incomplete: Incomplete<R>) -> Self {
        incomplete.error
    }
}
