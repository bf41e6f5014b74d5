//! The frameworks' own session types, as their adapters receive them.

#[cfg(feature = "tower-sessions")]
pub use tower::{record, record_with_id, tower_session};

#[cfg(feature = "actix-session")]
pub use actix::{key, state, ACTIX_TTL};

#[cfg(feature = "tower-sessions")]
mod tower {
    use mongodb_session_store::MongoSessionStore;
    use serde_json::Value;
    use tower_sessions_core::{
        session::{Id, Record},
        SessionStore,
    };

    /// A tower-sessions record of `data` (a JSON object) under a new id,
    /// expiring in an hour.
    pub fn record(data: Value) -> Record {
        record_with_id(Id::default(), data)
    }

    /// A tower-sessions record of `data` (a JSON object) under `id`,
    /// expiring in an hour.
    pub fn record_with_id(id: Id, data: Value) -> Record {
        Record {
            id,
            data: super::super::map(data).into_iter().collect(),
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        }
    }

    /// A session of `data` (a JSON object) created through tower-sessions'
    /// `SessionStore::create`: the record as the store left it (its id
    /// may be another than the one it was given).
    pub async fn tower_session(store: &MongoSessionStore, data: Value) -> Record {
        let mut record = record(data);
        SessionStore::create(store, &mut record).await.unwrap();
        record
    }
}

#[cfg(feature = "actix-session")]
mod actix {
    use std::collections::HashMap;

    use actix_session::storage::SessionKey;

    /// The TTL actix-session passes with a session: an hour.
    pub const ACTIX_TTL: time::Duration = time::Duration::hours(1);

    /// An actix-session state: each value is JSON text.
    pub fn state(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// `value` as an actix-session key.
    pub fn key(value: &str) -> SessionKey {
        SessionKey::try_from(value.to_string()).unwrap()
    }
}
