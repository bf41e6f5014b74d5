//! `build`: connecting, checking the server answers, ensuring the indexes,
//! starting background tasks.

use std::time::Duration;

use mongodb::{
    bson::{doc, Document},
    change_stream::ChangeStream,
    Collection,
};

use super::{
    client::{client_from_options, parse_uri},
    Source, StoreBuilder,
};
use crate::{
    cache::{open_stream, CacheMode, ReadCache, SessionCache},
    error::{Error, Result},
    index::{ensure_endings_indexes, IndexSpec, TtlIndex},
    options::AutoRemove,
    schema::Layout,
    store::MongoSessionStore,
};

impl StoreBuilder {
    /// Validates the options, connects (for a URI), checks that the server
    /// answers within [`connect_timeout`](Self::connect_timeout), ensures the
    /// indexes, and starts background removal and the cache's change stream
    /// if asked.
    ///
    /// # Errors
    ///
    /// - [`Error::is_config`](crate::Error::is_config): invalid options, an unparsable URI, or no
    ///   database named anywhere;
    /// - [`Error::is_unreachable`](crate::Error::is_unreachable): no server answered in time;
    /// - [`Error::is_index_conflict`](crate::Error::is_index_conflict): an index on the expiry field disagrees
    ///   with this configuration in a way [`index_repair`](Self::index_repair) does not allow fixing
    ///   (the message says how to fix it);
    /// - [`Error::is_database`](crate::Error::is_database): the server refused (for example, missing
    ///   privileges).
    pub async fn build(mut self) -> Result<MongoSessionStore> {
        self.validate()?;
        self.settle_timestamps();
        self.settle_lifetimes();
        let bound = self.connect_timeout;
        let service = self.service;
        let (client, owns_client) = match self.source {
            Source::Uri(ref uri) => (
                client_from_options(parse_uri(uri, bound).await?, bound, service)?,
                true,
            ),
            Source::Options(ref options) => (
                client_from_options((**options).clone(), bound, service)?,
                true,
            ),
            Source::Client(ref client) => {
                if let Some(service) = service {
                    service.warn_about_a_client_of_yours();
                }
                (client.clone(), false)
            }
        };
        let default_db = client.default_database().map(|db| db.name().to_string());
        let database = self.database.take().or(default_db).ok_or_else(|| {
            Error::config(
                "no database: name one in the URI path (mongodb://host/mydb) or call \
                 .database(\"mydb\") on the builder",
            )
        })?;
        super::validate::validate_database_name(&database)?;
        let db = client.database(&database);
        ping(&db, bound).await?;
        let collection =
            db.collection_with_options(&self.collection, self.collection_options.clone());
        let indexes = self.index_spec();
        if self.manage_collection {
            // Index setup is bounded like the rest of build. Without
            // AutoRemove the unique id index is checked, not created:
            // indexes are then the operator's job.
            let create_unique = self.auto_remove != AutoRemove::Disabled;
            let repair = self.index_repair.unwrap_or_default();
            let ensure = indexes.ensure(&collection, create_unique, repair, bound);
            tokio::time::timeout(bound, ensure)
                .await
                .map_err(|_| Error::timeout("createIndex", bound))??;
            if let Some(cosmos) = indexes.endings {
                let endings = crate::store::endings_collection(&collection);
                let retention = crate::endings::RETENTION;
                let ensure = ensure_endings_indexes(&endings, cosmos, retention, bound);
                tokio::time::timeout(bound, ensure)
                    .await
                    .map_err(|_| Error::timeout("createIndexes", bound))??;
            }
        }
        let auto_remove = self.auto_remove;
        let (cache, stream) = match &self.cache {
            Some(config) => {
                let (cache, stream) = open_cache(config, &collection, &self.layout, bound).await;
                (Some(cache), stream)
            }
            None => (None, None),
        };
        let store = MongoSessionStore::new(
            client,
            owns_client,
            collection,
            self.layout,
            self.config,
            cache,
            indexes,
        );
        if let (AutoRemove::Interval(period), true) = (auto_remove, self.manage_collection) {
            store.spawn_interval_removal(period);
        }
        if let Some(stream) = stream {
            store.watch_changes(stream);
        }
        Ok(store)
    }

    fn settle_timestamps(&mut self) {
        if self.timestamps {
            return;
        }
        let fields = &mut self.layout.fields;
        fields.created_at = None;
        if self.config.touch_after.is_zero() {
            fields.last_modified = None;
        }
    }

    /// The indexes this configuration relies on.
    pub(super) fn index_spec(&self) -> IndexSpec {
        let fields = &self.layout.fields;
        let ttl = (self.auto_remove == AutoRemove::Native).then(|| {
            let field = self.ttl_index_field.as_deref().unwrap_or(&fields.expires);
            let cosmos = self.ttl_index_field.is_some();
            let delay = self.expire_after.unwrap_or(if cosmos {
                self.config.idle_timeout
            } else {
                Duration::ZERO
            });
            TtlIndex::new(field, delay)
        });
        IndexSpec {
            ttl,
            unique_id: (fields.id != "_id").then(|| fields.id.clone()),
            owner: self.auto_remove != AutoRemove::Disabled,
            // With AutoRemove::Disabled no index is created: the endings
            // collection is then small but unindexed, and delete_expired
            // purges it.
            endings: (self.auto_remove != AutoRemove::Disabled)
                .then_some(self.ttl_index_field.is_some()),
        }
    }
}

/// The cache `config` asks for, and the change stream that keeps it
/// coherent when the deployment offers one (opened before the store serves
/// anything, so no change can slip between).
async fn open_cache(
    config: &ReadCache,
    collection: &Collection<Document>,
    layout: &Layout,
    bound: Duration,
) -> (SessionCache, Option<ChangeStream<Document>>) {
    let keyed = layout.fields.id == "_id";
    let version = layout.fields.version.clone();
    if config.wants_change_streams() {
        let stream = open_stream(collection, config.bound(), version.as_deref());
        match tokio::time::timeout(bound, stream).await {
            Ok(Ok(stream)) => {
                let cache = SessionCache::new(config, CacheMode::ChangeStreams, keyed, version);
                return (cache, Some(stream));
            }
            Ok(Err(error)) => tracing::warn!(
                %error,
                "cache: no change streams here; entries live at most the staleness bound"
            ),
            Err(_) => tracing::warn!(
                "cache: opening a change stream timed out; entries live at most the staleness bound"
            ),
        }
    }
    (
        SessionCache::new(config, CacheMode::StalenessBound, keyed, version),
        None,
    )
}

async fn ping(db: &mongodb::Database, bound: Duration) -> Result<()> {
    match tokio::time::timeout(bound, db.run_command(doc! { "ping": 1 })).await {
        Err(_) => Err(Error::unreachable(bound, None)),
        Ok(Err(e)) => Err(Error::from_driver("ping", bound, e)),
        Ok(Ok(_)) => Ok(()),
    }
}
