//! Customer 360 on the apply path: source records through the log, fuzzy resolution into one
//! profile, and merges of profiles that are enrolled in journeys (nothing sent twice).

use super::journeys::{options, ws, World, CART};
use crate::customer360::IdentityConfigs;
use crate::journeys::Command;
use crate::EngineOptions;
use cairn_identity::compiled::CompiledRuleset;
use cairn_identity::{DocumentFormat, RecordKey, Ruleset};
use chrono::Duration;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A CRM and a shop; one person is the same first name (fuzzy) with the same email or phone.
const RULES: &str = include_str!("../../../../tests/identity/crm-shop.toml");

fn identity_options() -> EngineOptions {
    let ruleset = Ruleset::parse(RULES, DocumentFormat::Toml, "rules.toml").expect("rules");
    let compiled = Arc::new(CompiledRuleset::new(ruleset).expect("compiles"));
    EngineOptions {
        identity: IdentityConfigs::new(BTreeMap::from([(ws(), compiled)])),
        ..options()
    }
}

fn upsert(world: &World, source: &str, id: &str, fields: Value) -> Value {
    let outcome = world.command(Command::UpsertSourceRecord {
        source: source.into(),
        id: id.into(),
        fields: fields.as_object().cloned().expect("object"),
    });
    assert!(outcome.ok, "{outcome:?}");
    serde_json::from_str(&outcome.message).expect("outcome json")
}

fn placement(world: &World, source: &str, id: &str) -> crate::customer360::RecordPlacement {
    world
        .engine
        .reader()
        .source_record_placement(&ws(), &RecordKey::new(source, id))
        .expect("placed")
}

#[test]
fn two_sources_with_a_fuzzy_name_and_the_same_phone_or_email_are_one_profile() {
    let world = World::start_with(identity_options());
    upsert(
        &world,
        "crm",
        "c-1",
        json!({"first": "Jonathan", "last": "Smith", "email": "Jon.Smith@Example.com",
               "mobile": "07911 123456", "tier": "gold"}),
    );
    // The shop spells the name differently and writes the phone in E.164; no email.
    upsert(
        &world,
        "shop",
        "s-9",
        json!({"given": "Jonathon", "family": "Smyth", "phone": "+44 7911 123456"}),
    );
    // A third record shares the email but not the name: not the same person.
    upsert(
        &world,
        "shop",
        "s-10",
        json!({"given": "Maria", "family": "Smith", "mail": "jon.smith@example.com"}),
    );
    let crm = placement(&world, "crm", "c-1");
    let shop = placement(&world, "shop", "s-9");
    let other = placement(&world, "shop", "s-10");
    assert_eq!(crm.unified_id, shop.unified_id, "{crm:?} {shop:?}");
    assert_eq!(crm.profile_id, shop.profile_id);
    assert_eq!(crm.unified_id, shop.unified_id);
    assert_ne!(other.unified_id, crm.unified_id, "no fuzzy name match");

    let reader = world.engine.reader();
    let identity = reader
        .profile_identity(&ws(), &crm.profile_id)
        .expect("profile");
    let mut keys: Vec<(String, String)> = identity
        .records
        .iter()
        .map(|record| (record.source.clone(), record.id.clone()))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![("crm".into(), "c-1".into()), ("shop".into(), "s-9".into())]
    );
    let shop_record = identity
        .records
        .iter()
        .find(|record| record.source == "shop")
        .expect("shop record");
    assert_eq!(
        shop_record.fields["given"],
        json!("Jonathon"),
        "as received"
    );
    let first = &identity.reconciled.fields["first_name"];
    assert_eq!(first.value, "Jonathan", "the CRM is more trusted");
    assert_eq!(first.provenance.source, "crm");
    // The reconciled attributes are the profile's traits (conditions and templates see them).
    let profile = reader.profile(&ws(), &crm.profile_id).expect("profile");
    assert_eq!(profile.traits["firstName"], json!("Jonathan"));
    assert_eq!(profile.traits["tier"], json!("gold"));
    assert_eq!(profile.traits["email"], json!("Jon.Smith@Example.com"));
    // The record's email is an identifier of the profile: events with it land there.
    let by_email = reader
        .profile_by_identifier(
            &ws(),
            &cairn_model::Identifier::email("jon.smith@example.com"),
        )
        .expect("linked");
    assert_eq!(by_email.id, crm.profile_id);

    let explanation = reader
        .explain_records(
            &ws(),
            &RecordKey::new("crm", "c-1"),
            &RecordKey::new("shop", "s-9"),
        )
        .expect("explained");
    assert!(explanation.same_profile);
    assert_eq!(explanation.path[0].rule, "first name and phone");

    // The resolver state and the mapping survive a restart (checkpoint, then restore).
    drop(reader);
    let world = world.restart_with(identity_options());
    assert_eq!(placement(&world, "shop", "s-9").profile_id, crm.profile_id);
    let after = upsert(
        &world,
        "shop",
        "s-11",
        json!({"given": "Jon", "family": "Smith", "mail": "JON.SMITH@example.com"}),
    );
    assert_eq!(after["unified_id"], json!(crm.unified_id), "{after}");
    // A crash right after: the replay of the log after the checkpoint rebuilds the same placement.
    let world = world.restart_with(EngineOptions {
        checkpoint_on_shutdown: false,
        ..identity_options()
    });
    let replayed = placement(&world, "shop", "s-11");
    assert_eq!(replayed.unified_id, crm.unified_id);
    assert_eq!(replayed.profile_id, crm.profile_id);
}

