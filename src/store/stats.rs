//! Figures about the whole collection, for operators: how many sessions,
//! whose, how big, and under which encryption keys — all from one walk of
//! the collection in bounded batches, no count or aggregation over all of it.

use std::{
    collections::{BTreeMap, HashSet},
    hash::{DefaultHasher, Hash, Hasher},
};

use mongodb::bson::{doc, DateTime, RawBsonRef, RawDocument, RawDocumentBuf};

use super::MongoSessionStore;
use crate::{
    batch::BatchOptions,
    crypto::sealed_key_id,
    error::Result,
    observe::{observed, Op},
    schema::{Layout, USER_FIELD},
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
    /// From how many documents have each size.
    fn of(sizes: &BTreeMap<u64, u64>) -> Self {
        let total: u64 = sizes.values().sum();
        let rank = |q: f64| -> u64 {
            if total == 0 {
                return 0;
            }
            // Nearest rank: the smallest size with at least ceil(q·n) at or below it.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let wanted = ((q * total as f64).ceil() as u64).clamp(1, total);
            let mut seen = 0;
            for (size, count) in sizes {
                seen += count;
                if seen >= wanted {
                    return *size;
                }
            }
            0
        };
        Self {
            p50: rank(0.5),
            p99: rank(0.99),
            max: sizes.keys().next_back().copied().unwrap_or(0),
        }
    }
}

impl MongoSessionStore {
    /// Counts and measures the collection by reading every document once,
    /// a bounded batch (1,000 documents) per round trip, so no round trip
    /// takes longer as the collection grows. Memory: a counter per distinct
    /// document size and 8 bytes per distinct owner (owners are counted by
    /// a 64-bit hash; two colliding would count once, odds below one in ten
    /// million at a million owners). The counts apply the store's live and
    /// expired filters to each document, as the server would.
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
        let now = DateTime::now();
        let find = self
            .inner
            .raw
            .find(doc! {})
            .batch_size(BatchOptions::default().cursor_batch());
        let size = BatchOptions::default().size;
        let (mut cursor, mut batch) = self.open_batches(find, size).await?;
        let mut stats = SessionStats::default();
        let (mut sizes, mut owners) = (BTreeMap::new(), HashSet::new());
        while !batch.is_empty() {
            for document in &batch {
                *sizes.entry(document.as_bytes().len() as u64).or_insert(0) += 1;
                for id in key_ids(document, &layout.fields.data) {
                    *stats.key_ids.entry(id).or_default() += 1;
                }
                match liveness(layout, document, now) {
                    Liveness::Live => {
                        stats.live += 1;
                        if let Ok(Some(RawBsonRef::String(user))) = document.get(USER_FIELD) {
                            stats.with_owner += 1;
                            let mut hasher = DefaultHasher::new();
                            user.hash(&mut hasher);
                            owners.insert(hasher.finish());
                        }
                    }
                    Liveness::Expired => stats.expired += 1,
                    Liveness::Neither => {}
                }
                stats.documents += 1;
                progress(stats.documents);
            }
            batch = self.next_batch(&mut cursor, size).await?;
        }
        stats.owners = owners.len() as u64;
        stats.size = SizeDistribution::of(&sizes);
        Ok(stats)
    }
}

/// Which of the store's filters a document matches.
#[derive(Debug, PartialEq, Eq)]
enum Liveness {
    /// `restrict_to_live`.
    Live,
    /// `expired_filter`.
    Expired,
    /// Neither: an expiry that is not a date (the server compares dates
    /// with dates only).
    Neither,
}

/// What `Layout::restrict_to_live` and `Layout::expired_filter` decide for
/// `document` at `now`, decided here.
fn liveness(layout: &Layout, document: &RawDocument, now: DateTime) -> Liveness {
    let date = |field: &str| match document.get(field) {
        Ok(Some(RawBsonRef::DateTime(date))) => Some(date),
        _ => None,
    };
    let expires = date(&layout.fields.expires);
    let created_at = layout.fields.created_at.as_deref().and_then(date);
    // The session's own absolute lifetime, where it has one (as the live
    // filter judges it); a malformed one counts as none.
    let own = crate::lifetime::decode_stored(document).ok().flatten();
    // Expiry aside: the absolute lifetime alone decides.
    let far = DateTime::MAX;
    let within_lifetime = layout.is_live_at(now, far, created_at, own);
    match expires {
        Some(expires) if expires > now && within_lifetime => Liveness::Live,
        Some(expires) if expires <= now => Liveness::Expired,
        _ if !within_lifetime => Liveness::Expired,
        _ => Liveness::Neither,
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
        let of = |sizes: &[u64]| {
            let mut counts = BTreeMap::new();
            for size in sizes {
                *counts.entry(*size).or_insert(0) += 1;
            }
            SizeDistribution::of(&counts)
        };
        let sizes = of(&(1..=200).rev().collect::<Vec<_>>());
        assert_eq!((sizes.p50, sizes.p99, sizes.max), (100, 198, 200));
        assert_eq!(of(&[]), SizeDistribution::default());
        let one = of(&[7]);
        assert_eq!((one.p50, one.p99, one.max), (7, 7, 7));
        let repeated = of(&[5, 5, 5, 9]);
        assert_eq!((repeated.p50, repeated.p99, repeated.max), (5, 9, 9));
    }

    #[test]
    fn liveness_is_the_filters_decision() {
        let now = DateTime::from_millis(1_000_000);
        let at = |ms: i64| DateTime::from_millis(ms);
        let plain = Layout::default();
        let decide = |layout: &Layout, document: mongodb::bson::Document| {
            let raw = RawDocumentBuf::from_document(&document).unwrap();
            liveness(layout, &raw, now)
        };
        assert_eq!(
            decide(&plain, doc! { "expires": at(1_000_001) }),
            Liveness::Live
        );
        assert_eq!(decide(&plain, doc! { "expires": now }), Liveness::Expired);
        assert_eq!(
            decide(&plain, doc! { "expires": "soon" }),
            Liveness::Neither
        );
        assert_eq!(decide(&plain, doc! {}), Liveness::Neither);
        let lifetime = Layout {
            absolute_timeout: Some(std::time::Duration::from_secs(100)),
            ..Layout::default()
        };
        let young = doc! { "expires": at(2_000_000), "createdAt": at(950_000) };
        assert_eq!(decide(&lifetime, young), Liveness::Live);
        let old = doc! { "expires": at(2_000_000), "createdAt": at(900_000) };
        assert_eq!(decide(&lifetime, old), Liveness::Expired);
        // A session's own, shorter absolute lifetime (in ms) ends it first.
        let own = doc! {
            "expires": at(2_000_000), "createdAt": at(950_000),
            "lifetime": { "absoluteTimeout": 10_000_i64 },
        };
        assert_eq!(decide(&lifetime, own), Liveness::Expired);
        let unborn = doc! { "expires": "soon" };
        assert_eq!(
            decide(&lifetime, unborn),
            Liveness::Expired,
            "$not matches a missing field"
        );
    }
}
