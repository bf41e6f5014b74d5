//! Issue 20: endings decided by the database. Every case runs two store
//! instances on one collection (an app behind a load balancer), and where a
//! framework regenerates ids, through its adapter: tower-sessions'
//! `cycle_id` is `delete(old)` then `create(record)`, actix-session's renew
//! is `delete(old key)` then `save(state)`.

use std::time::Duration;

use actix_session::storage::SessionStore as Actix;
use futures_util::{stream, StreamExt};
use mongodb::bson::doc;
use mongodb_session_store::{KeyRing, MongoSessionStore, UserInfo};
use serde_json::json;
use testkit::TestDb;
use tower_sessions_core::{
    session::{Id, Record},
    SessionStore as Tower,
};

use crate::common::{
    count, instance, instances, new_session, record, state, tower_session, Build, ACTIX_TTL,
};

/// A session stored through tower-sessions, as a login page would have it.
async fn logged_in(store: &MongoSessionStore, user_id: i64) -> Id {
    tower_session(store, json!({ "user_id": user_id })).await.id
}

/// A tower-sessions request that has loaded `id` and will regenerate it:
/// `cycle_id` (the delete) then the save at the end of the request (the
/// create of the record it loaded).
struct Regeneration {
    old: Id,
    record: Record,
}

impl Regeneration {
    async fn load(store: &MongoSessionStore, id: Id) -> Self {
        let record = Tower::load(store, &id)
            .await
            .unwrap()
            .expect("a live session");
        Self { old: id, record }
    }

    async fn cycle_id(&mut self, store: &MongoSessionStore) {
        Tower::delete(store, &self.old).await.unwrap();
        self.record.id = Id::default();
    }

    /// A whole regeneration of `id` on `store`, uninterrupted: the new id.
    async fn whole(store: &MongoSessionStore, id: Id) -> Id {
        let mut regeneration = Self::load(store, id).await;
        regeneration.cycle_id(store).await;
        regeneration.save(store).await
    }

    /// The save at the end of the request; the id the cookie now holds.
    async fn save(mut self, store: &MongoSessionStore) -> Id {
        Tower::create(store, &mut self.record).await.unwrap();
        self.record.id
    }
}

async fn live(store: &MongoSessionStore, id: Id) -> Option<serde_json::Value> {
    Tower::load(store, &id)
        .await
        .unwrap()
        .map(|record| record.data["user_id"].clone())
}

/// Removes every session, for the next round of a test.
async fn clear(db: &TestDb) {
    let sessions = db.collection("sessions");
    sessions.delete_many(doc! {}).await.unwrap();
}

/// Case 1, the logout second: instance 2 regenerates (its delete first),
/// instance 1 logs the old id out before the regeneration's create.
#[tokio::test]
async fn a_logout_after_a_regenerations_delete_ends_it_on_another_instance() {
    let db = TestDb::new("endlogoutafter").await;
    let (one, two) = instances(&db).await;
    let id = logged_in(&one, 7).await;
    let mut regeneration = Regeneration::load(&two, id).await;
    regeneration.cycle_id(&two).await;
    Tower::delete(&one, &id).await.unwrap(); // the logout
    let new = regeneration.save(&two).await;
    assert_eq!(live(&two, new).await, None, "the logged-out data came back");
    assert_eq!(live(&one, new).await, None);
    assert_eq!(count(&db).await, 0);
}

/// Case 1, the logout after the whole regeneration: a logout of any id of a
/// lineage ends the lineage.
#[tokio::test]
async fn a_logout_of_the_old_id_ends_the_regenerated_session() {
    let db = TestDb::new("endlogoutold").await;
    let (one, two) = instances(&db).await;
    let id = logged_in(&one, 7).await;
    let new = Regeneration::whole(&two, id).await;
    assert_eq!(live(&one, new).await, Some(json!(7)), "regenerated");
    Tower::delete(&one, &id).await.unwrap(); // a logout that carried the old cookie
    assert_eq!(live(&two, new).await, None);
    assert_eq!(count(&db).await, 0);
}