#[test]
fn a_merge_through_the_resolver_merges_enrolled_profiles_and_sends_nothing_twice() {
    let world = World::start_with(identity_options());
    world.publish(CART);
    // Two engine profiles from events: the shop account and the CRM login of one person.
    world.track("shop-acc", "Cart Abandoned", json!({"cart_value": 80}));
    world.pass(Duration::minutes(61));
    assert_eq!(world.messages("shop-acc").len(), 1, "the reminder email");
    world.track("crm-login", "Cart Abandoned", json!({"cart_value": 80}));
    let shop_profile = world.profile_id("shop-acc");
    let crm_profile = world.profile_id("crm-login");
    assert_ne!(shop_profile, crm_profile);

    // Their source records, not yet recognisably one person (the shop record has no contact point).
    upsert(
        &world,
        "shop",
        "s-1",
        json!({"given": "Ann", "family": "Lee", "account": "shop-acc"}),
    );
    upsert(
        &world,
        "crm",
        "c-1",
        json!({"first": "Anne", "last": "Lee", "email": "ann@example.org", "login": "crm-login"}),
    );
    assert_eq!(placement(&world, "shop", "s-1").profile_id, shop_profile);
    assert_eq!(placement(&world, "crm", "c-1").profile_id, crm_profile);

    // The shop record gets the email: the resolver merges the two clusters, the engine the profiles.
    let outcome = upsert(
        &world,
        "shop",
        "s-1",
        json!({"given": "Ann", "family": "Lee", "account": "shop-acc", "mail": "Ann@Example.org"}),
    );
    assert_eq!(
        outcome["merged"].as_array().map(Vec::len),
        Some(1),
        "{outcome}"
    );
    let merged = placement(&world, "crm", "c-1");
    assert_eq!(
        merged.profile_id, shop_profile,
        "the older profile survives"
    );
    assert_eq!(world.profile_id("crm-login"), shop_profile);

    // The CRM side's enrollment was waiting for its hour: it ended as merged and sends nothing.
    world.pass(Duration::hours(2));
    world.pass(Duration::days(2));
    let emails = world
        .messages("crm-login")
        .into_iter()
        .filter(|(channel, _)| channel == "email")
        .count();
    assert_eq!(emails, 1, "one reminder email for the person, not two");
    let stats = world
        .engine
        .reader()
        .journey_stats(&ws(), "cart-abandonment")
        .expect("stats");
    let version = &stats["versions"][0];
    assert_eq!(version["entered"], 2, "{stats}");
    assert_eq!(version["ended"]["merged"], 1, "{stats}");
    assert_eq!(version["current"], 0, "{stats}");
}

