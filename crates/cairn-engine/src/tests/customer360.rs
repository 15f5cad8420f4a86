//! Customer 360 on the apply path: source records through the log, fuzzy resolution into one
//! profile, merges of profiles that are enrolled in journeys (nothing sent twice), splits (an
//! un-merge, a removed bridge, a new hub, a rule change) into engine profiles that replay and
//! restore alike, a removed record's attributes, and the progress figure of a re-resolution.

use super::journeys::{options, ws, World, CART};
use crate::customer360::IdentityConfigs;
use crate::journeys::Command;
use crate::{Clock, EngineOptions};
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

/// Restarts `world` twice — after a crash (no checkpoint at shutdown: the log replays) and from a
/// checkpoint — and asserts that the records and users land on the same profiles as before.
fn same_after_replay_and_restore(
    world: World,
    options: fn() -> EngineOptions,
    records: &[(&str, &str)],
    users: &[&str],
) -> World {
    let before = identity_summary(&world, records, users);
    let world = world.restart_with(EngineOptions {
        checkpoint_on_shutdown: false,
        ..options()
    });
    assert_eq!(identity_summary(&world, records, users), before, "replayed");
    let world = world.restart_with(options());
    assert_eq!(identity_summary(&world, records, users), before, "restored");
    world
}

/// What a test compares across a restart: each record's unified id and profile, each user's
/// profile, and those profiles' traits and identifiers.
fn identity_summary(world: &World, records: &[(&str, &str)], users: &[&str]) -> Value {
    let reader = world.engine.reader();
    let placements: Vec<Value> = records
        .iter()
        .map(|(source, id)| json!(placement(world, source, id)))
        .collect();
    let profiles: Vec<Value> = users
        .iter()
        .map(|user| {
            let id = world.profile_id(user);
            let profile = reader.profile(&ws(), &id).expect("profile");
            json!({"user": user, "id": id, "traits": profile.traits,
                   "identifiers": profile.identifiers})
        })
        .collect();
    json!({"placements": placements, "profiles": profiles})
}

fn unmerge(world: &World, left: &str, right: &str) -> Value {
    let outcome = world.command(Command::UnmergeSourceRecords {
        left: crate::customer360::parse_record_ref(left).expect("ref"),
        right: crate::customer360::parse_record_ref(right).expect("ref"),
    });
    assert!(outcome.ok, "{outcome:?}");
    serde_json::from_str(&outcome.message).expect("outcome json")
}

