//! The real-time resolver: merges, stable ids, splits, merge protection, explain, snapshots,
//! determinism.

use cairn_identity::ruleset::MatchField;
use cairn_identity::{CanonicalRecord, DocumentFormat, RecordKey, Resolver, Ruleset};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn ruleset(extra: &str) -> Ruleset {
    let text = format!(
        r#"
[[rule]]
name = "email"
criteria = [{{ field = "email", method = "exact_normalized" }}]

[[rule]]
name = "phone"
criteria = [{{ field = "phone", method = "exact_normalized" }}]

[[rule]]
name = "user id"
criteria = [{{ field = "external_id.user_id", method = "exact" }}]

[[rule]]
name = "name and birth date"
criteria = [
  {{ field = "first_name", method = "jaro_winkler", threshold = 0.88 }},
  {{ field = "last_name", method = "phonetic" }},
  {{ field = "date_of_birth", method = "date", transposed = true }},
]
{extra}
"#
    );
    Ruleset::parse(&text, DocumentFormat::Toml, "test").expect("valid ruleset")
}

fn person(source: &str, id: &str) -> CanonicalRecord {
    CanonicalRecord::new(source, id)
}

fn with_email(mut record: CanonicalRecord, email: &str) -> CanonicalRecord {
    record.emails.push(email.to_string());
    record
}

fn with_phone(mut record: CanonicalRecord, phone: &str) -> CanonicalRecord {
    record.phones.push(phone.to_string());
    record
}

fn with_user(mut record: CanonicalRecord, user: &str) -> CanonicalRecord {
    record
        .external_ids
        .entry("user_id".to_string())
        .or_default()
        .push(user.to_string());
    record
}

fn key(source: &str, id: &str) -> RecordKey {
    RecordKey::new(source, id)
}

fn same(resolver: &Resolver, left: &RecordKey, right: &RecordKey) -> bool {
    resolver.unified_id(left) == resolver.unified_id(right)
}

#[test]
fn records_sharing_a_normalized_email_become_one_profile_with_the_oldest_id() {
    let mut resolver = Resolver::new(ruleset("")).expect("resolver");
    let first = resolver
        .upsert(with_email(person("crm", "1"), "Ann.Lee@Example.org"))
        .expect("upsert");
    let second = resolver
        .upsert(with_email(person("shop", "9"), " ann.lee@example.ORG "))
        .expect("upsert");
    assert_eq!(second.unified_id, first.unified_id);
    assert_eq!(second.links.len(), 1);
    assert_eq!(second.links[0].rule, "email");
    assert!(second.merged.is_empty(), "a new record joining is no merge");
    assert_eq!(
        resolver.find_by_identifier(&MatchField::Email, "ANN.LEE@example.org", "web"),
        vec![first.unified_id.clone().expect("id")]
    );
}

#[test]
fn a_bridging_record_merges_two_profiles_and_its_removal_splits_them_back() {
    let mut resolver = Resolver::new(ruleset("")).expect("resolver");
    let a = resolver
        .upsert(with_email(person("crm", "a"), "a@x.org"))
        .expect("a");
    let b = resolver
        .upsert(with_phone(person("shop", "b"), "+44 20 7946 0018"))
        .expect("b");
    assert_ne!(a.unified_id, b.unified_id);
    let bridge = resolver
        .upsert(with_phone(
            with_email(person("web", "c"), "a@x.org"),
            "+442079460018",
        ))
        .expect("bridge");
    assert_eq!(
        bridge.unified_id, a.unified_id,
        "the oldest profile's id survives"
    );
    assert_eq!(bridge.merged.len(), 1);
    assert_eq!(bridge.merged[0].from, b.unified_id.clone().expect("id"));
    assert_eq!(bridge.merged[0].into, a.unified_id.clone().expect("id"));

    let removal = resolver.remove(&key("web", "c")).expect("removed");
    assert_eq!(removal.split.len(), 1);
    assert_eq!(resolver.unified_id(&key("crm", "a")), a.unified_id.as_ref());
    assert_eq!(
        resolver.unified_id(&key("shop", "b")),
        b.unified_id.as_ref(),
        "the split restores the younger profile's id"
    );
}

