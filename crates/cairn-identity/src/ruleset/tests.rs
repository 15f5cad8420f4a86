//! Ruleset parsing: valid documents, errors with positions, round trips, no panics.

use super::*;
use proptest::prelude::*;

const EXAMPLE: &str = r#"
link_type = "dedupe_and_link"

[normalization]
email_provider_rules = true
nicknames = true

[[rule]]
name = "email"
criteria = [{ field = "email", method = "exact_normalized" }]

[[rule]]
name = "person"
criteria = [
  { field = "first_name", method = "jaro_winkler", threshold = 0.9 },
  { field = "last_name", method = "phonetic" },
  { field = "date_of_birth", method = "date", transposed = true },
  { field = "postcode", method = "exact_normalized", blank = "matches" },
]

[protection]
blocked_patterns = ["^0+$", { field = "email", pattern = "^test@" }]
max_cluster_size = 20
[[protection.limit]]
identifier = "external_id.user_id"
max = 1
priority = 1

[hubs]
max_records = 10

[candidates]
max_block_size = 500
sorted_neighbourhood = [{ key = "last_name+first_name", window = 4 }]

[reconciliation]
default = "most_recent"
fields = { first_name = "most_frequent" }
"#;

fn parse_toml(text: &str) -> Result<Ruleset> {
    Ruleset::parse(text, DocumentFormat::Toml, "rules.toml")
}

fn error_of(text: &str) -> String {
    parse_toml(text).unwrap_err().to_string()
}

#[test]
fn a_complete_ruleset_parses() {
    let ruleset = parse_toml(EXAMPLE).expect("valid");
    assert_eq!(ruleset.rules.len(), 2);
    assert_eq!(
        ruleset.rules[1].criteria[2].method,
        Method::Date {
            tolerance_days: 0,
            transposed: true
        }
    );
    assert_eq!(ruleset.rules[1].criteria[3].blank, BlankPolicy::Matches);
    assert_eq!(ruleset.protection.limits[0].max, 1);
    assert_eq!(ruleset.protection.blocked_patterns.len(), 2);
    assert_eq!(ruleset.hubs.as_ref().map(|hubs| hubs.max_records), Some(10));
    // The person rule blocks on last-name codes and the birth date in any day/month order.
    let keys: Vec<String> = ruleset.rules[1]
        .blocking_keys()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(keys, vec!["date_of_birth:any_order"]);
}

#[test]
fn json_and_toml_are_the_same_document() {
    let ruleset = parse_toml(EXAMPLE).expect("valid");
    let json = serde_json::to_string_pretty(&ruleset).expect("serializes");
    let again = Ruleset::parse(&json, DocumentFormat::Json, "rules.json").expect("round trip");
    assert_eq!(again, ruleset);
}

#[test]
fn errors_name_the_line() {
    let cases = [
        (
            "[[rule]]\nname = \"a\"\ncriteria = [{ field = \"email\", method = \"exactish\" }]\n",
            "unknown method `exactish`",
            3,
        ),
        (
            "[[rule]]\nname = \"a\"\ncriteria = [\n  { field = \"shoe\", method = \"exact\" },\n]\n",
            "unknown match field `shoe`",
            4,
        ),
        (
            "[[rule]]\nname = \"a\"\ncriteria = [{ field = \"email\", method = \"jaro_winkler\", threshold = 1.5 }]\n",
            "between 0 and 1",
            3,
        ),
        (
            "[[rule]]\nname = \"a\"\ncriteria = [{ field = \"email\", method = \"exact\" }]\n[protection]\nblocked_patterns = [\"(unclosed\"]\n",
            "invalid regex `(unclosed`",
            5,
        ),
        (
            "[[rule]]\nname = \"a\"\ncriteria = [{ field = \"first_name\", method = \"jaro_winkler\", threshold = 0.9 }]\n",
            "add `block_on`",
            1,
        ),
        (
            "[[rule]]\nname = \"a\"\ncriteria = [{ field = \"email\", method = \"exact\", threshold = 0.9 }]\n",
            "takes no `threshold`",
            3,
        ),
        ("[[rule]]\nname = \"a\"\ncriteria = [\n", "unclosed array", 3),
        ("colour = \"red\"\n", "unknown field `colour`", 1),
        ("", "neither a [[rule]]", 1),
    ];
    for (text, expected, line) in cases {
        let error = error_of(text);
        assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        assert!(
            error.contains(&format!("line {line},")),
            "{error:?} should be on line {line}"
        );
    }
}

#[test]
fn json_errors_name_the_line_too() {
    let error = Ruleset::parse(
        "{\n  \"rule\": [\n    {\"name\": \"a\", \"criteria\": [{\"field\": \"email\", \"method\": \"nope\"}]}\n  ]\n}",
        DocumentFormat::Json,
        "rules.json",
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("rules.json: line 3"), "{error}");
    assert!(error.contains("unknown method `nope`"), "{error}");
}

#[test]
fn duplicate_rule_names_are_refused() {
    let error = error_of(
        "[[rule]]\nname = \"a\"\ncriteria = [{ field = \"email\", method = \"exact\" }]\n[[rule]]\nname = \"a\"\ncriteria = [{ field = \"phone\", method = \"exact\" }]\n",
    );
    assert!(error.contains("two rules are named `a`"), "{error}");
}

fn method_strategy() -> impl Strategy<Value = (MatchField, Method)> {
    prop_oneof![
        Just((MatchField::Email, Method::Exact)),
        Just((MatchField::Phone, Method::ExactNormalized)),
        (0u32..=100).prop_map(|t| (
            MatchField::FirstName,
            Method::JaroWinkler {
                threshold: f64::from(t) / 100.0
            }
        )),
        (0usize..4).prop_map(|d| (
            MatchField::LastName,
            Method::DamerauLevenshtein { max_distance: d }
        )),
        Just((MatchField::LastName, Method::Phonetic)),
        (0u32..=100).prop_map(|t| (
            MatchField::Address,
            Method::TokenSet {
                threshold: f64::from(t) / 100.0
            }
        )),
        (0u32..10, any::<bool>()).prop_map(|(days, transposed)| (
            MatchField::DateOfBirth,
            Method::Date {
                tolerance_days: days,
                transposed
            }
        )),
    ]
}

proptest! {
    #[test]
    fn the_parser_never_panics(text in "\\PC{0,200}") {
        let _ = Ruleset::parse(&text, DocumentFormat::Toml, "fuzz");
        let _ = Ruleset::parse(&text, DocumentFormat::Json, "fuzz");
    }

    #[test]
    fn rules_round_trip_through_both_syntaxes(
        criteria in proptest::collection::vec((method_strategy(), any::<bool>()), 1..5),
        name in "[a-z]{1,10}",
    ) {
        let criteria: Vec<Criterion> = criteria
            .into_iter()
            .map(|((field, method), matches_blank)| Criterion {
                field,
                method,
                blank: if matches_blank { BlankPolicy::Matches } else { BlankPolicy::Never },
            })
            .collect();
        let rule = Rule { name, criteria, block_on: vec![KeySpec::parse("email").expect("key")] };
        let ruleset = Ruleset { rules: vec![rule], ..Ruleset::default() };
        let json = serde_json::to_string(&ruleset).expect("json");
        prop_assert_eq!(&Ruleset::parse(&json, DocumentFormat::Json, "j").expect("json parses"), &ruleset);
        let toml_text = toml::to_string(&ruleset).expect("toml");
        prop_assert_eq!(&Ruleset::parse(&toml_text, DocumentFormat::Toml, "t").expect("toml parses"), &ruleset);
    }
}