#[test]
fn an_unmerge_splits_the_engine_profile_and_the_split_off_side_starts_afresh() {
    let world = World::start_with(identity_options());
    world.publish(CART);
    upsert(
        &world,
        "crm",
        "c-1",
        json!({"first": "Jonathan", "last": "Smith", "email": "jon@example.org",
               "mobile": "07911 123456", "login": "crm-jon", "tier": "gold"}),
    );
    upsert(
        &world,
        "shop",
        "s-9",
        json!({"given": "Jonathon", "family": "Smyth", "phone": "+44 7911 123456",
               "mail": "jon@example.org", "account": "shop-jon"}),
    );
    let whole = placement(&world, "crm", "c-1");
    assert_eq!(
        placement(&world, "shop", "s-9").profile_id,
        whole.profile_id
    );
    assert_eq!(world.profile_id("shop-jon"), whole.profile_id);
    // The person abandons a cart as the shop account: one reminder email.
    world.track("shop-jon", "Cart Abandoned", json!({"cart_value": 80}));
    world.pass(Duration::minutes(61));
    assert_eq!(world.messages("crm-jon").len(), 1);

    let outcome = unmerge(&world, "crm:c-1", "shop:s-9");
    assert_eq!(
        outcome["split"].as_array().map(Vec::len),
        Some(1),
        "{outcome}"
    );
    let crm = placement(&world, "crm", "c-1");
    let shop = placement(&world, "shop", "s-9");
    assert_eq!(
        crm.profile_id, whole.profile_id,
        "the older record's side keeps the profile"
    );
    assert_eq!(crm.unified_id, whole.unified_id);
    assert_ne!(
        shop.profile_id, whole.profile_id,
        "the split-off side has its own profile"
    );
    assert_eq!(
        outcome["profiles"][1]["profile_id"],
        json!(shop.profile_id),
        "{outcome}"
    );
    // The user id only the shop record brought moved; the email both records bring stays.
    assert_eq!(world.profile_id("shop-jon"), shop.profile_id);
    assert_eq!(world.profile_id("crm-jon"), crm.profile_id);
    let reader = world.engine.reader();
    let by_email = reader
        .profile_by_identifier(&ws(), &cairn_model::Identifier::email("jon@example.org"))
        .expect("linked");
    assert_eq!(by_email.id, crm.profile_id);
    // Each side's reconciled traits come from its own records.
    let kept = reader.profile(&ws(), &crm.profile_id).expect("kept");
    let split_off = reader.profile(&ws(), &shop.profile_id).expect("split off");
    assert_eq!(kept.traits["firstName"], json!("Jonathan"));
    assert_eq!(kept.traits["tier"], json!("gold"));
    assert_eq!(split_off.traits["firstName"], json!("Jonathon"));
    assert_eq!(split_off.traits["lastName"], json!("Smyth"));
    assert!(
        split_off.traits.get("tier").is_none(),
        "{:?}",
        split_off.traits
    );
    assert_eq!(
        split_off.event_count, 0,
        "events stay with the kept profile"
    );
    assert_eq!(kept.event_count, 1);
    // The 360 views show one record each.
    let kept_360 = reader
        .profile_identity(&ws(), &crm.profile_id)
        .expect("360");
    let split_360 = reader
        .profile_identity(&ws(), &shop.profile_id)
        .expect("360");
    assert_eq!(kept_360.records.len(), 1);
    assert_eq!(split_360.records.len(), 1);
    assert_eq!(split_360.records[0].id, "s-9");
    assert_eq!(split_360.unified_ids, vec![shop.unified_id.clone()]);
    drop(reader);

    // Later events with the moved user id land on the new profile; the enrollment and its message
    // stayed with the kept profile, and nothing is sent twice.
    world.track("shop-jon", "Product Viewed", json!({}));
    world.pass(Duration::days(3));
    let emails = |user: &str| {
        world
            .messages(user)
            .into_iter()
            .filter(|(channel, _)| channel == "email")
            .count()
    };
    assert_eq!(emails("crm-jon"), 1, "{:?}", world.decided("crm-jon"));
    assert!(world.messages("shop-jon").is_empty());
    let split_off = world
        .engine
        .reader()
        .profile(&ws(), &shop.profile_id)
        .expect("split off");
    assert_eq!(split_off.event_count, 1);

    // Checkpoint and restore, then a crash and a replay of the log: the same profiles.
    let records = [("crm", "c-1"), ("shop", "s-9")];
    let users = ["crm-jon", "shop-jon"];
    same_after_replay_and_restore(world, identity_options, &records, &users);
}

