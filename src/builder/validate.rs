//! What `build` refuses before connecting: options that cannot work
//! together, names MongoDB rejects, and bounds past what can be computed
//! with or stored.

use std::time::Duration;

use super::StoreBuilder;
use crate::{
    error::{Error, Result},
    options::AutoRemove,
};

/// The longest `idle_timeout`, `absolute_timeout` or removal period accepted.
const MAX_LIFETIME: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
/// The longest timeout accepted.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// MongoDB's document size limit.
const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;
/// The longest `expireAfterSeconds` MongoDB accepts (2³¹−1 s, ~68 years).
const MAX_EXPIRE_AFTER_SECONDS: u64 = i32::MAX as u64;

impl StoreBuilder {
    pub(super) fn validate(&self) -> Result<()> {
        let name = &self.collection;
        if name.is_empty()
            || name.contains('$')
            || name.contains('\0')
            || name.starts_with("system.")
        {
            return Err(Error::config(format!(
                "collection name {name:?} is not valid: it must be non-empty, must not contain \
                 '$' or NUL, and must not start with \"system.\""
            )));
        }
        let fields = &self.layout.fields;
        for field in [&fields.id, &fields.data, &fields.expires]
            .into_iter()
            .chain(fields.created_at.as_ref())
            .chain(fields.last_modified.as_ref())
        {
            if field.is_empty()
                || field.starts_with('$')
                || field.contains('.')
                || field.contains('\0')
            {
                return Err(Error::config(format!(
                    "field name {field:?} is not valid: non-empty, no '.', no NUL, not starting with '$'"
                )));
            }
        }
        if let Some(cache) = &self.cache {
            cache.validate()?;
        }
        let config = &self.config;
        if config.idle_timeout.is_zero() {
            return Err(Error::config("idle_timeout must be longer than zero"));
        }
        if config.touch_after >= config.idle_timeout {
            return Err(Error::config(format!(
                "touch_after ({:?}) must be shorter than idle_timeout ({:?}), or sessions could expire \
                 while their touches are skipped",
                config.touch_after, config.idle_timeout
            )));
        }
        if self.layout.encryption.is_some() && !self.layout.per_key() {
            return Err(Error::config("encryption works with Codec::Bson only"));
        }
        if self.layout.absolute_timeout.is_some()
            && (!self.timestamps || fields.created_at.is_none())
        {
            return Err(Error::config(
                "absolute_timeout needs timestamps (the creation time)",
            ));
        }
        if matches!(self.layout.absolute_timeout, Some(d) if d.is_zero()) {
            return Err(Error::config("absolute_timeout must be longer than zero"));
        }
        self.validate_lifetimes()?;
        if config.session_limit.is_some_and(|limit| limit.max == 0) {
            return Err(Error::config(
                "max_sessions_per_user must be at least 1 (leave it unset for no limit)",
            ));
        }
        if config.max_session_bytes == 0 {
            return Err(Error::config("max_session_bytes must be above zero"));
        }
        if matches!(self.auto_remove, AutoRemove::Interval(p) if p.is_zero()) {
            return Err(Error::config(
                "AutoRemove::Interval needs a period above zero",
            ));
        }
        if self.connect_timeout.is_zero() || config.operation_timeout.is_zero() {
            return Err(Error::config("timeouts must be longer than zero"));
        }
        self.validate_bounds()
    }

    /// Durations and sizes past what can be computed with or stored: refused
    /// here rather than overflowing on some later request.
    fn validate_bounds(&self) -> Result<()> {
        let config = &self.config;
        let lifetimes = [
            ("idle_timeout", Some(config.idle_timeout)),
            ("absolute_timeout", self.layout.absolute_timeout),
            ("lifetime_limit", self.lifetime_limit),
            (
                "AutoRemove::Interval",
                match self.auto_remove {
                    AutoRemove::Interval(period) => Some(period),
                    _ => None,
                },
            ),
        ];
        for (name, value) in lifetimes {
            if value.is_some_and(|d| d > MAX_LIFETIME) {
                return Err(Error::config(format!(
                    "{name} must be at most 100 years, not {value:?}"
                )));
            }
        }
        let timeouts = [
            ("operation_timeout", config.operation_timeout),
            ("connect_timeout", self.connect_timeout),
        ];
        for (name, value) in timeouts {
            if value > MAX_TIMEOUT {
                return Err(Error::config(format!(
                    "{name} must be at most a day, not {value:?}"
                )));
            }
        }
        let expire_after = self.index_spec().ttl.map(|ttl| ttl.expire_after.as_secs());
        if let Some(seconds) = expire_after.filter(|s| *s > MAX_EXPIRE_AFTER_SECONDS) {
            return Err(Error::config(format!(
                "the TTL index's expireAfterSeconds must be at most {MAX_EXPIRE_AFTER_SECONDS} \
                 (MongoDB's limit, ~68 years), not {seconds}: set a shorter expire_after (with \
                 cosmos_db(), a shorter idle_timeout)"
            )));
        }
        if config.max_session_bytes > MAX_DOCUMENT_BYTES {
            return Err(Error::config(format!(
                "max_session_bytes must be at most 16 MiB (MongoDB's document limit), not {}",
                config.max_session_bytes
            )));
        }
        Ok(())
    }
}

pub(super) fn validate_database_name(name: &str) -> Result<()> {
    let bad = name.is_empty() || name.len() > 63 || name.chars().any(|c| "/\\. \"$\0".contains(c));
    if bad {
        return Err(Error::config(format!(
            "database name {name:?} is not valid: 1–63 characters, none of / \\ . space \" $ NUL"
        )));
    }
    Ok(())
}