#[test]
fn changing_a_record_moves_it_and_keeps_its_age() {
    let mut resolver = Resolver::new(ruleset("")).expect("resolver");
    resolver
        .upsert(with_email(person("crm", "a"), "a@x.org"))
        .expect("a");
    resolver
        .upsert(with_email(person("crm", "b"), "b@x.org"))
        .expect("b");
    let joined = resolver
        .upsert(with_email(person("web", "c"), "a@x.org"))
        .expect("c");
    let moved = resolver
        .upsert(with_email(person("web", "c"), "b@x.org"))
        .expect("c again");
    assert_ne!(moved.unified_id, joined.unified_id);
    assert!(same(&resolver, &key("web", "c"), &key("crm", "b")));
    assert!(!same(&resolver, &key("web", "c"), &key("crm", "a")));
    let again = resolver
        .upsert(with_email(person("web", "c"), "b@x.org"))
        .expect("no-op");
    assert!(!again.changed);
}

#[test]
fn fuzzy_rule_matches_typos_nicknames_and_transposed_dates() {
    let mut rules = ruleset("[normalization]\nnicknames = true\n");
    rules.normalization.nicknames = true;
    let mut resolver = Resolver::new(rules).expect("resolver");
    let mut left = person("crm", "1");
    left.first_name = Some("William".into());
    left.last_name = Some("Smith".into());
    left.date_of_birth = cairn_identity::BirthDate::parse("1980-03-04", true);
    let mut right = person("service", "2");
    right.first_name = Some("Bill".into());
    right.last_name = Some("Smyth".into());
    right.date_of_birth = cairn_identity::BirthDate::parse("1980-04-03", true);
    resolver.upsert(left).expect("left");
    let resolution = resolver.upsert(right).expect("right");
    assert_eq!(resolution.links.len(), 1);
    assert_eq!(resolution.links[0].rule, "name and birth date");
    let explanation = resolver
        .explain(&key("crm", "1"), &key("service", "2"))
        .expect("explain");
    assert!(explanation.same_profile);
    assert_eq!(explanation.path.len(), 1);
    let criteria = &explanation.path[0].criteria;
    assert_eq!(criteria[0].left.as_deref(), Some("william"));
    assert_eq!(criteria[0].right.as_deref(), Some("william"));
    assert!(criteria.iter().all(|criterion| criterion.passed));
}

// ---- merge protection: each mechanism prevents a specific over-merge ------------------------

#[test]
fn blocked_values_never_link_records() {
    let mut resolver = Resolver::new(ruleset(
        "[protection]\nblocked_values = [\"null\", \"n/a\"]\nblocked_patterns = [\"^0+$\", { field = \"email\", pattern = \"^test@\" }]\n",
    ))
    .expect("resolver");
    for (id, email, phone) in [
        ("1", "test@example.org", "0000000"),
        ("2", "TEST@example.org", "000"),
        ("3", "null", "n/a"),
        ("4", "NULL", "N/A"),
    ] {
        resolver
            .upsert(with_phone(with_email(person("crm", id), email), phone))
            .expect("upsert");
    }
    let ids: BTreeSet<_> = ["1", "2", "3", "4"]
        .iter()
        .map(|id| resolver.unified_id(&key("crm", id)).cloned())
        .collect();
    assert_eq!(ids.len(), 4, "placeholder values fused nobody");
    // Without the protection the same records would merge.
    let mut unprotected =
        Resolver::new(ruleset("[protection]\nblocked_values = []\n")).expect("resolver");
    for id in ["1", "2"] {
        unprotected
            .upsert(with_email(person("crm", id), "test@example.org"))
            .expect("upsert");
    }
    assert!(same(&unprotected, &key("crm", "1"), &key("crm", "2")));
}

#[test]
fn a_hub_value_stops_linking_and_undoes_the_links_it_made() {
    let mut resolver = Resolver::new(ruleset("[hubs]\nmax_records = 3\n")).expect("resolver");
    // Three customers of one shop give the shop's phone: they link through it.
    for id in ["1", "2", "3"] {
        resolver
            .upsert(with_phone(person("shop", id), "+44 20 7946 0000"))
            .expect("upsert");
    }
    assert!(same(&resolver, &key("shop", "1"), &key("shop", "3")));
    // The fourth makes the phone a hub: it is reported and the links through it are withdrawn.
    let fourth = resolver
        .upsert(with_phone(person("shop", "4"), "+442079460000"))
        .expect("upsert");
    assert_eq!(fourth.new_hubs.len(), 1);
    assert_eq!(fourth.new_hubs[0].value, "+442079460000");
    assert!(!fourth.split.is_empty(), "the hub's profile splits");
    let ids: BTreeSet<_> = ["1", "2", "3", "4"]
        .iter()
        .map(|id| resolver.unified_id(&key("shop", id)).cloned())
        .collect();
    assert_eq!(ids.len(), 4);
    assert_eq!(resolver.hubs().len(), 1);
    // Records sharing the hub and a real identifier still match through the identifier.
    resolver
        .upsert(with_email(
            with_phone(person("crm", "5"), "+442079460000"),
            "e@x.org",
        ))
        .expect("upsert");
    let sixth = resolver
        .upsert(with_email(
            with_phone(person("crm", "6"), "+442079460000"),
            "e@x.org",
        ))
        .expect("upsert");
    assert_eq!(sixth.links.len(), 1);
    assert_eq!(sixth.links[0].rule, "email");
}