#[test]
fn removing_the_record_that_bridged_two_people_splits_them_again_and_again() {
    let world = World::start_with(identity_options());
    // Two records that do not match each other: an email on one side, a phone on the other.
    upsert(
        &world,
        "crm",
        "c-1",
        json!({"first": "Jon", "last": "Smith", "email": "jon@example.org", "login": "crm-jon"}),
    );
    upsert(
        &world,
        "shop",
        "s-1",
        json!({"given": "Jon", "family": "Smith", "phone": "+44 7911 123456",
               "account": "shop-jon"}),
    );
    let crm = placement(&world, "crm", "c-1");
    let shop = placement(&world, "shop", "s-1");
    assert_ne!(crm.profile_id, shop.profile_id);
    // A third record with both bridges them: the engine merges the two profiles.
    let bridge = json!({"given": "Jon", "family": "Smith", "mail": "jon@example.org",
                        "phone": "+44 7911 123456"});
    upsert(&world, "shop", "s-2", bridge.clone());
    assert_eq!(world.profile_id("shop-jon"), crm.profile_id);
    let merged = world
        .engine
        .reader()
        .profile(&ws(), &crm.profile_id)
        .expect("merged");
    assert_eq!(merged.traits["phone"], json!("+44 7911 123456"));

    let removed = world.command(Command::RemoveSourceRecord {
        source: "shop".into(),
        id: "s-2".into(),
    });
    assert!(removed.ok, "{removed:?}");
    let first_split = placement(&world, "shop", "s-1");
    assert_eq!(placement(&world, "crm", "c-1").profile_id, crm.profile_id);
    assert_ne!(first_split.profile_id, crm.profile_id);
    assert_ne!(
        first_split.profile_id, shop.profile_id,
        "not the profile merged away earlier (its id still resolves to the survivor)"
    );
    assert_eq!(world.profile_id("shop-jon"), first_split.profile_id);
    assert_eq!(world.profile_id("crm-jon"), crm.profile_id);
    let kept = world
        .engine
        .reader()
        .profile(&ws(), &crm.profile_id)
        .expect("kept");
    assert!(
        kept.traits.get("phone").is_none(),
        "only the split-off records gave the phone: {:?}",
        kept.traits
    );

    // Bridged and split again: the split-off profile's id is taken (merged away), the next is used.
    upsert(&world, "shop", "s-2", bridge);
    assert_eq!(world.profile_id("shop-jon"), crm.profile_id);
    assert!(
        world
            .command(Command::RemoveSourceRecord {
                source: "shop".into(),
                id: "s-2".into(),
            })
            .ok
    );
    let second_split = placement(&world, "shop", "s-1");
    assert_ne!(second_split.profile_id, crm.profile_id);
    assert_ne!(second_split.profile_id, first_split.profile_id);
    assert_eq!(world.profile_id("shop-jon"), second_split.profile_id);

    let records = [("crm", "c-1"), ("shop", "s-1")];
    let users = ["crm-jon", "shop-jon"];
    same_after_replay_and_restore(world, identity_options, &records, &users);
}

#[test]
fn a_removed_record_takes_the_attributes_only_it_gave_off_its_profile() {
    let world = World::start_with(identity_options());
    upsert(
        &world,
        "crm",
        "c-1",
        json!({"first": "Jonathan", "last": "Smith", "mobile": "07911 123456",
               "login": "crm-jon", "tier": "gold"}),
    );
    upsert(
        &world,
        "shop",
        "s-9",
        json!({"given": "Jonathon", "family": "Smyth", "phone": "+44 7911 123456",
               "mail": "jon@shop.example", "account": "shop-jon"}),
    );
    upsert(
        &world,
        "crm",
        "c-5",
        json!({"first": "Maria", "last": "Lee", "login": "crm-maria", "tier": "silver"}),
    );
    let jon = world.profile_id("crm-jon");
    assert_eq!(world.profile_id("shop-jon"), jon, "fuzzy name + phone");
    let traits = |user: &str| {
        world
            .engine
            .reader()
            .profile(&ws(), &world.profile_id(user))
            .expect("profile")
            .traits
    };
    let whole = traits("crm-jon");
    assert_eq!(whole["firstName"], json!("Jonathan"), "the CRM wins");
    assert_eq!(whole["tier"], json!("gold"));

    let remove = |source: &str, id: &str| {
        let outcome = world.command(Command::RemoveSourceRecord {
            source: source.into(),
            id: id.into(),
        });
        assert!(outcome.ok, "{outcome:?}");
    };
    remove("crm", "c-1");
    let left = traits("crm-jon");
    assert!(
        left.get("tier").is_none(),
        "only the removed record gave it: {left:?}"
    );
    assert_eq!(
        left["firstName"],
        json!("Jonathon"),
        "now the shop's: {left:?}"
    );
    assert_eq!(left["lastName"], json!("Smyth"));
    assert_eq!(left["email"], json!("jon@shop.example"), "the shop's stays");
    assert_eq!(left["phone"], json!("+44 7911 123456"), "both gave it");
    // Identifiers stay: the removed record's login still finds the profile.
    assert_eq!(world.profile_id("crm-jon"), jon);
    assert_eq!(placement(&world, "shop", "s-9").profile_id, jon);
    let view = world
        .engine
        .reader()
        .profile_identity(&ws(), &jon)
        .expect("360");
    assert_eq!(view.records.len(), 1);

    // A profile's only record removed: every reconciled trait leaves.
    remove("crm", "c-5");
    let maria = traits("crm-maria");
    for field in ["firstName", "lastName", "tier"] {
        assert!(maria.get(field).is_none(), "{field}: {maria:?}");
    }

    let records = [("shop", "s-9")];
    let users = ["crm-jon", "shop-jon", "crm-maria"];
    same_after_replay_and_restore(world, identity_options, &records, &users);
}