/// Case 1, the logout first, and the instance that logged out gone before
/// the regeneration goes on (a restart): nothing of it lives in memory.
#[tokio::test]
async fn a_logout_holds_after_its_instance_is_gone() {
    let db = TestDb::new("endrestart").await;
    let (one, two) = instances(&db).await;
    let id = logged_in(&one, 7).await;
    let mut first = Regeneration::load(&two, id).await;
    let mut second = Regeneration::load(&two, id).await;
    // Regeneration deletes first, logout in between, instance gone.
    first.cycle_id(&two).await;
    Tower::delete(&one, &id).await.unwrap();
    one.close().await;
    drop(one);
    let new = first.save(&two).await;
    assert_eq!(live(&two, new).await, None);
    // Logout first, then the regeneration's delete and create.
    let third = instance(&db).built().await;
    let id = logged_in(&third, 8).await;
    let mut late = Regeneration::load(&two, id).await;
    Tower::delete(&third, &id).await.unwrap();
    third.close().await;
    drop(third);
    late.cycle_id(&two).await;
    let new = late.save(&two).await;
    assert_eq!(live(&two, new).await, None);
    second.cycle_id(&two).await;
    assert_eq!(count(&db).await, 0);
}

/// The flood: 20,000 logouts of made-up ids write nothing and leave the
/// guard whole, on the instance that received them and on the other.
#[tokio::test]
async fn a_flood_of_made_up_logouts_writes_nothing_and_changes_nothing() {
    let db = TestDb::new("endflood").await;
    // The longest test of the suite: a generous bound per operation, so a
    // busy CI machine's stall is not taken for a failure of the guarantee.
    let patient = || {
        instance(&db)
            .operation_timeout(Duration::from_secs(60))
            .built()
    };
    let (one, two) = (patient().await, patient().await);
    let flooded = &one;
    // What matters is the number (past the ~10,000 an admission-controlled
    // cache would remember), not how many are in flight: 16 keeps the flood
    // quick without queueing each request behind the connection pool on a
    // busy CI machine.
    stream::iter(0..20_000)
        .for_each_concurrent(16, |n| async move {
            let made_up = mongodb_session_store::id::generate_id();
            match flooded.delete(&made_up).await {
                Ok(found) => assert!(!found, "made-up logout {n} found a session"),
                Err(e) => panic!("made-up logout {n} failed: {e}"),
            }
        })
        .await;
    let endings = db.collection("sessions.endings");
    assert_eq!(endings.count_documents(doc! {}).await.unwrap(), 0);
    let pairs = [(&two, &one), (&one, &one), (&one, &two)];
    for (round, (logout, regenerating)) in pairs.into_iter().enumerate() {
        // Logout first on either instance; the regeneration's delete finds
        // nothing on the flooded one.
        let id = logged_in(&two, 9).await;
        let mut regeneration = Regeneration::load(regenerating, id).await;
        Tower::delete(logout, &id).await.unwrap();
        regeneration.cycle_id(regenerating).await;
        let new = regeneration.save(regenerating).await;
        assert_eq!(live(&two, new).await, None, "round {round}, logout first");
        // And the regeneration's delete first.
        let id = logged_in(&two, 9).await;
        let mut regeneration = Regeneration::load(regenerating, id).await;
        regeneration.cycle_id(regenerating).await;
        Tower::delete(logout, &id).await.unwrap();
        let new = regeneration.save(regenerating).await;
        assert_eq!(live(&two, new).await, None, "round {round}, logout second");
    }
    let left = db.documents("sessions").await;
    assert!(left.is_empty(), "sessions left: {left:?}");
}

