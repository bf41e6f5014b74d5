//! Reading a session document back: every field checked, a wrong one
//! named in the error.

use mongodb::bson::{Bson, DateTime, Document};
use serde_json::{Map, Value};

use super::{aad, Decoded, Layout, StaleKey, IP, USER, USER_AGENT};
use crate::{
    codec::{too_deep, wrong_type, MAX_VALUE_DEPTH},
    crypto::KeyRing,
    error::{Error, Result},
    user::UserInfo,
};

impl Layout {
    pub(crate) fn decode(&self, document: &Document) -> Result<Decoded> {
        let fields = &self.fields;
        let stored_id = match document.get(&fields.id) {
            Some(Bson::String(id)) => id.clone(),
            Some(other) => return Err(wrong_type(&fields.id, "a string", other)),
            None => return Err(Error::decode(&fields.id, "missing")),
        };
        let stored = document
            .get(&fields.data)
            .ok_or_else(|| Error::decode(&fields.data, "missing"))?;
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
            stale,
            stored_id,
        })
    }

    fn decrypt_values(
        &self,
        ring: &KeyRing,
        stored_id: &str,
        stored: &Bson,
    ) -> Result<(Map<String, Value>, Vec<StaleKey>)> {
        let data_field = &self.fields.data;
        let Bson::Document(entries) = stored else {
            return Err(wrong_type(data_field, "a document of ciphertexts", stored));
        };
        let mut data = Map::new();
        let mut stale = Vec::new();
        for (field, value) in entries {
            let path = || format!("{data_field}.{field}");
            let Bson::Binary(binary) = value else {
                return Err(wrong_type(&path(), "a ciphertext", value));
            };
            let (plaintext, key_id) = ring
                .open(aad(stored_id, field).as_bytes(), &binary.bytes)
                .map_err(|reason| Error::decode(path(), reason))?;
            let (key, value): (String, Value) = serde_json::from_slice(&plaintext)
                .map_err(|_| Error::decode(path(), "decrypted to something unexpected"))?;
            if key_id != ring.primary_id() || *field != self.field_name(&key) {
                stale.push((key.clone(), field.clone()));
            }
            data.insert(key, value);
        }
        Ok((data, stale))
    }

    fn version(&self, document: &Document) -> Result<Option<i64>> {
        let Some(field) = &self.fields.version else {
            return Ok(None);
        };
        match document.get(field) {
            None => Ok(None),
            // A write adds one: at the maximum, no write could ever succeed.
            Some(Bson::Int64(i64::MAX)) => Err(Error::decode(field, "at its maximum")),
            Some(Bson::Int64(n)) => Ok(Some(*n)),
            Some(Bson::Int32(n)) => Ok(Some(i64::from(*n))),
            Some(other) => Err(wrong_type(field, "an integer", other)),
        }
    }
}

fn decode_user(document: &Document) -> Option<UserInfo> {
    let text = |name: &str| document.get_str(name).ok().map(str::to_string);
    Some(UserInfo {
        user: text(USER)?,
        user_agent: text(USER_AGENT),
        ip: text(IP),
    })
}

fn optional_named_date(document: &Document, field: Option<&str>) -> Result<Option<DateTime>> {
    field.map_or(Ok(None), |name| optional_date(document, name))
}

pub(crate) fn optional_date(document: &Document, field: &str) -> Result<Option<DateTime>> {
    match document.get(field) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::DateTime(dt)) => Ok(Some(*dt)),
        Some(other) => Err(wrong_type(field, "a date", other)),
    }
}