#[test]
fn identifier_limits_drop_the_lower_priority_link() {
    let limits =
        "[[protection.limit]]\nidentifier = \"external_id.user_id\"\nmax = 1\npriority = 1\n\
                  [[protection.limit]]\nidentifier = \"email\"\nmax = 5\npriority = 2\n";
    let mut resolver = Resolver::new(ruleset(limits)).expect("resolver");
    // Two users share a family email.
    resolver
        .upsert(with_email(
            with_user(person("shop", "1"), "u1"),
            "family@x.org",
        ))
        .expect("u1");
    let second = resolver
        .upsert(with_email(
            with_user(person("shop", "2"), "u2"),
            "family@x.org",
        ))
        .expect("u2");
    assert!(!same(&resolver, &key("shop", "1"), &key("shop", "2")));
    assert_eq!(second.links.len(), 1);
    assert!(
        second.links[0].refused.is_some(),
        "the email link is refused"
    );
    // A record with u2's user id and the family email joins u2 (the user id is stronger).
    let third = resolver
        .upsert(with_email(
            with_user(person("web", "3"), "u2"),
            "family@x.org",
        ))
        .expect("third");
    assert!(same(&resolver, &key("web", "3"), &key("shop", "2")));
    assert!(!same(&resolver, &key("web", "3"), &key("shop", "1")));
    let applied: Vec<&str> = third
        .links
        .iter()
        .filter(|link| link.refused.is_none())
        .map(|link| link.rule.as_str())
        .collect();
    assert!(applied.contains(&"user id"), "{applied:?}");
    let explanation = resolver
        .explain(&key("shop", "1"), &key("shop", "2"))
        .expect("explain");
    assert!(!explanation.same_profile);
    assert!(!explanation.refused.is_empty());
}

#[test]
fn the_maximum_cluster_size_caps_a_chain() {
    let mut resolver =
        Resolver::new(ruleset("[protection]\nmax_cluster_size = 3\n")).expect("resolver");
    // A chain of records, each sharing an email with the previous one.
    for index in 0..6 {
        let record = with_email(
            with_email(person("crm", &index.to_string()), &format!("{index}@x.org")),
            &format!("{}@x.org", index + 1),
        );
        resolver.upsert(record).expect("upsert");
    }
    let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
    for index in 0..6 {
        let id = resolver
            .unified_id(&key("crm", &index.to_string()))
            .expect("id");
        *sizes.entry(id.to_string()).or_default() += 1;
    }
    assert!(sizes.values().all(|&size| size <= 3), "{sizes:?}");
    assert_eq!(sizes.len(), 2);
}

#[test]
fn unmerge_splits_and_keeps_the_pair_apart() {
    let mut resolver = Resolver::new(ruleset("")).expect("resolver");
    resolver
        .upsert(with_email(person("crm", "a"), "shared@x.org"))
        .expect("a");
    resolver
        .upsert(with_email(person("crm", "b"), "shared@x.org"))
        .expect("b");
    let resolution = resolver
        .unmerge(&key("crm", "a"), &key("crm", "b"))
        .expect("unmerge");
    assert_eq!(resolution.split.len(), 1);
    assert!(!same(&resolver, &key("crm", "a"), &key("crm", "b")));
    // Re-sending b does not merge it back, nor does a third record bridging them.
    resolver
        .upsert(with_phone(
            with_email(person("crm", "b"), "shared@x.org"),
            "+14155552671",
        ))
        .expect("b again");
    resolver
        .upsert(with_email(person("web", "c"), "shared@x.org"))
        .expect("c");
    assert!(!same(&resolver, &key("crm", "a"), &key("crm", "b")));
    let explanation = resolver
        .explain(&key("crm", "a"), &key("crm", "b"))
        .expect("explain");
    assert!(explanation.never_match);
}

