//! This store's stages: what both adapters share (the load's stages, the
//! write, the floors), and the tower-sessions paths.

use std::{collections::HashMap, time::Duration};

use mongodb::{
    bson::{doc, Document, RawDocumentBuf},
    Collection,
};
use mongodb_session_store::{
    __bench::{observed_nothing, DocumentCodec, Plan},
    MongoSessionStore,
};
use serde_json::{json, Value};
use tokio::runtime::Runtime;
use tower_sessions::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use tower_sessions_core::{
    session::{Id, Record},
    SessionStore,
};

use super::{
    table::{Column, Stage},
    Cost, Meter,
};
use crate::{contract::IDLE, fixture::one_kib_session};

/// `touch_after` as the HTTP benchmark configures the store.
pub const TOUCH_AFTER: Duration = Duration::from_secs(1800);

/// What every path is measured with.
#[derive(Debug)]
pub struct Bench<'a> {
    /// The measuring thread's runtime.
    pub rt: &'a Runtime,
    /// How many calls.
    pub meter: Meter,
    /// The store (no cache), `ttl` 1 h, `touch_after` 30 min.
    pub store: &'a MongoSessionStore,
    /// Its database (the peer and the raw floor have collections there).
    pub database: mongodb::Database,
    /// Its collection.
    pub sessions: Collection<Document>,
    /// The store's default layout, for the stages the store does not expose.
    pub codec: DocumentCodec,
}

/// The stages of a load both adapters share (measured once, on the same
/// document: the code is the same).
#[derive(Debug, Clone, Copy)]
pub struct Shared {
    find: Cost,
    decode: Cost,
    prepare: Cost,
    tracking: Cost,
    observed: Cost,
    raw_update: Cost,
}

impl Shared {
    /// Fills a column's shared load stages.
    pub fn fill_load(&self, column: &mut Column) {
        column
            .set(Stage::Find, self.find)
            .set(Stage::Decode, self.decode)
            .set(Stage::Prepare, self.prepare)
            .set(Stage::Tracking, self.tracking)
            .set(Stage::LoadObserved, self.observed);
    }

    /// The raw driver's floor of a read, and of a modify.
    pub fn floors(&self) -> (Cost, Cost) {
        (self.find, self.find.plus(self.raw_update))
    }

    /// The span and metrics of one operation.
    pub fn observed(&self) -> Cost {
        self.observed
    }

    /// The raw floor of a write.
    pub fn raw_update(&self) -> Cost {
        self.raw_update
    }
}

impl Bench<'_> {
    /// The stored `_id` of session `id`.
    pub fn stored_id(&self, id: &str) -> String {
        self.codec.stored_id(id)
    }

    /// Measures the shared stages on the document stored under `stored`.
    ///
    /// # Errors
    ///
    /// The document is missing or a driver call failed.
    pub fn shared(&self, stored: &str) -> Result<Shared, Box<dyn std::error::Error>> {
        let (rt, meter, codec) = (self.rt, self.meter, &self.codec);
        let raw: Collection<RawDocumentBuf> = self.sessions.clone_with_type();
        let find = meter.call_async(rt, || raw.find_one(doc! { "_id": stored }));
        let bytes = rt
            .block_on(async { raw.find_one(doc! { "_id": stored }).await })?
            .ok_or("the session is missing")?;
        let decode = meter.call(|| codec.decode_document(&bytes).map(drop));
        let decoded = || codec.decode_document(&bytes).expect("decodes");
        let prepare = meter.each(decoded, |d| codec.prepare(d));
        let tracking = meter.each(|| codec.prepare(decoded()), |l| l.into_map());
        let id = mongodb_session_store::id::generate_id();
        let observed = meter.call_async(rt, || observed_nothing(&id));
        // The raw floor's document: the same bytes under an id of its own.
        let mut copy = Document::try_from(bytes.as_ref())?;
        copy.insert("_id", "raw-floor");
        copy.insert("n", 0_i64);
        let floor = self.database.collection::<Document>("raw_floor");
        rt.block_on(async {
            floor.delete_many(doc! {}).await?;
            floor.insert_one(copy).await
        })?;
        let mut n = 0_i64;
        let raw_update = meter.call_async(rt, || {
            n += 1;
            floor.update_one(doc! { "_id": "raw-floor" }, doc! { "$set": { "n": n } })
        });
        Ok(Shared {
            find,
            decode,
            prepare,
            tracking,
            observed,
            raw_update,
        })
    }

    /// The map a load of `stored` hands the adapter: values and tracking
    /// entry.
    ///
    /// # Errors
    ///
    /// The document is missing, or the driver failed.
    pub fn tracked(
        &self,
        stored: &str,
    ) -> Result<serde_json::Map<String, Value>, Box<dyn std::error::Error>> {
        let raw: Collection<RawDocumentBuf> = self.sessions.clone_with_type();
        let bytes = self
            .rt
            .block_on(async { raw.find_one(doc! { "_id": stored }).await })?
            .ok_or("the session is missing")?;
        let loaded = self.codec.prepare(self.codec.decode_document(&bytes)?);
        Ok(loaded.into_map())
    }

    /// A save's comparison, and its plan beyond the comparison, of the
    /// framework's map `data` (made fresh by `data` for each call).
    pub fn compare_and_plan(
        &self,
        stored: &str,
        data: impl Fn() -> HashMap<String, Value>,
    ) -> (Cost, Cost) {
        let codec = &self.codec;
        let compare = self.meter.each(&data, |d| (codec.compare(&d), d));
        let plan = self.meter.each(&data, |d| {
            let plan = codec.plan_save(stored, &d, None, IDLE, TOUCH_AFTER);
            (plan.expect("plans"), d)
        });
        (compare, plan.minus(compare))
    }

    /// The write a one-key modify of `data` sends, through the driver.
    pub fn write(&self, stored: &str, data: impl Fn() -> HashMap<String, Value>) -> Cost {
        let codec = &self.codec;
        let update = || match codec.plan_save(stored, &data(), None, IDLE, TOUCH_AFTER) {
            Ok(Plan::Write {
                update: Some(update),
                ..
            }) => (codec.live_filter(stored), update),
            other => panic!("a one-key modify plans one update: {other:?}"),
        };
        let sessions = &self.sessions;
        self.meter.each_async(self.rt, update, |(filter, update)| {
            sessions.update_one(filter, update)
        })
    }
}