/// Two requests, on `one` and `other`, that loaded session `id` regenerate
/// it, interleaved as `order` says: the ids their cookies end with.
async fn regenerate_twice(
    order: u32,
    one: &MongoSessionStore,
    other: &MongoSessionStore,
    id: Id,
) -> (Id, Id) {
    let mut a = Regeneration::load(one, id).await;
    let mut b = Regeneration::load(other, id).await;
    match order {
        // Both deletes, then both creates at once.
        0 => {
            a.cycle_id(one).await;
            b.cycle_id(other).await;
            tokio::join!(a.save(one), b.save(other))
        }
        // Both deletes, then the later one creates first.
        1 => {
            a.cycle_id(one).await;
            b.cycle_id(other).await;
            let new_b = b.save(other).await;
            (a.save(one).await, new_b)
        }
        // One whole regeneration, then the other.
        2 => {
            a.cycle_id(one).await;
            let new_a = a.save(one).await;
            b.cycle_id(other).await;
            (new_a, b.save(other).await)
        }
        // Both at once from the start.
        _ => tokio::join!(
            async move {
                a.cycle_id(one).await;
                a.save(one).await
            },
            async move {
                b.cycle_id(other).await;
                b.save(other).await
            }
        ),
    }
}

/// Case 2: a double-submitted login form regenerates one session twice.
/// The data ends under exactly one of the two new ids, never under none;
/// the other cookie points at nothing.
#[tokio::test]
async fn two_overlapping_regenerations_keep_the_data_under_exactly_one_id() {
    let db = TestDb::new("enddouble").await;
    let (one, two) = instances(&db).await;
    for same_instance in [false, true] {
        let other = if same_instance { &one } else { &two };
        for order in 0..4 {
            let id = logged_in(&one, 7).await;
            let (new_a, new_b) = regenerate_twice(order, &one, other, id).await;
            let kept = [live(&one, new_a).await, live(&two, new_b).await];
            let with_data = kept.iter().filter(|k| **k == Some(json!(7))).count();
            assert_eq!(
                with_data, 1,
                "same instance: {same_instance}, order {order}: {kept:?}"
            );
            assert_eq!(live(&one, id).await, None);
            assert_eq!(count(&db).await, 1, "order {order}");
            clear(&db).await;
        }
    }
}

async fn owned(store: &MongoSessionStore, user: &str, device: &str) -> Id {
    let mut record = record(json!({ "user_id": 7 }));
    let owner = UserInfo::new(user).user_agent(device).to_value();
    record
        .data
        .insert(mongodb_session_store::session::USER_KEY.to_string(), owner);
    Tower::create(store, &mut record).await.unwrap();
    record.id
}

async fn handle(store: &MongoSessionStore, id: Id) -> String {
    let loaded = store.load(&id.to_string()).await.unwrap().unwrap();
    loaded.handle
}

/// Case 3: "sign out everywhere else" while the phone's request is between
/// its `cycle_id` and its save: the phone's session must not come back.
/// With a dozen other devices too, which ends them in bulk (one `update` of
/// the endings, one `deleteMany`).
#[tokio::test]
async fn signing_out_other_devices_ends_a_regeneration_in_flight() {
    let db = TestDb::new("endothers").await;
    let (laptop_instance, phone_instance) = instances(&db).await;
    for (phone_first, tablets) in [(false, 0), (true, 0), (false, 12), (true, 12)] {
        for _ in 0..tablets {
            owned(&phone_instance, "ada", "tablet").await;
        }
        let laptop = owned(&laptop_instance, "ada", "laptop").await;
        let phone = owned(&phone_instance, "ada", "phone").await;
        let keep = handle(&laptop_instance, laptop).await;
        let mut regeneration = Regeneration::load(&phone_instance, phone).await;
        regeneration.cycle_id(&phone_instance).await;
        let new = if phone_first {
            let new = regeneration.save(&phone_instance).await;
            laptop_instance.revoke_others("ada", &keep).await.unwrap();
            new
        } else {
            laptop_instance.revoke_others("ada", &keep).await.unwrap();
            regeneration.save(&phone_instance).await
        };
        let round = format!("phone first {phone_first}, {tablets} tablets");
        assert_eq!(live(&laptop_instance, new).await, None, "{round}");
        assert_eq!(live(&phone_instance, laptop).await, Some(json!(7)));
        let listed = laptop_instance.user_sessions("ada", None).await.unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(count(&db).await, 1);
        clear(&db).await;
    }
}