#[test]
fn identify_traits_are_web_records_resolved_by_the_fuzzy_rules_on_the_ingest_path() {
    let world = World::start_with(identity_options());
    upsert(
        &world,
        "crm",
        "c-1",
        json!({"first": "Jonathan", "last": "Smith", "mobile": "07911 123456"}),
    );
    let crm = placement(&world, "crm", "c-1");
    // A visitor signs up on the web with a nickname-like spelling and the same phone.
    world.identify(
        "w-5",
        json!({"firstName": "Jonathon", "phone": "+44 7911 123456", "plan": "pro"}),
    );
    assert_eq!(world.profile_id("w-5"), crm.profile_id, "one person");
    let web = placement(&world, "web", "w-5");
    assert_eq!(web.unified_id, crm.unified_id);
    let profile = world
        .engine
        .reader()
        .profile(&ws(), &crm.profile_id)
        .expect("profile");
    assert_eq!(
        profile.traits["plan"],
        json!("pro"),
        "the event's own traits"
    );
    assert_eq!(
        profile.traits["firstName"],
        json!("Jonathan"),
        "reconciled: the CRM wins"
    );
    // Someone else on the web stays apart.
    world.identify(
        "w-6",
        json!({"firstName": "Maria", "phone": "+44 7911 654321"}),
    );
    assert_ne!(world.profile_id("w-6"), crm.profile_id);
}

#[test]
fn a_workspace_without_identity_rules_refuses_source_records() {
    let world = World::start();
    let outcome = world.command(Command::UpsertSourceRecord {
        source: "crm".into(),
        id: "c-1".into(),
        fields: serde_json::Map::new(),
    });
    assert!(!outcome.ok);
    assert!(
        outcome.message.contains("no identity configuration"),
        "{outcome:?}"
    );
}

/// How long applying one source record takes on the apply path (map, resolve with the fuzzy rules,
/// place the cluster, link, reconcile into traits), without the log's fsync. A measurement, not a
/// check: `cargo test -p cairn-engine --release --lib -- --ignored source_record_apply --nocapture`.
#[test]
#[ignore = "a measurement; run it in release"]
fn source_record_apply_latency() {
    const PEOPLE: usize = 20_000;
    const FIRST: [&str; 8] = [
        "Ann", "Bob", "Carla", "Dmitri", "Eve", "Femi", "Grace", "Hiro",
    ];
    const LAST: [&str; 8] = [
        "Lee", "Smith", "Okafor", "Novak", "Garcia", "Khan", "Berg", "Sato",
    ];
    let mut state = crate::state::State::default();
    state.configure_identity(&identity_options().identity);
    let mut seq = 0;
    let mut times = Vec::with_capacity(PEOPLE * 2);
    for person in 0..PEOPLE {
        let first = FIRST[person % FIRST.len()];
        let last = LAST[(person / FIRST.len()) % LAST.len()];
        let phone = format!("+44 7911 {:06}", person);
        let crm = json!({"first": first, "last": last, "email": format!("p{person}@example.org"),
            "mobile": phone});
        // Every second person is also a shop customer with a misspelled first name.
        let shop = (person % 2 == 0)
            .then(|| json!({"given": format!("{first}e"), "family": last, "phone": phone}));
        for (source, fields) in [("crm", Some(crm)), ("shop", shop)] {
            let Some(Value::Object(fields)) = fields else {
                continue;
            };
            seq += 1;
            let command = Command::UpsertSourceRecord {
                source: source.into(),
                id: format!("{source}-{person}"),
                fields,
            };
            let started = std::time::Instant::now();
            state.apply_command(seq, &ws(), 1_700_000_000_000 + seq as i64, command);
            times.push(started.elapsed());
        }
    }
    // The first record also loads the phone-number metadata (lazily, once per process).
    let first = times.remove(0);
    times.sort();
    let at = |fraction: f64| times[((times.len() as f64 * fraction) as usize).min(times.len() - 1)];
    println!(
        "first record {first:?}; then {} source records applied: p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        times.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        times[times.len() - 1]
    );
}
