//! Reading a session document back: every field checked, a wrong one
//! named in the error.

use mongodb::bson::{DateTime, Document, RawBsonRef, RawDocument, RawDocumentBuf};
use serde_json::{Map, Value};

use super::{aad, format_of, Decoded, Layout, StaleKey, IP, LINEAGE_FIELD, USER, USER_AGENT};
use crate::{
    codec::{malformed, too_deep, wrong_type, MAX_VALUE_DEPTH},
    crypto::KeyRing,
    error::{Error, Result},
    lifetime::decode_stored,
    user::UserInfo,
};

impl Layout {
    /// Decodes a document the driver parsed (the colder paths: listing,
    /// rewrapping, migrating), by the one decoder, [`decode_raw`](Self::decode_raw).
    pub(crate) fn decode(&self, document: &Document) -> Result<Decoded> {
        let raw =
            RawDocumentBuf::from_document(document).map_err(|e| malformed(&self.fields.id, &e))?;
        self.decode_raw(&raw)
    }

    /// Decodes a session document straight from the bytes the server sent:
    /// no intermediate [`Document`], each value converted once.
    pub(crate) fn decode_raw(&self, document: &RawDocument) -> Result<Decoded> {
        let fields = &self.fields;
        // First: a newer format's fields may not mean what this release
        // would read into them.
        let format = format_of(document)?;
        let stored_id = match field(document, &fields.id)? {
            Some(RawBsonRef::String(id)) => id.to_string(),
            Some(other) => return Err(wrong_type(&fields.id, "a string", other.element_type())),
            None => return Err(Error::decode(&fields.id, "missing")),
        };
        let stored =
            field(document, &fields.data)?.ok_or_else(|| Error::decode(&fields.data, "missing"))?;
        let (data, stale) = match &self.encryption {
            Some(ring) => self.decrypt_values(ring, &stored_id, stored)?,
            None => (self.codec.decode(&fields.data, stored)?, Vec::new()),
        };
        // Stored by something that does not enforce MongoDB's depth limit:
        // no write of it could succeed, so it is as good as unreadable.
        if let Some((key, _)) = data.iter().find(|(_, v)| too_deep(v, MAX_VALUE_DEPTH)) {
            let path = format!("{}.{key}", fields.data);
            return Err(Error::decode(path, "nested deeper than MongoDB stores"));
        }
        let expires = optional_date(document, &fields.expires)?
            .ok_or_else(|| Error::decode(&fields.expires, "missing"))?;
        Ok(Decoded {
            data,
            expires,
            created_at: optional_named_date(document, fields.created_at.as_deref())?,
            last_modified: optional_named_date(document, fields.last_modified.as_deref())?,
            version: self.version(document)?,
            user: decode_user(document),
            lineage: document.get_str(LINEAGE_FIELD).ok().map(str::to_string),
            lifetime: decode_stored(document)?,
            format,
            stale,
            stored_id,
        })
    }

    fn decrypt_values(
        &self,
        ring: &KeyRing,
        stored_id: &str,
        stored: RawBsonRef<'_>,
    ) -> Result<(Map<String, Value>, Vec<StaleKey>)> {
        let data_field = &self.fields.data;
        let RawBsonRef::Document(entries) = stored else {
            return Err(wrong_type(
                data_field,
                "a document of ciphertexts",
                stored.element_type(),
            ));
        };
        let mut data = Map::new();
        let mut stale = Vec::new();
        for entry in entries {
            let (field, value) = entry.map_err(|e| malformed(data_field, &e))?;
            let path = || format!("{data_field}.{field}");
            let RawBsonRef::Binary(binary) = value else {
                return Err(wrong_type(&path(), "a ciphertext", value.element_type()));
            };
            let (plaintext, key_id) = ring
                .open(aad(stored_id, field).as_bytes(), binary.bytes)
                .map_err(|reason| Error::decode(path(), reason))?;
            let (key, value): (String, Value) = serde_json::from_slice(&plaintext)
                .map_err(|_| Error::decode(path(), "decrypted to something unexpected"))?;
            if key_id != ring.primary_id() || field != self.field_name(&key) {
                stale.push((key.clone(), field.to_string()));
            }
            data.insert(key, value);
        }
        Ok((data, stale))
    }

    fn version(&self, document: &RawDocument) -> Result<Option<i64>> {
        let Some(name) = &self.fields.version else {
            return Ok(None);
        };
        match field(document, name)? {
            None => Ok(None),
            // A write adds one: at the maximum, no write could ever succeed.
            Some(RawBsonRef::Int64(i64::MAX)) => Err(Error::decode(name, "at its maximum")),
            Some(RawBsonRef::Int64(n)) => Ok(Some(n)),
            Some(RawBsonRef::Int32(n)) => Ok(Some(i64::from(n))),
            Some(other) => Err(wrong_type(name, "an integer", other.element_type())),
        }
    }
}

/// The value of top-level field `name`, if present.
fn field<'a>(document: &'a RawDocument, name: &str) -> Result<Option<RawBsonRef<'a>>> {
    document.get(name).map_err(|e| malformed(name, &e))
}

fn decode_user(document: &RawDocument) -> Option<UserInfo> {
    let text = |name: &str| document.get_str(name).ok().map(str::to_string);
    Some(UserInfo {
        user: text(USER)?,
        user_agent: text(USER_AGENT),
        ip: text(IP),
    })
}

fn optional_named_date(document: &RawDocument, name: Option<&str>) -> Result<Option<DateTime>> {
    name.map_or(Ok(None), |name| optional_date(document, name))
}

pub(crate) fn optional_date(document: &RawDocument, name: &str) -> Result<Option<DateTime>> {
    match field(document, name)? {
        None | Some(RawBsonRef::Null) => Ok(None),
        Some(RawBsonRef::DateTime(dt)) => Ok(Some(dt)),
        Some(other) => Err(wrong_type(name, "a date", other.element_type())),
    }
}