/// The cookie tower-sessions sets (`SessionConfig::build_cookie`, then
/// tower-cookies' header): name `id`, `HttpOnly`, `SameSite=Strict`,
/// path `/`, `Max-Age` of the inactivity expiry.
pub fn tower_cookie_out(id: Id) -> String {
    let max_age = CookieDuration::try_from(IDLE).unwrap_or(CookieDuration::HOUR);
    Cookie::build(("id", id.to_string()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(false)
        .path("/")
        .max_age(max_age)
        .build()
        .encoded()
        .to_string()
}

/// What tower-sessions does with the request's cookie: parse it, read the
/// id.
pub fn tower_cookie_in(header: &str) -> Id {
    let cookie = Cookie::parse(header).expect("a cookie");
    cookie.value().parse::<Id>().expect("an id")
}

/// The tower-sessions paths: a read without and with `always_save`, and a
/// one-key modify.
///
/// # Errors
///
/// A store or driver call failed.
pub fn tower(bench: &Bench<'_>) -> Result<([Column; 3], Shared), Box<dyn std::error::Error>> {
    let (rt, meter, store) = (bench.rt, bench.meter, bench.store);
    let mut record = Record {
        id: Id::default(),
        data: one_kib_session().into_iter().collect(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    rt.block_on(SessionStore::create(store, &mut record))?;
    let id = record.id;
    let stored = bench.stored_id(&id.to_string());
    let shared = bench.shared(&stored)?;
    let header = format!("id={id}");

    let mut read = Column::new("tower read");
    read.set(Stage::CookieIn, meter.call(|| tower_cookie_in(&header)))
        .set(
            Stage::IdHash,
            meter.call(|| bench.stored_id(&id.to_string())),
        );
    shared.fill_load(&mut read);
    let tracked_once = bench.tracked(&stored)?;
    read.set(
        Stage::ToFramework,
        meter.each(
            || tracked_once.clone(),
            |m| m.into_iter().collect::<HashMap<String, Value>>(),
        ),
    )
    .set(
        Stage::LoadWhole,
        meter.call_async(rt, || SessionStore::load(store, &id)),
    );
    let load = || {
        rt.block_on(SessionStore::load(store, &id))
            .expect("loads")
            .expect("present")
    };

    let mut always = read.clone();
    always.name = "tower read, always_save".into();
    let loaded = load();
    let (compare, plan) = bench.compare_and_plan(&stored, || loaded.data.clone());
    always
        .set(Stage::Compare, compare)
        .set(Stage::Plan, plan)
        .set(Stage::SaveObserved, shared.observed())
        .set(
            Stage::SaveWhole,
            meter.call_async(rt, || SessionStore::save(store, &loaded)),
        )
        .set(Stage::CookieOut, meter.call(|| tower_cookie_out(id)));

    let mut modify = read.clone();
    modify.name = "tower modify".into();
    let modified = |visits: i64| {
        let mut record = load();
        record.data.insert("visits".into(), json!(visits));
        record
    };
    let changed = modified(1_000);
    let (compare, plan) = bench.compare_and_plan(&stored, || changed.data.clone());
    let mut visits = 2_000_i64;
    let whole = meter.each_async(
        rt,
        || {
            visits += 1;
            modified(visits)
        },
        // The framework holds the record: it is returned, not freed here.
        |record| async move { (SessionStore::save(store, &record).await, record) },
    );
    modify
        .set(Stage::Compare, compare)
        .set(Stage::Plan, plan)
        .set(Stage::Write, bench.write(&stored, || changed.data.clone()))
        .set(Stage::RawUpdate, shared.raw_update())
        .set(Stage::SaveObserved, shared.observed())
        .set(Stage::SaveWhole, whole)
        .set(Stage::CookieOut, meter.call(|| tower_cookie_out(id)));
    let (read_floor, modify_floor) = shared.floors();
    for column in [&mut read, &mut always] {
        column.set_floor(read_floor).derive_rests();
    }
    modify.set_floor(modify_floor).derive_rests();
    Ok(([read, always, modify], shared))
}
