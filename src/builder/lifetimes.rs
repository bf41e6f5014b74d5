//! The options for sessions' own lifetimes and the document format, and
//! how `build` settles them.

use std::time::Duration;

use super::StoreBuilder;
use crate::{
    error::{Error, Result},
    schema::DocumentFormat,
};

impl StoreBuilder {
    /// The longest idle window or absolute lifetime a session may be given
    /// of its own ([`SessionLifetime`](crate::SessionLifetime), "remember
    /// me"): a longer one is clamped to it, when stored and again on every
    /// write. Default: the longer of [`idle_timeout`](Self::idle_timeout) and
    /// [`absolute_timeout`](Self::absolute_timeout), so that without this option a
    /// session can be given a shorter lifetime than the store's, never a
    /// longer one. At most 100 years.
    pub fn lifetime_limit(mut self, limit: Duration) -> Self {
        self.lifetime_limit = Some(limit);
        self
    }

    /// The format of the documents this store writes (default
    /// [`DocumentFormat::V2`], the newest). It reads every format either
    /// way. Set [`DocumentFormat::V1`] for the first step of a rolling
    /// deploy from a release that reads format 1 only, and remove it once
    /// no instance of that release is left (README, *Upgrades and the
    /// document format*). The Express layouts always write format 1 (the
    /// Node stores know no other).
    pub fn document_format(mut self, format: DocumentFormat) -> Self {
        self.document_format = Some(format);
        self
    }

    /// Refuses lifetime and format options that cannot work.
    pub(super) fn validate_lifetimes(&self) -> Result<()> {
        if let Some(limit) = self.lifetime_limit {
            if limit.is_zero() {
                return Err(Error::config("lifetime_limit must be longer than zero"));
            }
        }
        let express = self.layout.value_rules.is_some();
        if express && self.document_format.is_some_and(|f| f > DocumentFormat::V1) {
            return Err(Error::config(
                "the Express layouts write format 1 (the Node stores know no other): \
                 remove document_format",
            ));
        }
        Ok(())
    }

    /// Settles the layout's lifetime limit and format from the options.
    pub(super) fn settle_lifetimes(&mut self) {
        let longest = self
            .layout
            .absolute_timeout
            .map_or(self.config.idle_timeout, |max| {
                max.max(self.config.idle_timeout)
            });
        self.layout.lifetime_limit = self.lifetime_limit.unwrap_or(longest);
        self.layout.format = match (self.document_format, self.layout.value_rules.is_some()) {
            (_, true) => DocumentFormat::V1,
            (Some(format), false) => format,
            (None, false) => DocumentFormat::default(),
        };
    }
}