/// Case 3 at the size of a user with thousands of sessions (an API
/// client, a scripted login): "sign out everywhere else" on one instance
/// ends 2,500 sessions in three bulk batches while another instance
/// regenerates one of them; all end, the regeneration stores nothing, and
/// every lineage has its ending on record.
#[tokio::test]
async fn signing_out_thousands_of_other_sessions_ends_each_and_a_regeneration_in_flight() {
    let db = TestDb::new("endthousands").await;
    let (one, two) = instances(&db).await;
    let created: Vec<Id> = stream::iter(0..2_500)
        .map(|_| owned(&one, "ada", "script"))
        .buffer_unordered(32)
        .collect()
        .await;
    let laptop = owned(&one, "ada", "laptop").await;
    let keep = handle(&one, laptop).await;
    let mut regeneration = Regeneration::load(&two, created[7]).await;
    regeneration.cycle_id(&two).await;
    assert_eq!(one.revoke_others("ada", &keep).await.unwrap(), 2_499);
    let new = regeneration.save(&two).await;
    assert_eq!(live(&one, new).await, None);
    assert_eq!(live(&two, laptop).await, Some(json!(7)));
    assert_eq!(count(&db).await, 1);
    let endings = db.collection("sessions.endings");
    let ended = doc! { "user": "ada", "signedOut": { "$exists": true } };
    assert_eq!(endings.count_documents(ended).await.unwrap(), 2_499);
}

/// Case 3 for one device: revoking a session by its handle while that
/// device regenerates it.
#[tokio::test]
async fn revoking_a_session_ends_its_regeneration_in_flight() {
    let db = TestDb::new("endrevoke").await;
    let (one, two) = instances(&db).await;
    let phone = owned(&two, "ada", "phone").await;
    let revoked = handle(&one, phone).await;
    let mut regeneration = Regeneration::load(&two, phone).await;
    regeneration.cycle_id(&two).await;
    assert!(one.revoke("ada", &revoked).await.unwrap());
    let new = regeneration.save(&two).await;
    assert_eq!(live(&one, new).await, None);
    assert_eq!(count(&db).await, 0);
}

/// Case 1 and case 2 through actix-session: renew is delete then save.
#[tokio::test]
async fn actix_renewals_race_logouts_and_each_other_across_instances() {
    let db = TestDb::new("endactix").await;
    let (one, two) = instances(&db).await;
    let ttl = ACTIX_TTL;
    let state = state(&[("user_id", "7")]);
    // A logout on instance 1 after instance 2's renew deleted the old key.
    let key = Actix::save(&one, state.clone(), &ttl).await.unwrap();
    let loaded = Actix::load(&two, &key).await.unwrap().unwrap();
    Actix::delete(&two, &key).await.unwrap();
    Actix::delete(&one, &key).await.unwrap();
    let renewed = Actix::save(&two, loaded, &ttl).await.unwrap();
    assert!(Actix::load(&one, &renewed).await.unwrap().is_none());
    // Two renewals of one session on two instances.
    let key = Actix::save(&one, state.clone(), &ttl).await.unwrap();
    let a = Actix::load(&one, &key).await.unwrap().unwrap();
    let b = Actix::load(&two, &key).await.unwrap().unwrap();
    Actix::delete(&one, &key).await.unwrap();
    Actix::delete(&two, &key).await.unwrap();
    let (a, b) = tokio::join!(Actix::save(&one, a, &ttl), Actix::save(&two, b, &ttl));
    let kept = [
        Actix::load(&two, &a.unwrap()).await.unwrap(),
        Actix::load(&one, &b.unwrap()).await.unwrap(),
    ];
    let with_data = kept.iter().filter(|k| k.is_some()).count();
    assert_eq!(with_data, 1, "{kept:?}");
    assert_eq!(count(&db).await, 1);
}