/// The test rules with phones watched for hubs: a phone held by more than two records is one.
fn options_with_phone_hubs() -> EngineOptions {
    let text = format!("{RULES}\n[hubs]\nmax_records = 2\nfields = [\"phone\"]\n");
    let ruleset = Ruleset::parse(&text, DocumentFormat::Toml, "rules.toml").expect("rules");
    let compiled = Arc::new(CompiledRuleset::new(ruleset).expect("compiles"));
    EngineOptions {
        identity: IdentityConfigs::new(BTreeMap::from([(ws(), compiled)])),
        ..options()
    }
}

#[test]
fn a_phone_that_becomes_a_hub_splits_the_profile_it_held_together() {
    let world = World::start_with(options_with_phone_hubs());
    // Jon in the CRM and in the shop: one person through the fuzzy name and the phone alone.
    upsert(
        &world,
        "crm",
        "c-1",
        json!({"first": "Jonathan", "last": "Smith", "mobile": "020 7946 0000",
               "login": "crm-jon", "tier": "gold"}),
    );
    upsert(
        &world,
        "shop",
        "s-9",
        json!({"given": "Jonathon", "family": "Smyth", "phone": "+44 20 7946 0000",
               "account": "shop-jon"}),
    );
    let whole = placement(&world, "crm", "c-1");
    assert_eq!(
        placement(&world, "shop", "s-9").profile_id,
        whole.profile_id
    );
    assert_eq!(world.profile_id("shop-jon"), whole.profile_id);

    // A third record with the same phone (it is the office's): the phone becomes a hub, the link
    // that held only through it is withdrawn, and the engine splits the profile.
    upsert(
        &world,
        "shop",
        "s-20",
        json!({"given": "Maria", "family": "Lee", "phone": "+442079460000",
               "account": "shop-maria"}),
    );
    let crm = placement(&world, "crm", "c-1");
    let shop = placement(&world, "shop", "s-9");
    let maria = placement(&world, "shop", "s-20");
    assert_eq!(
        crm.profile_id, whole.profile_id,
        "the older record's side keeps it"
    );
    assert_eq!(crm.unified_id, whole.unified_id);
    assert_ne!(shop.unified_id, crm.unified_id);
    assert_ne!(shop.profile_id, crm.profile_id, "a profile of its own");
    assert_ne!(maria.profile_id, crm.profile_id);
    assert_ne!(maria.profile_id, shop.profile_id);
    assert_eq!(
        world.profile_id("shop-jon"),
        shop.profile_id,
        "its user id moved"
    );
    assert_eq!(world.profile_id("crm-jon"), crm.profile_id);
    let reader = world.engine.reader();
    let explanation = reader
        .explain_records(
            &ws(),
            &RecordKey::new("crm", "c-1"),
            &RecordKey::new("shop", "s-9"),
        )
        .expect("explained");
    assert!(!explanation.same_profile, "{explanation:?}");
    assert_eq!(explanation.shared_hubs.len(), 1, "{explanation:?}");
    assert_eq!(explanation.shared_hubs[0].field, "phone");
    let kept = reader.profile(&ws(), &crm.profile_id).expect("kept");
    let split_off = reader.profile(&ws(), &shop.profile_id).expect("split off");
    assert_eq!(kept.traits["firstName"], json!("Jonathan"));
    assert_eq!(kept.traits["tier"], json!("gold"));
    assert_eq!(split_off.traits["firstName"], json!("Jonathon"));
    assert!(
        split_off.traits.get("tier").is_none(),
        "{:?}",
        split_off.traits
    );
    drop(reader);

    // The same profiles after a replay of the log and after a restore from the checkpoint.
    let records = [("crm", "c-1"), ("shop", "s-9"), ("shop", "s-20")];
    let users = ["crm-jon", "shop-jon", "shop-maria"];
    same_after_replay_and_restore(world, options_with_phone_hubs, &records, &users);
}

