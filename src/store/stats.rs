//! Figures about the whole collection, for operators: how many sessions,
//! whose, how big, and under which encryption keys.

use std::collections::BTreeMap;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, DateTime, RawBsonRef, RawDocumentBuf};

use super::MongoSessionStore;
use crate::{
    crypto::sealed_key_id,
    error::Result,
    observe::{observed, Op},
    schema::USER_FIELD,
};

/// What [`MongoSessionStore::stats`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Documents in the collection, live or not.
    pub documents: u64,
    /// Live sessions: not expired, not past their absolute lifetime.
    pub live: u64,
    /// Sessions no longer live whose documents are still there (the TTL
    /// index or [`delete_expired`](MongoSessionStore::delete_expired) has
    /// not removed them yet).
    pub expired: u64,
    /// Live sessions with an owner.
    pub with_owner: u64,
    /// Distinct owners of live sessions.
    pub owners: u64,
    /// Sizes of the documents, in bytes as stored (BSON).
    pub size: SizeDistribution,
    /// For each encryption key id, the documents holding at least one value
    /// sealed under it (a document with values under two keys counts for
    /// both). Read from the ciphertexts' headers, so keys that are no longer
    /// in the ring are counted too. After a rotation and a complete
    /// [`rewrap`](MongoSessionStore::rewrap), only the primary is left.
    pub key_ids: BTreeMap<u32, u64>,
}

/// A distribution of document sizes in bytes; all zero for an empty
/// collection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SizeDistribution {
    /// The median.
    pub p50: u64,
    /// The 99th percentile (nearest rank).
    pub p99: u64,
    /// The largest.
    pub max: u64,
}

impl SizeDistribution {
    fn of(mut sizes: Vec<u64>) -> Self {
        sizes.sort_unstable();
        let rank = |q: f64| -> u64 {
            if sizes.is_empty() {
                return 0;
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let index = ((q * sizes.len() as f64).ceil() as usize).clamp(1, sizes.len()) - 1;
            sizes[index]
        };
        Self {
            p50: rank(0.5),
            p99: rank(0.99),
            max: sizes.last().copied().unwrap_or(0),
        }
    }
}

impl MongoSessionStore {
    /// Counts and measures the collection: the counts are computed by the
    /// server; sizes and key ids by reading every document once (a
    /// collection scan, 8 bytes of memory per document).
    ///
    /// # Errors
    ///
    /// Server errors and timeouts (each round trip is bounded by the
    /// operation timeout).
    pub async fn stats(&self) -> Result<SessionStats> {
        self.stats_with(|_| {}).await
    }

    /// [`stats`](Self::stats), calling `progress` with the number of
    /// documents read so far as it walks the collection.
    ///
    /// # Errors
    ///
    /// As [`stats`](Self::stats).
    pub async fn stats_with(&self, progress: impl FnMut(u64)) -> Result<SessionStats> {
        observed(Op::Stats, None, self.stats_unobserved(progress)).await
    }

    async fn stats_unobserved(&self, mut progress: impl FnMut(u64)) -> Result<SessionStats> {
        let layout = &self.inner.layout;
        let collection = &self.inner.collection;
        let now = DateTime::now();
        let mut live = doc! {};
        layout.restrict_to_live(&mut live, now);
        let mut owned = live.clone();
        owned.insert(USER_FIELD, doc! { "$type": "string" });
        let mut stats = SessionStats {
            live: self.run("count", collection.count_documents(live)).await?,
            expired: self
                .run(
                    "count",
                    collection.count_documents(layout.expired_filter(now)),
                )
                .await?,
            with_owner: self
                .run("count", collection.count_documents(owned.clone()))
                .await?,
            owners: self.count_owners(owned).await?,
            ..SessionStats::default()
        };
        let raw = collection.clone_with_type::<RawDocumentBuf>();
        let mut cursor = self.run("find", raw.find(doc! {})).await?;
        let mut sizes = Vec::new();
        while let Some(document) = self.run("find", cursor.try_next()).await? {
            sizes.push(document.as_bytes().len() as u64);
            for id in key_ids(&document, &layout.fields.data) {
                *stats.key_ids.entry(id).or_default() += 1;
            }
            stats.documents += 1;
            progress(stats.documents);
        }
        stats.size = SizeDistribution::of(sizes);
        Ok(stats)
    }

    async fn count_owners(&self, owned: mongodb::bson::Document) -> Result<u64> {
        let pipeline = [
            doc! { "$match": owned },
            doc! { "$group": { "_id": format!("${USER_FIELD}") } },
            doc! { "$count": "owners" },
        ];
        let aggregate = self.inner.collection.aggregate(pipeline);
        let mut cursor = self.run("aggregate", aggregate).await?;
        let counted = self.run("aggregate", cursor.try_next()).await?;
        let owners = counted.and_then(|d| match d.get("owners") {
            Some(mongodb::bson::Bson::Int32(n)) => u64::try_from(*n).ok(),
            Some(mongodb::bson::Bson::Int64(n)) => u64::try_from(*n).ok(),
            _ => None,
        });
        Ok(owners.unwrap_or(0))
    }
}

/// The distinct ids of the keys that sealed the values in `data_field`.
fn key_ids(document: &RawDocumentBuf, data_field: &str) -> Vec<u32> {
    let Ok(Some(RawBsonRef::Document(values))) = document.get(data_field) else {
        return Vec::new();
    };
    let mut ids: Vec<u32> = values
        .into_iter()
        .filter_map(|entry| match entry {
            Ok((_, RawBsonRef::Binary(binary))) => sealed_key_id(binary.bytes),
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sizes = SizeDistribution::of((1..=200).rev().collect());
        assert_eq!((sizes.p50, sizes.p99, sizes.max), (100, 198, 200));
        assert_eq!(SizeDistribution::of(vec![]), SizeDistribution::default());
        let one = SizeDistribution::of(vec![7]);
        assert_eq!((one.p50, one.p99, one.max), (7, 7, 7));
    }
}
