//! The document format: which version of the layout a document is in, so
//! that a release never decodes wrongly, nor overwrites, a document a newer
//! release wrote.
//!
//! A document says its format in a top-level `format` field; one without it
//! is format 1, everything this crate wrote before the field existed.
//! Format 2 adds a session's own lifetime (`lifetime`): a field a format-1
//! reader would ignore, extending a 12-hour session to the store's 14 days. Every write of this release
//! sets the format it writes (see [`DocumentFormat`]), and no write matches
//! a document of a newer format than it reads ([`Layout::newer_excluded`]).

use mongodb::bson::{doc, Bson, Document, RawBsonRef, RawDocument};

use super::Layout;
use crate::{
    error::{Error, Result},
    lifetime::SessionLifetime,
};

/// The top-level field naming a document's format.
pub(crate) const FORMAT_FIELD: &str = "format";

/// The newest format this release reads (and the one it writes by default).
pub(crate) const CURRENT: i64 = 2;

/// The format of the documents a store writes
/// ([`StoreBuilder::document_format`](crate::StoreBuilder::document_format)).
///
/// Every release reads every earlier format; a release that meets a
/// document of a newer one answers it with an error for which
/// [`Error::is_newer_format`](crate::Error::is_newer_format) is true and
/// never writes it. To move a deployment to a new format without showing
/// anyone that error, deploy a release that reads it while still writing
/// the old one ([`DocumentFormat::V1`]), and only once no older instance is
/// left, let it write the new one (the default): see the README, *Upgrades
/// and the document format*.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
#[non_exhaustive]
pub enum DocumentFormat {
    /// Format 1, what releases before the `format` field wrote: for the
    /// first step of a rolling deploy, while instances of such a release
    /// still run. Documents are written without a `format` field and never
    /// upgraded; a format-2 document stays format 2. A session's own
    /// lifetime cannot be set meanwhile (a format-1 reader would ignore
    /// it): such a write fails with
    /// [`Error::is_config`](crate::Error::is_config).
    V1,
    /// Format 2 (the default): `format: 2` and a session's own lifetime. A
    /// write upgrades the document it writes.
    #[default]
    V2,
}

impl DocumentFormat {
    /// The format's number, as documents store it.
    pub fn number(self) -> u32 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }
}

impl Layout {
    /// `format: n` for a `$set` or a new document, when this store writes a
    /// format that says so.
    pub(crate) fn format_stamp(&self) -> Option<(String, Bson)> {
        (self.format >= DocumentFormat::V2).then(|| {
            let number = i32::try_from(self.format.number()).unwrap_or(i32::MAX);
            (FORMAT_FIELD.to_string(), Bson::Int32(number))
        })
    }

    /// Adds to a write's filter: not a document of a newer format than
    /// this release reads (`$not` also matches documents without the field).
    pub(crate) fn newer_excluded(&self, filter: &mut Document) {
        filter.insert(FORMAT_FIELD, doc! { "$not": { "$gt": CURRENT } });
    }
}

impl Layout {
    /// Refuses to store `own` lifetime where it could not be honoured: in
    /// a document of format 1 (`loaded_format`; `None` for a new one or one
    /// not loaded) while this store writes format 1 — an instance of an
    /// older release would ignore it — and, for an absolute lifetime,
    /// without the creation time it counts from.
    ///
    /// # Errors
    ///
    /// [`Error::is_config`] naming what to change.
    pub(crate) fn may_store_lifetime(
        &self,
        own: SessionLifetime,
        loaded_format: Option<i64>,
    ) -> Result<()> {
        if own.absolute_timeout.is_some() && self.fields.created_at.is_none() {
            return Err(Error::config(
                "a session's own absolute_timeout needs timestamps (the creation time)",
            ));
        }
        let format_2 = loaded_format.is_some_and(|f| f >= 2);
        if self.format >= DocumentFormat::V2 || format_2 {
            return Ok(());
        }
        Err(Error::config(if self.value_rules.is_some() {
            "a session's own lifetime cannot be stored in a layout shared with an Express app: \
             the Node store would ignore it"
        } else {
            "a session's own lifetime needs document_format(DocumentFormat::V2): an instance of \
             a release that reads format 1 only would ignore it (README: Upgrades and the \
             document format)"
        }))
    }
}

/// The format `document` says it is in.
///
/// # Errors
///
/// [`Error::is_newer_format`] for one this release does not read;
/// [`Error::is_decode`] for a `format` that is not a positive integer.
pub(crate) fn format_of(document: &RawDocument) -> Result<i64> {
    let format = match document.get(FORMAT_FIELD) {
        Ok(None) => return Ok(1),
        Ok(Some(RawBsonRef::Int32(n))) => i64::from(n),
        Ok(Some(RawBsonRef::Int64(n))) => n,
        Ok(Some(other)) => {
            let found = format!("expected an integer, found {:?}", other.element_type());
            return Err(Error::decode(FORMAT_FIELD, found));
        }
        Err(e) => return Err(Error::decode(FORMAT_FIELD, format!("malformed BSON: {e}"))),
    };
    match format {
        n if n > CURRENT => Err(Error::newer_format(n, CURRENT)),
        n if n < 1 => Err(Error::decode(FORMAT_FIELD, format!("{n} is not a format"))),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::rawdoc;

    use super::*;

    #[test]
    fn documents_without_the_field_are_format_1_and_newer_ones_are_refused() {
        assert_eq!(format_of(&rawdoc! {}).unwrap(), 1);
        assert_eq!(format_of(&rawdoc! { "format": 2 }).unwrap(), 2);
        assert_eq!(format_of(&rawdoc! { "format": 2_i64 }).unwrap(), 2);
        let newer = format_of(&rawdoc! { "format": 99 }).unwrap_err();
        assert!(newer.is_newer_format() && !newer.is_decode(), "{newer}");
        assert!(newer.to_string().contains("format 99"), "{newer}");
        assert!(newer.to_string().contains("up to 2"), "{newer}");
        for bad in [
            rawdoc! { "format": "2" },
            rawdoc! { "format": 0 },
            rawdoc! { "format": 2.0 },
        ] {
            let error = format_of(&bad).unwrap_err();
            assert_eq!(error.decode_field(), Some("format"), "{error}");
        }
    }

    #[test]
    fn a_store_writing_format_1_stamps_nothing() {
        let v1 = Layout {
            format: DocumentFormat::V1,
            ..Layout::default()
        };
        assert_eq!(v1.format_stamp(), None);
        assert_eq!(
            Layout::default().format_stamp(),
            Some((FORMAT_FIELD.to_string(), Bson::Int32(2)))
        );
        let mut filter = doc! { "_id": "x" };
        v1.newer_excluded(&mut filter);
        assert_eq!(
            filter,
            doc! { "_id": "x", "format": { "$not": { "$gt": 2_i64 } } }
        );
    }
}