/// The test rules with one more rule (a changed file: its fingerprint differs).
fn options_with_extra_rule() -> EngineOptions {
    let text = format!(
        "{RULES}\n[[rule]]\nname = \"same login\"\ncriteria = [{{ field = \"external_id.user_id\", method = \"exact\" }}]\n"
    );
    let ruleset = Ruleset::parse(&text, DocumentFormat::Toml, "rules.toml").expect("rules");
    let compiled = Arc::new(CompiledRuleset::new(ruleset).expect("compiles"));
    EngineOptions {
        identity: IdentityConfigs::new(BTreeMap::from([(ws(), compiled)])),
        ..options()
    }
}

/// The rules as they are now, compiled (what a preview with unchanged rules proposes).
fn rules_now(world: &World) -> Arc<CompiledRuleset> {
    let json = world.engine.reader().identity_rules(&ws()).expect("rules");
    let ruleset =
        Ruleset::parse(&json.to_string(), DocumentFormat::Json, "now").expect("rules now");
    Arc::new(CompiledRuleset::new(ruleset).expect("compiles"))
}

#[test]
fn unmerges_survive_a_rebuild_under_changed_rules_and_the_preview_keeps_them() {
    let world = World::start_with(identity_options());
    upsert(
        &world,
        "crm",
        "c-1",
        json!({"first": "Jonathan", "mobile": "07911 123456", "login": "crm-jon"}),
    );
    upsert(
        &world,
        "shop",
        "s-9",
        json!({"given": "Jonathon", "phone": "+44 7911 123456", "account": "shop-jon"}),
    );
    unmerge(&world, "crm:c-1", "shop:s-9");
    let crm = placement(&world, "crm", "c-1");
    let shop = placement(&world, "shop", "s-9");
    assert_ne!(crm.unified_id, shop.unified_id);
    // The dry run of the unchanged rules changes nothing: the un-merge is carried into it.
    let preview = world
        .engine
        .reader()
        .preview_identity_rules(&ws(), rules_now(&world), 5)
        .expect("preview");
    assert!(preview.diff.merges.is_empty(), "{preview:?}");
    assert!(preview.diff.splits.is_empty(), "{preview:?}");

    // A restart under a changed file: the snapshot is refused and the resolver rebuilt from the
    // records in their original order, with the un-merge after.
    let world = world.restart_with(options_with_extra_rule());
    let rebuilt_crm = placement(&world, "crm", "c-1");
    let rebuilt_shop = placement(&world, "shop", "s-9");
    assert_ne!(rebuilt_crm.unified_id, rebuilt_shop.unified_id);
    assert_eq!(rebuilt_crm.profile_id, crm.profile_id);
    assert_eq!(rebuilt_shop.profile_id, shop.profile_id);
    let explanation = world
        .engine
        .reader()
        .explain_records(
            &ws(),
            &RecordKey::new("crm", "c-1"),
            &RecordKey::new("shop", "s-9"),
        )
        .expect("explained");
    assert!(explanation.never_match, "{explanation:?}");
    // And through a crash of the rebuilt state (no checkpoint): the same.
    let world = world.restart_with(EngineOptions {
        checkpoint_on_shutdown: false,
        ..options_with_extra_rule()
    });
    assert_ne!(
        placement(&world, "crm", "c-1").unified_id,
        placement(&world, "shop", "s-9").unified_id
    );
}

/// The test rules with the email alone enough and the phone rule gone.
fn email_only_rules() -> Value {
    let head = RULES.split("[[rule]]").next().expect("sources");
    let text = format!(
        "{head}[[rule]]\nname = \"email\"\ncriteria = [{{ field = \"email\", method = \"exact_normalized\" }}]\n"
    );
    let ruleset = Ruleset::parse(&text, DocumentFormat::Toml, "proposed").expect("rules");
    serde_json::to_value(ruleset).expect("json")
}