#[test]
fn snapshots_restore_the_exact_state() {
    let mut resolver = Resolver::new(ruleset(
        "[hubs]\nmax_records = 5\n[[protection.limit]]\nidentifier = \"external_id.user_id\"\nmax = 1\npriority = 1\n",
    ))
    .expect("resolver");
    for index in 0..40 {
        let mut record = with_email(
            person("crm", &index.to_string()),
            &format!("{}@x.org", index % 7),
        );
        if index % 3 == 0 {
            record = with_user(record, &format!("u{}", index % 4));
        }
        if index % 5 == 0 {
            record = with_phone(record, "+14155552671");
        }
        resolver.upsert(record).expect("upsert");
    }
    resolver
        .unmerge(&key("crm", "0"), &key("crm", "7"))
        .expect("unmerge");
    let bytes = resolver.snapshot();
    let mut restored = Resolver::restore(resolver.compiled().clone(), &bytes).expect("restore");
    assert_eq!(restored.assignments(), resolver.assignments());
    assert_eq!(restored.hubs(), resolver.hubs());
    assert_eq!(restored.stats(), resolver.stats());
    assert_eq!(restored.snapshot(), bytes);
    // Both continue identically.
    let next = with_email(person("web", "new"), "3@x.org");
    assert_eq!(
        restored.upsert(next.clone()).expect("restored"),
        resolver.upsert(next).expect("original")
    );
    // A snapshot is refused under another ruleset.
    let other = Resolver::new(ruleset("")).expect("other");
    assert!(Resolver::restore(other.compiled().clone(), &bytes).is_err());
    assert!(Resolver::restore(resolver.compiled().clone(), b"garbage").is_err());
}

// ---- determinism ----------------------------------------------------------------------------

fn record_strategy() -> impl Strategy<Value = (u8, u8, u8)> {
    (0u8..6, 0u8..6, 0u8..4)
}

fn build(id: usize, (email, phone, user): (u8, u8, u8)) -> CanonicalRecord {
    let mut record = person("src", &id.to_string());
    if email > 0 {
        record = with_email(record, &format!("e{email}@x.org"));
    }
    if phone > 0 {
        record = with_phone(record, &format!("+1415555{:04}", phone));
    }
    if user > 0 {
        record = with_user(record, &format!("u{user}"));
    }
    record
}

fn partition(resolver: &Resolver) -> BTreeSet<BTreeSet<RecordKey>> {
    let mut groups: BTreeMap<String, BTreeSet<RecordKey>> = BTreeMap::new();
    for (key, id) in resolver.assignments() {
        groups.entry(id.to_string()).or_default().insert(key);
    }
    groups.into_values().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Without protection refusals, profiles are the connected components of the match graph:
    /// any order of the same records gives the same profiles.
    #[test]
    fn any_order_gives_the_same_profiles(
        specs in proptest::collection::vec(record_strategy(), 1..30),
        seed in any::<u64>(),
    ) {
        let records: Vec<CanonicalRecord> =
            specs.iter().enumerate().map(|(id, spec)| build(id, *spec)).collect();
        let mut forward = Resolver::new(ruleset("")).expect("resolver");
        for record in &records {
            forward.upsert(record.clone()).expect("upsert");
        }
        let mut shuffled = records.clone();
        let mut state = seed | 1;
        for index in (1..shuffled.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            shuffled.swap(index, (state % (index as u64 + 1)) as usize);
        }
        let mut other = Resolver::new(ruleset("")).expect("resolver");
        for record in &shuffled {
            other.upsert(record.clone()).expect("upsert");
        }
        prop_assert_eq!(partition(&forward), partition(&other));
    }

    /// A merge followed by the removal of its cause restores the previous profiles and ids.
    #[test]
    fn removing_the_cause_of_a_merge_restores_the_profiles(
        specs in proptest::collection::vec(record_strategy(), 1..25),
        cause in record_strategy(),
        limits in any::<bool>(),
    ) {
        let extra = if limits {
            "[[protection.limit]]\nidentifier = \"external_id.user_id\"\nmax = 1\npriority = 1\n"
        } else {
            ""
        };
        let mut resolver = Resolver::new(ruleset(extra)).expect("resolver");
        for (id, spec) in specs.iter().enumerate() {
            resolver.upsert(build(id, *spec)).expect("upsert");
        }
        let before = resolver.assignments();
        let mut cause = build(999, cause);
        cause.key = RecordKey::new("cause", "1");
        resolver.upsert(cause).expect("cause");
        resolver.remove(&RecordKey::new("cause", "1")).expect("remove");
        prop_assert_eq!(resolver.assignments(), before);
    }
}
