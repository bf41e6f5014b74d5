//! This store's actix-session paths: a read (`load`, then `update_ttl`, as
//! actix-session calls them under `TtlExtensionPolicy::OnEveryRequest`)
//! and a one-key modify (`load`, then `update`).

use std::collections::HashMap;

use actix_session::storage::{SessionKey, SessionStore};
use actix_web::cookie::{time::Duration as CookieDuration, Cookie, CookieJar, Key, SameSite};
use serde_json::Value;

use super::{
    ours::Bench,
    table::{Column, Stage},
};
use crate::fixture::one_kib_session;

/// actix-session's state: every value as JSON text.
type State = HashMap<String, String>;

/// The cookie actix-session sets (`set_session_cookie`, the default
/// `CookieContentSecurity::Private`: encrypted), as its header value.
fn cookie_out(key: &Key, session_key: &str) -> String {
    let mut cookie = Cookie::new("id", session_key.to_string());
    cookie.set_secure(false);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_path("/");
    cookie.set_max_age(CookieDuration::hours(1));
    let mut jar = CookieJar::new();
    jar.private_mut(key).add(cookie);
    jar.delta()
        .next()
        .map(|c| c.encoded().to_string())
        .unwrap_or_default()
}

/// What actix-session does with the request's cookie: the jar of the
/// request's cookies, the session cookie decrypted, the key checked.
fn cookie_in(key: &Key, header: &str) -> SessionKey {
    let mut jar = CookieJar::new();
    jar.add_original(Cookie::parse_encoded(header.to_string()).expect("a cookie"));
    let cookie = jar.private(key).get("id").expect("decrypts");
    SessionKey::try_from(cookie.value().to_string()).expect("a session key")
}

/// actix-session's state as this store's adapter reads it on `update`.
fn parse(state: State) -> HashMap<String, Value> {
    state
        .into_iter()
        .map(|(k, v)| {
            let value = serde_json::from_str(&v).expect("JSON");
            (k, value)
        })
        .collect()
}

/// The read and modify columns.
///
/// # Errors
///
/// A store or driver call failed.
pub fn actix(bench: &Bench<'_>) -> Result<[Column; 2], Box<dyn std::error::Error>> {
    let (rt, meter, store) = (bench.rt, bench.meter, bench.store);
    let ttl = time::Duration::hours(1);
    let state: State = one_kib_session()
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    let session_key = rt
        .block_on(SessionStore::save(store, state, &ttl))
        .map_err(|e| e.to_string())?;
    let id: String = session_key.as_ref().to_string();
    let new_key = || SessionKey::try_from(id.clone()).expect("a session key");
    let stored = bench.stored_id(&id);
    let shared = bench.shared(&stored)?;
    let key = Key::generate();
    let header = cookie_out(&key, &id);
    let header = header.split(';').next().unwrap_or_default().to_string();

    let mut read = Column::new("actix read");
    read.set(Stage::CookieIn, meter.call(|| cookie_in(&key, &header)))
        .set(Stage::IdHash, meter.call(|| bench.stored_id(&id)));
    shared.fill_load(&mut read);
    let tracked = bench.tracked(&stored)?;
    let to_state = |m: serde_json::Map<String, Value>| -> State {
        m.into_iter().map(|(k, v)| (k, v.to_string())).collect()
    };
    let load = || {
        rt.block_on(SessionStore::load(store, &new_key()))
            .expect("loads")
            .expect("present")
    };
    read.set(Stage::ToFramework, meter.each(|| tracked.clone(), to_state))
        .set(
            Stage::LoadWhole,
            meter.each_async(rt, new_key, |k| async move {
                SessionStore::load(store, &k).await
            }),
        );
    let mut modify = read.clone();
    modify.name = "actix modify".into();
    // Inside `touch_after` of the load: a touch that sends nothing.
    let touched = meter.each_async(
        rt,
        || {
            load();
            new_key()
        },
        |k| async move { (SessionStore::update_ttl(store, &k, &ttl).await, k) },
    );
    read.set(Stage::SaveObserved, shared.observed())
        .set(Stage::SaveWhole, touched)
        .set(Stage::CookieOut, meter.call(|| cookie_out(&key, &id)));

    let modified = |visits: i64| {
        let mut state = load();
        state.insert("visits".into(), visits.to_string());
        state
    };
    let changed = modified(1_000);
    // What the adapter's `update` reads: only the value whose text changed
    // is parsed (the comparison and plan rows below run on a whole map).
    let from = meter.each(
        || changed.clone(),
        |state| mongodb_session_store::__bench::actix_changed_only(store, &state),
    );
    let (compare, plan) = bench.compare_and_plan(&stored, || parse(changed.clone()));
    let mut visits = 2_000_i64;
    let whole = meter.each_async(
        rt,
        || {
            visits += 1;
            (new_key(), modified(visits))
        },
        |(k, state)| async move { SessionStore::update(store, k, state, &ttl).await },
    );
    modify
        .set(Stage::FromFramework, from)
        .set(Stage::Compare, compare)
        .set(Stage::Plan, plan)
        .set(
            Stage::Write,
            bench.write(&stored, || parse(changed.clone())),
        )
        .set(Stage::RawUpdate, shared.raw_update())
        .set(Stage::SaveObserved, shared.observed())
        .set(Stage::SaveWhole, whole)
        .set(Stage::CookieOut, meter.call(|| cookie_out(&key, &id)));
    let (read_floor, modify_floor) = shared.floors();
    read.set_floor(read_floor).derive_rests();
    modify.set_floor(modify_floor).derive_rests();
    Ok([read, modify])
}