#[test]
fn a_rule_change_through_the_log_merges_and_splits_profiles_and_stays_until_the_file_changes() {
    let world = World::start_with(identity_options());
    four_records(&world);
    let jon = world.profile_id("crm-jon");
    let bob = world.profile_id("crm-bob");
    assert_eq!(world.profile_id("shop-jon"), jon, "fuzzy name + phone");
    assert_ne!(world.profile_id("shop-bob"), bob, "Robert is not Bob");

    let outcome = world.command(Command::SetIdentityRules {
        ruleset: email_only_rules(),
        samples: 1,
    });
    assert!(outcome.ok, "{outcome:?}");
    let summary: Value = serde_json::from_str(&outcome.message).expect("summary");
    assert_eq!(
        summary["merges"].as_array().map(Vec::len),
        Some(1),
        "{summary}"
    );
    assert_eq!(
        summary["splits"].as_array().map(Vec::len),
        Some(1),
        "{summary}"
    );
    assert_eq!(summary["profiles_created"], 1, "{summary}");
    assert_eq!(summary["profiles_merged"], 1, "{summary}");
    assert_eq!(summary["records"], 4, "{summary}");
    // Bob's two records are one profile (the older survives); Jon's shop record has its own.
    assert_eq!(world.profile_id("shop-bob"), bob);
    assert_eq!(world.profile_id("crm-jon"), jon);
    let shop_jon = world.profile_id("shop-jon");
    assert_ne!(shop_jon, jon);
    assert_eq!(placement(&world, "shop", "s-9").profile_id, shop_jon);
    let rules = world.engine.reader().identity_rules(&ws()).expect("rules");
    assert_eq!(rules["rule"][0]["name"], "email", "{rules}");
    assert_eq!(rules["rule"].as_array().map(Vec::len), Some(1));
    // New records resolve under the new rules.
    upsert(
        &world,
        "shop",
        "s-4",
        json!({"given": "Someone", "mail": "BOB@example.com"}),
    );
    assert_eq!(placement(&world, "shop", "s-4").profile_id, bob);

    let records = [
        ("crm", "c-1"),
        ("shop", "s-9"),
        ("crm", "c-3"),
        ("shop", "s-3"),
        ("shop", "s-4"),
    ];
    let users = ["crm-jon", "shop-jon", "crm-bob", "shop-bob"];
    // A crash: the log replays the rule change; then a restart from the checkpoint: the rules set
    // through the log stay in force while the file is unchanged.
    let world = same_after_replay_and_restore(world, identity_options, &records, &users);
    let rules = world.engine.reader().identity_rules(&ws()).expect("rules");
    assert_eq!(rules["rule"][0]["name"], "email", "{rules}");

    // The file changed since: it wins, and the records are re-resolved under it.
    let world = world.restart_with(options_with_extra_rule());
    let rules = world.engine.reader().identity_rules(&ws()).expect("rules");
    assert_eq!(rules["rule"][0]["name"], "first name and email", "{rules}");
    assert_eq!(
        world.profile_id("shop-jon"),
        jon,
        "merged again by the phone rule"
    );

    // A ruleset that does not compile is refused and changes nothing.
    let outcome = world.command(Command::SetIdentityRules {
        ruleset: json!({"rule": [{"name": "x", "criteria": []}]}),
        samples: 0,
    });
    assert!(!outcome.ok, "{outcome:?}");
    let rules = world.engine.reader().identity_rules(&ws()).expect("rules");
    assert_eq!(rules["rule"][0]["name"], "first name and email", "{rules}");
}

/// Four records: Jon in the CRM and the shop (one person by name and phone), Robert and Bob (not).
fn four_records(world: &World) {
    for (source, id, fields) in [
        (
            "crm",
            "c-1",
            json!({"first": "Jonathan", "mobile": "07911 123456", "login": "crm-jon"}),
        ),
        (
            "shop",
            "s-9",
            json!({"given": "Jonathon", "phone": "+44 7911 123456", "account": "shop-jon"}),
        ),
        (
            "crm",
            "c-3",
            json!({"first": "Robert", "email": "bob@example.com", "login": "crm-bob"}),
        ),
        (
            "shop",
            "s-3",
            json!({"given": "Bob", "mail": "Bob@Example.com", "account": "shop-bob"}),
        ),
    ] {
        upsert(world, source, id, fields);
    }
}