/// Without any race, a regeneration moves the data and costs the old id.
#[tokio::test]
async fn a_regeneration_alone_moves_the_data_and_ends_the_old_id() {
    let db = TestDb::new("endalone").await;
    let (one, two) = instances(&db).await;
    let id = logged_in(&one, 7).await;
    let new = Regeneration::whole(&two, id).await;
    assert_eq!(live(&one, new).await, Some(json!(7)));
    assert_eq!(live(&one, id).await, None);
    // And again from the new id: the lineage carries on.
    let newer = Regeneration::whole(&one, new).await;
    assert_eq!(live(&two, newer).await, Some(json!(7)));
    assert_eq!(count(&db).await, 1);
}

fn ring(keys: &[u32]) -> KeyRing {
    let mut ring = KeyRing::new(keys[0], [keys[0] as u8; 32]).unwrap();
    for &id in &keys[1..] {
        ring = ring.with_primary(id, [id as u8; 32]).unwrap();
    }
    ring
}

/// Case 4: a removal reaches every name the key is stored under. Instance 2
/// (rotated ring) loads a session written under the old key; `rewrap` moves
/// its values to the new key's names; instance 2's save removes a key it
/// loaded under the old name.
#[tokio::test]
async fn a_removal_after_a_concurrent_rewrap_removes_the_key_for_good() {
    let db = TestDb::new("endrewrapremove").await;
    let build = |keys: &'static [u32]| instance(&db).encryption(ring(keys)).built();
    let old = build(&[1]).await;
    let id = new_session(&old, json!({"a": 1, "b": 2}), None).await;
    let two = build(&[1, 2]).await;
    let mut loaded = two.load(&id).await.unwrap().unwrap().into_map();
    let rewrapper = build(&[1, 2]).await;
    assert_eq!(rewrapper.rewrap().await.unwrap().rewrapped, 1);
    loaded.remove("a");
    loaded.insert("b".into(), json!(20));
    two.save(&id, &loaded, None).await.unwrap();
    let now = rewrapper.load(&id).await.unwrap().unwrap().data;
    assert_eq!(serde_json::Value::Object(now), json!({"b": 20}));
    let stored = db.documents("sessions").await;
    let data = stored[0].get_document("data").unwrap();
    assert_eq!(data.len(), 1, "one name per key: {data:?}");
}

/// Without a TTL index (`AutoRemove::Disabled`), `delete_expired` removes
/// endings records past their retention, and only those.
#[tokio::test]
async fn delete_expired_reaps_old_endings_records_without_a_ttl_index() {
    let db = TestDb::new("endreap").await;
    let no_ttl_index = mongodb_session_store::AutoRemove::Disabled;
    let store = instance(&db).auto_remove(no_ttl_index).built().await;
    for _ in 0..3 {
        let id = logged_in(&store, 1).await;
        Tower::delete(&store, &id).await.unwrap();
    }
    let endings = db.collection("sessions.endings");
    assert_eq!(endings.count_documents(doc! {}).await.unwrap(), 3);
    let past = mongodb::bson::DateTime::from_millis(1_000);
    let one = endings.find_one(doc! {}).await.unwrap().unwrap();
    endings
        .update_one(
            doc! { "_id": one.get("_id").unwrap().clone() },
            doc! { "$set": { "expires": past } },
        )
        .await
        .unwrap();
    store.delete_expired().await.unwrap();
    assert_eq!(endings.count_documents(doc! {}).await.unwrap(), 2);
}
