//! The store and its operations, independent of any web framework.

use std::{
    fmt,
    future::IntoFuture,
    sync::Arc,
    time::{Duration, SystemTime},
};

use mongodb::{
    bson::{doc, Bson, DateTime, Document},
    error::{ErrorKind, WriteFailure},
    Client, Collection,
};
use serde_json::{Map, Value};

use crate::{
    builder::{is_unreachable, StoreBuilder},
    codec::{document_to_object, object_to_document},
    error::{Error, Result},
    id::{generate_id, is_plausible, RedactedId},
    schema::Fields,
    snapshot::{split, Snapshot, UserEntries, RESERVED_KEY},
    write::{plan_save, Clock, Plan},
};

const DUPLICATE_KEY: i32 = 11000;
const MAX_CREATE_ATTEMPTS: u32 = 8;

/// Tunables that do not change the document layout.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) ttl: Duration,
    pub(crate) touch_after: Duration,
    pub(crate) operation_timeout: Duration,
    pub(crate) max_session_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(14 * 24 * 60 * 60),
            touch_after: Duration::ZERO,
            operation_timeout: Duration::from_secs(10),
            max_session_bytes: 1024 * 1024,
        }
    }
}

/// A MongoDB session store.
///
/// Cheap to clone (an `Arc` inside); clones share the connection pool.
/// Framework integration lives in [`crate::tower`]; the methods here are the
/// framework-independent core that the adapters translate to.
#[derive(Clone)]
pub struct MongoSessionStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    owns_client: bool,
    collection: Collection<Document>,
    fields: Fields,
    config: Config,
}

/// A session as [`MongoSessionStore::load`] found it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoadedSession {
    /// The session's values.
    pub data: Map<String, Value>,
    /// When the stored session expires.
    pub expires: SystemTime,
    /// When the session was created, if the document records it.
    pub created_at: Option<SystemTime>,
    /// When the session was last written or touched, if recorded.
    pub last_modified: Option<SystemTime>,
    snapshot: Snapshot,
}

impl LoadedSession {
    /// The values plus the reserved entry that lets a later
    /// [`save`](MongoSessionStore::save) write only what changed. Adapters
    /// hand this map to the framework.
    pub fn into_tracked_data(self) -> Map<String, Value> {
        let mut data = self.data;
        data.insert(RESERVED_KEY.to_string(), self.snapshot.to_value());
        data
    }
}

/// What a [`save`](MongoSessionStore::save) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaveOutcome {
    /// Changed values were written.
    Updated,
    /// Nothing changed; only the expiry moved.
    Touched,
    /// Nothing changed and no touch was due (`touch_after`): no write.
    Unchanged,
    /// The session no longer exists (deleted or expired meanwhile). Nothing
    /// was written: a late save never brings a session back.
    Missing,
}