#[test]
fn a_rule_change_shows_its_progress_while_it_runs_and_when_it_is_done() {
    use crate::customer360::{RulesCause, RulesPhase};
    let gate = crate::Gate::default();
    let world = World::start_with(EngineOptions {
        identity_gate: Some(gate.clone()),
        ..identity_options()
    });
    let progress = || {
        world
            .engine
            .reader()
            .identity_rules_progress(&ws())
            .expect("configured")
    };
    let idle = progress();
    assert_eq!((idle.run, idle.phase), (0, RulesPhase::Idle), "{idle:?}");
    assert_eq!(idle.started_at_ms, None);
    four_records(&world);

    // The applier stops after the first record, inside the state's write lock.
    gate.close();
    let at = world.clock.now();
    let receipt = world
        .engine
        .ingestor()
        .submit_command_blocking(
            ws(),
            &Command::SetIdentityRules {
                ruleset: email_only_rules(),
                samples: 0,
            },
            at,
        )
        .expect("committed");
    let held = gate.wait_held(std::time::Duration::from_secs(10));
    let running = progress();
    gate.open();
    assert!(held, "the re-resolution reached its breakpoint");
    assert_eq!(running.run, 1, "{running:?}");
    assert_eq!(running.cause, Some(RulesCause::Api));
    assert_eq!(running.phase, RulesPhase::Resolving, "{running:?}");
    assert_eq!(running.records_total, 4);
    assert!(
        running.records_done > 0 && running.records_done < running.records_total,
        "{running:?}"
    );
    assert_eq!(running.started_at_ms, Some(at.timestamp_millis()));

    let outcome = world
        .engine
        .reader()
        .command_outcome(receipt.seq)
        .expect("outcome");
    assert!(outcome.ok, "{outcome:?}");
    let done = progress();
    assert_eq!(done.phase, RulesPhase::Finished, "{done:?}");
    assert_eq!((done.records_done, done.records_total), (4, 4));
    assert_eq!((done.run, done.cause), (1, Some(RulesCause::Api)));
    assert_eq!(done.started_at_ms, Some(at.timestamp_millis()));
    assert!(progress().run == 1, "reading the figure changes nothing");
}

#[test]
fn a_rebuild_at_start_under_a_changed_file_reports_through_the_same_figure() {
    use crate::customer360::{RulesCause, RulesPhase};
    let world = World::start_with(identity_options());
    four_records(&world);
    let received = world.clock.now().timestamp_millis();
    let gate = crate::Gate::default();
    let options = EngineOptions {
        identity_gate: Some(gate.clone()),
        ..options_with_extra_rule()
    };
    // The figure is shared by every clone of the configuration: readable while the engine starts.
    let configs = options.identity.clone();
    gate.close();
    let starting = std::thread::spawn(move || world.restart_with(options));
    let held = gate.wait_held(std::time::Duration::from_secs(10));
    let running = configs.rules_progress(&ws()).expect("configured");
    gate.open();
    let world = starting.join().expect("started");
    assert!(held, "the rebuild reached its breakpoint");
    assert_eq!(running.cause, Some(RulesCause::Startup), "{running:?}");
    assert_eq!(running.phase, RulesPhase::Resolving, "{running:?}");
    assert_eq!(running.records_total, 4);
    assert!(
        running.records_done > 0 && running.records_done < running.records_total,
        "{running:?}"
    );
    let done = world
        .engine
        .reader()
        .identity_rules_progress(&ws())
        .expect("configured");
    assert_eq!(done.phase, RulesPhase::Finished, "{done:?}");
    assert_eq!((done.records_done, done.records_total), (4, 4));
    assert_eq!((done.run, done.cause), (1, Some(RulesCause::Startup)));
    assert_eq!(
        done.started_at_ms,
        Some(received),
        "the rebuild's time: the latest record's"
    );
    // A workspace without identity rules has no figure.
    assert!(world
        .engine
        .reader()
        .identity_rules_progress(&cairn_model::WorkspaceId::new("other"))
        .is_err());
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
    state.configure_identity(&identity_options().identity, None);
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
