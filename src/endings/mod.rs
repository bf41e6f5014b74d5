//! Endings: the database's record that a session ended, which every
//! instance consults before it stores a session again.
//!
//! A session ends by a logout (`delete`), a revocation, or the old id of a
//! regeneration. The frameworks regenerate an id as "delete the old id,
//! create the data anew under a new one", two calls the store cannot tell
//! from a logout followed by something else. So every ending is recorded,
//! and the create of a regeneration decides, against the record, whether the
//! ending it follows was its own.
//!
//! One record per *lineage* — the chain of ids one device's session has
//! had through its regenerations — in the collection `<sessions>.endings`:
//!
//! ```text
//! { _id:     "<lineage>",
//!   ids:     ["<stored id>", …],    // the ended ids of the lineage (multikey index)
//!   user:    "<owner>",             // when the session had one (partial index)
//!   v:       NumberLong,            // +1 on every change, for conditional writes
//!   events:  [ { t: "<token>", s: 0 | 1 | 2, b: "<successor's stored id>" }, … ],
//!   expires: ISODate }              // TTL: the record outlives every race it decides
//! ```
//!
//! Every ending appends an event (`s: 0`, open) in the order the server
//! applies them. A regeneration's create claims the event its own delete
//! appended (`s: 1`, with the new id) and reads the others in the same
//! atomic update; [`decide`] then says whether it may keep the new session.
//! A logout's or a revocation's event is never claimed: a regeneration that
//! started before it loses. Everything one lineage's endings and
//! regenerations decide goes through this one document, so the server's
//! order of updates on it is the order of the race.

mod decide;
mod pending;

pub(crate) use decide::{decide, Event, Status, Verdict};
pub(crate) use pending::Pending;

use std::time::Duration;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use mongodb::bson::{doc, Bson, DateTime, Document};

/// How long an ending is remembered after its last event: far longer than a
/// request takes between loading a session and regenerating it. A
/// regeneration that takes longer finds no record of its own ending and
/// stores nothing (the user signs in again); nothing else depends on it.
pub(crate) const RETENTION: Duration = Duration::from_secs(60 * 60);

/// The endings collection's name beside the sessions collection.
pub(crate) fn collection_name(sessions: &str) -> String {
    format!("{sessions}.endings")
}

/// A fresh event token: 128 random bits.
pub(crate) fn token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("operating system random number generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The update appending an open event `token` to a lineage's record,
/// remembering `ended` among its ids and `user` as its owner.
pub(crate) fn append(
    token: &str,
    ended: Option<&str>,
    user: Option<&str>,
    now: DateTime,
) -> Document {
    let mut update = doc! {
        "$push": { "events": { "t": token, "s": Status::Open as i32 } },
        "$inc": { "v": 1_i64 },
        "$set": { "expires": retained_from(now) },
    };
    if let Some(ended) = ended {
        update.insert("$addToSet", doc! { "ids": ended });
    }
    if let Some(user) = user {
        update.insert("$setOnInsert", doc! { "user": user });
    }
    update
}

/// The update claiming event `token` for the regeneration that stored
/// `successor` (the filter names the event: `events.t`).
pub(crate) fn claim(successor: &str, now: DateTime) -> Document {
    doc! {
        "$set": {
            "events.$.s": Status::Claimed as i32,
            "events.$.b": successor,
            "expires": retained_from(now),
        },
        "$inc": { "v": 1_i64 },
    }
}

/// The update marking event `token` as a regeneration that gave way.
pub(crate) fn give_way() -> Document {
    doc! { "$set": { "events.$.s": Status::Yielded as i32 }, "$inc": { "v": 1_i64 } }
}

fn retained_from(now: DateTime) -> DateTime {
    now.saturating_add_duration(RETENTION)
}

/// A lineage's record as read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) v: i64,
    pub(crate) events: Vec<Event>,
}

impl Record {
    /// Reads a record; anything malformed in an event makes it count as
    /// open (an ending no regeneration can claim), so damage errs on the
    /// side of ending sessions.
    pub(crate) fn parse(document: &Document) -> Self {
        let v = match document.get("v") {
            Some(Bson::Int64(v)) => *v,
            Some(Bson::Int32(v)) => i64::from(*v),
            _ => 0,
        };
        let events = document
            .get_array("events")
            .map(|events| events.iter().map(Event::parse).collect())
            .unwrap_or_default();
        Self { v, events }
    }

    /// The stored ids of the sessions that regenerations of this lineage
    /// have stored (and may still be live): whatever ends the lineage now
    /// ends them too.
    pub(crate) fn successors(&self) -> impl Iterator<Item = &str> {
        self.events
            .iter()
            .filter(|e| e.status == Status::Claimed)
            .filter_map(|e| e.successor.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_damage_counts_as_open() {
        let document = doc! {
            "_id": "L", "v": 3_i64,
            "events": [
                { "t": "a", "s": 1, "b": "B" },
                { "t": "b", "s": 2 },
                { "t": "c", "s": "nonsense" },
                "not an event",
            ],
        };
        let record = Record::parse(&document);
        assert_eq!(record.v, 3);
        let statuses: Vec<Status> = record.events.iter().map(|e| e.status).collect();
        assert_eq!(
            statuses,
            [Status::Claimed, Status::Yielded, Status::Open, Status::Open]
        );
        assert_eq!(record.successors().collect::<Vec<_>>(), ["B"]);
    }

    #[test]
    fn tokens_are_fresh() {
        assert_ne!(token(), token());
        assert_eq!(token().len(), 22);
    }
}