impl MongoSessionStore {
    /// Starts building a store that opens its own client from `uri` (and
    /// closes it on [`close`](Self::close)).
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), mongodb_session_store::Error> {
    /// use mongodb_session_store::MongoSessionStore;
    ///
    /// let store = MongoSessionStore::from_uri("mongodb://localhost:27017/app")
    ///     .collection("sessions")
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn from_uri(uri: impl Into<String>) -> StoreBuilder {
        StoreBuilder::from_uri(uri)
    }

    /// Starts building a store on an existing client, which is used as is and
    /// never closed by the store.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use mongodb_session_store::MongoSessionStore;
    ///
    /// let client = mongodb::Client::with_uri_str("mongodb://localhost:27017").await?;
    /// let store = MongoSessionStore::from_client(client)
    ///     .database("app")
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn from_client(client: Client) -> StoreBuilder {
        StoreBuilder::from_client(client)
    }

    pub(crate) fn new(
        client: Client,
        owns_client: bool,
        collection: Collection<Document>,
        fields: Fields,
        config: Config,
    ) -> Self {
        let inner = Inner {
            client,
            owns_client,
            collection,
            fields,
            config,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The collection sessions are stored in.
    pub fn collection(&self) -> &Collection<Document> {
        &self.inner.collection
    }

    /// The fallback expiry used when a framework gives none.
    pub fn ttl(&self) -> Duration {
        self.inner.config.ttl
    }

    /// Loads a live session: `None` if there is none, or it has expired
    /// (even if the server has not removed it yet).
    ///
    /// # Errors
    ///
    /// [`Error::is_decode`] if the stored document is malformed (the error
    /// names the field); timeouts and server errors as for every operation.
    pub async fn load(&self, id: &str) -> Result<Option<LoadedSession>> {
        if !is_plausible(id) {
            return Ok(None);
        }
        let fields = &self.inner.fields;
        let filter = doc! {
            &fields.id: id,
            &fields.expires: { "$gt": DateTime::now() },
        };
        let found = self
            .run("find", self.inner.collection.find_one(filter))
            .await?;
        found.map(|doc| decode(fields, &doc)).transpose()
    }

    /// Stores a new session under a fresh id from the store's CSPRNG and
    /// returns that id.
    ///
    /// # Errors
    ///
    /// [`Error::is_encode`] if `data` cannot be stored; server errors.
    pub async fn create(&self, data: &Map<String, Value>, expires: SystemTime) -> Result<String> {
        self.create_with(generate_id, data, expires).await
    }

    /// Stores a new session under the first id `next_id` yields that is not
    /// taken, and returns it. An id collision never overwrites the existing
    /// session: the insert fails on the unique `_id` and the next id is tried
    /// (at most eight in all).
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create), plus [`Error::is_id_exhausted`] if every
    /// id drawn was taken.
    pub async fn create_with(
        &self,
        mut next_id: impl FnMut() -> String,
        data: &Map<String, Value>,
        expires: SystemTime,
    ) -> Result<String> {
        let (entries, snapshot) = split(data);
        self.check_size(entries)?;
        let values = object_to_document(&entries.to_map());
        let now = DateTime::now();
        // An id regenerated mid-session (login) keeps its creation time, so
        // an absolute lifetime cannot be extended by cycling the id.
        let created_at = snapshot
            .and_then(|s| s.created_at)
            .map_or(now, DateTime::from_millis);
        let fields = &self.inner.fields;
        for _ in 0..MAX_CREATE_ATTEMPTS {
            let id = next_id();
            let document = doc! {
                &fields.id: &id,
                &fields.data: values.clone(),
                &fields.expires: DateTime::from_system_time(expires),
                &fields.created_at: created_at,
                &fields.last_modified: now,
            };
            let insert = self.inner.collection.insert_one(document);
            match self.run("insert", insert).await {
                Ok(_) => return Ok(id),
                Err(e) if is_duplicate_key(&e) => {
                    tracing::warn!(session = %RedactedId::new(&id), "session id collision; drawing another");
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::id_exhausted(MAX_CREATE_ATTEMPTS))
    }

    /// Saves an existing session: only the values that differ from what
    /// [`load`](Self::load) returned are written (if `data` came from
    /// [`LoadedSession::into_tracked_data`]; otherwise all of them), and an
    /// unchanged session is only touched, subject to `touch_after`.
    ///
    /// It never creates a session: if the session was deleted or expired
    /// meanwhile, nothing is written and [`SaveOutcome::Missing`] is returned.
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn save(
        &self,
        id: &str,
        data: &Map<String, Value>,
        expires: SystemTime,
    ) -> Result<SaveOutcome> {
        if !is_plausible(id) {
            return Ok(SaveOutcome::Missing);
        }
        let clock = Clock {
            now: DateTime::now(),
            expires: DateTime::from_system_time(expires),
            touch_after: self.inner.config.touch_after,
        };
        let (update, outcome) = match plan_save(&self.inner.fields, data, clock) {
            Plan::Skip => return Ok(SaveOutcome::Unchanged),
            Plan::Update(update) => {
                self.check_size(split(data).0)?;
                (update, SaveOutcome::Updated)
            }
            Plan::Touch(update) => (update, SaveOutcome::Touched),
        };
        let filter = self.live_filter(id, clock.now);
        let result = self
            .run("update", self.inner.collection.update_one(filter, update))
            .await?;
        Ok(if result.matched_count == 0 {
            SaveOutcome::Missing
        } else {
            outcome
        })
    }

    /// Deletes a session; `true` if there was one.
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn delete(&self, id: &str) -> Result<bool> {
        if !is_plausible(id) {
            return Ok(false);
        }
        let filter = doc! { &self.inner.fields.id: id };
        let result = self
            .run("delete", self.inner.collection.delete_one(filter))
            .await?;
        Ok(result.deleted_count > 0)
    }

    /// Deletes every expired session and returns how many. Only needed with
    /// [`AutoRemove::Disabled`](crate::AutoRemove::Disabled); the TTL index
    /// does this otherwise.
    ///
    /// # Errors
    ///
    /// Server errors and timeouts.
    pub async fn delete_expired(&self) -> Result<u64> {
        let filter = doc! { &self.inner.fields.expires: { "$lte": DateTime::now() } };
        let result = self
            .run("deleteMany", self.inner.collection.delete_many(filter))
            .await?;
        Ok(result.deleted_count)
    }

    /// Closes the client if the store opened it (built with
    /// [`from_uri`](Self::from_uri)); a client passed to
    /// [`from_client`](Self::from_client) is left open for its owner.
    pub async fn close(&self) {
        if self.inner.owns_client {
            self.inner.client.clone().shutdown().await;
        }
    }

    fn check_size(&self, entries: UserEntries<'_>) -> Result<()> {
        let limit = self.inner.config.max_session_bytes;
        let size = entries.json_size();
        if size > limit {
            return Err(Error::encode(format!(
                "the session's values take {size} bytes as JSON, over the limit of {limit} \
                 (max_session_bytes)"
            )));
        }
        Ok(())
    }

    fn live_filter(&self, id: &str, now: DateTime) -> Document {
        let fields = &self.inner.fields;
        doc! { &fields.id: id, &fields.expires: { "$gt": now } }
    }

    /// Runs one driver operation within the operation timeout, mapping its
    /// failure to this crate's error.
    async fn run<T>(
        &self,
        operation: &'static str,
        action: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<T> {
        let bound = self.inner.config.operation_timeout;
        match tokio::time::timeout(bound, action.into_future()).await {
            Err(_) => Err(Error::timeout(operation, bound)),
            Ok(Err(e)) if is_unreachable(&e) => Err(Error::unreachable(bound, Some(e))),
            Ok(Err(e)) => Err(Error::database(operation, e)),
            Ok(Ok(value)) => Ok(value),
        }
    }
}

impl fmt::Debug for MongoSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoSessionStore")
            .field("namespace", &self.inner.collection.namespace().to_string())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn is_duplicate_key(error: &Error) -> bool {
    error.driver_error().is_some_and(|e| {
        matches!(&*e.kind, ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == DUPLICATE_KEY)
    })
}

fn decode(fields: &Fields, document: &Document) -> Result<LoadedSession> {
    let data = match document.get(&fields.data) {
        Some(Bson::Document(values)) => document_to_object(values, &|| fields.data.clone())?,
        Some(other) => return Err(wrong_type(&fields.data, "a document", other)),
        None => return Err(Error::decode(&fields.data, "missing")),
    };
    let expires = required_date(document, &fields.expires)?;
    let created_at = optional_date(document, &fields.created_at)?;
    let last_modified = optional_date(document, &fields.last_modified)?;
    let mut snapshot = Snapshot::of(&data);
    snapshot.expires = expires.timestamp_millis();
    snapshot.created_at = created_at.map(|d| d.timestamp_millis());
    snapshot.last_modified = last_modified.map(|d| d.timestamp_millis());
    Ok(LoadedSession {
        data,
        expires: expires.to_system_time(),
        created_at: created_at.map(DateTime::to_system_time),
        last_modified: last_modified.map(DateTime::to_system_time),
        snapshot,
    })
}

fn required_date(document: &Document, field: &str) -> Result<DateTime> {
    optional_date(document, field)?.ok_or_else(|| Error::decode(field, "missing"))
}

fn optional_date(document: &Document, field: &str) -> Result<Option<DateTime>> {
    match document.get(field) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::DateTime(dt)) => Ok(Some(*dt)),
        Some(other) => Err(wrong_type(field, "a date", other)),
    }
}

fn wrong_type(field: &str, expected: &str, found: &Bson) -> Error {
    Error::decode(
        field,
        format!("expected {expected}, found {:?}", found.element_type()),
    )
}
