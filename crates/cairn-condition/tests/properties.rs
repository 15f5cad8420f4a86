//! Property tests: the parser never panics, printing and re-parsing gives the same tree, evaluation never
//! panics on arbitrary JSON, and `next_change_after` is never late.

mod common;

use cairn_condition::{
    compile, compile_expression, parse, BinaryOp, DurationLiteral, DurationUnit, Expr, ExprKind,
    MapContext, Path, Root, Schema, Segment, UnaryOp,
};
use proptest::prelude::*;
use serde_json::Value as Json;

fn expr(kind: ExprKind) -> Expr {
    Expr { kind, span: 0..0 }
}

fn leaf() -> impl Strategy<Value = Expr> {
    let key = prop_oneof!["[a-z_][a-z0-9_]{0,6}", "\\PC{0,6}"];
    let segment = prop_oneof![
        key.prop_map(Segment::Key),
        (0u64..1000).prop_map(Segment::Index)
    ];
    let root = prop_oneof![Just(Root::Profile), Just(Root::Event), Just(Root::Journey)];
    let unit = prop::sample::select(DurationUnit::ALL.to_vec());
    prop_oneof![
        Just(expr(ExprKind::Null)),
        any::<bool>().prop_map(|flag| expr(ExprKind::Bool(flag))),
        (0.0f64..1e12).prop_map(|number| expr(ExprKind::Number(number))),
        (0u32..100).prop_map(|number| expr(ExprKind::Number(f64::from(number)))),
        "\\PC{0,8}".prop_map(|text| expr(ExprKind::String(text))),
        "[\"\\\\\n\t']{0,4}".prop_map(|text| expr(ExprKind::String(text))),
        (0u64..10_000, unit)
            .prop_map(|(amount, unit)| expr(ExprKind::Duration(DurationLiteral { amount, unit }))),
        (root, prop::collection::vec(segment, 0..4))
            .prop_map(|(root, segments)| expr(ExprKind::Path(Path { root, segments }))),
    ]
}

fn binary_op() -> impl Strategy<Value = BinaryOp> {
    prop::sample::select(vec![
        BinaryOp::Or,
        BinaryOp::And,
        BinaryOp::Equal,
        BinaryOp::NotEqual,
        BinaryOp::Less,
        BinaryOp::LessOrEqual,
        BinaryOp::Greater,
        BinaryOp::GreaterOrEqual,
        BinaryOp::In,
        BinaryOp::NotIn,
        BinaryOp::Add,
        BinaryOp::Subtract,
        BinaryOp::Multiply,
        BinaryOp::Divide,
    ])
}

fn function_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(cairn_condition::FUNCTION_NAMES.to_vec()).prop_map(str::to_owned),
        "[a-z][a-z_]{0,5}".prop_filter("not a keyword", |name| {
            !["and", "or", "not", "in", "true", "false", "null"].contains(&name.as_str())
        }),
    ]
}

/// Random syntax trees (not necessarily well-typed).
fn tree() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            (binary_op(), inner.clone(), inner.clone()).prop_map(|(op, left, right)| expr(
                ExprKind::Binary(op, Box::new(left), Box::new(right))
            )),
            inner
                .clone()
                .prop_map(|operand| expr(ExprKind::Unary(UnaryOp::Not, Box::new(operand)))),
            inner
                .clone()
                .prop_map(|operand| expr(ExprKind::Unary(UnaryOp::Negate, Box::new(operand)))),
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| expr(ExprKind::List(items))),
            (function_name(), prop::collection::vec(inner, 0..4))
                .prop_map(|(name, arguments)| expr(ExprKind::Call { name, arguments })),
        ]
    })
}

fn json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        any::<f64>().prop_map(
            |number| serde_json::Number::from_f64(number).map_or(Json::Null, Json::Number)
        ),
        "\\PC{0,8}".prop_map(Json::String),
        prop::sample::select(vec![
            "2026-06-15",
            "2026-06-15T12:00:00Z",
            "Europe/Berlin",
            "pro",
            "EUR",
            "9999-99-99"
        ])
        .prop_map(|text| Json::String(text.to_owned())),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "plan",
                    "tags",
                    "timezone",
                    "signup_at",
                    "properties",
                    "total",
                    "currency",
                    "event",
                    "name",
                    "steps",
                    "offer",
                    "outcome",
                    "trigger",
                    "entered_at",
                    "x"
                ])
                .prop_map(str::to_owned),
                inner,
                0..5
            )
            .prop_map(|map| Json::Object(map.into_iter().collect())),
        ]
    })
}

/// Conditions touching every node kind, evaluated against random data.
const CONDITIONS: &[&str] = &[
    "profile.plan == \"pro\" and days_since(profile.signup_at) > 30",
    "event.properties.total >= 100 and event.properties.currency in [\"EUR\", \"USD\"]",
    "not exists(profile.phone) or lower(profile.country) == \"de\"",
    "count(\"Product Viewed\", 7d) > 0 and count(\"Order Completed\", 7d) == 0",
    "journey.steps.offer.outcome == \"clicked\" or journey.trigger.properties.cart_value > 50",
    "contains(profile.tags, \"vip\") and hour(now(), profile.timezone) < 20",
    "profile.tags[0] + 1d > now() - 1d * profile.x / profile.total",
    "matches(upper(string(profile.x)), \"^A\") or len(profile.tags) == number(starts_with(profile.plan, \"p\"))",
    "coalesce(profile.x, profile.plan, number(profile.total)) != null",
    "date(profile.signup_at, profile.timezone) < last_at(\"X\") or first_at(\"X\") == null",
    "weekday(profile.signup_at, \"America/New_York\") == day(event.timestamp) - month(now()) * year(now())",
    "days_until(profile.renewal_at) <= hours_until(journey.entered_at) or minutes_since(event.timestamp) < -profile.x",
    "ends_with(profile.email, \".com\") and profile.x not in profile.tags and -(-profile.total) / 0 == null",
];

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_text(source in "\\PC{0,80}") {
        let _ = parse(&source);
    }

    #[test]
    fn parse_never_panics_on_token_soup(
        tokens in prop::collection::vec(prop::sample::select(vec![
            "profile", "event", ".", "[", "]", "(", ")", "\"a\"", "'b", "1", "7d", "1.5h", "==", "!=", "<", ">=", "and", "or",
            "not", "in", "+", "-", "*", "/", ",", "count", "now", "null", "true", "&&", "!", "=", "#", "\\", "é", "\n",
        ]), 0..40)
    ) {
        let _ = parse(&tokens.join(" "));
        let _ = parse(&tokens.concat());
    }

    #[test]
    fn printing_then_parsing_gives_the_same_tree(tree in tree()) {
        let printed = tree.to_string();
        let reparsed = parse(&printed);
        prop_assert!(reparsed.is_ok(), "`{}` does not parse: {:?}", printed, reparsed);
        let reparsed = reparsed.unwrap();
        prop_assert_eq!(&reparsed, &tree, "printed as `{}`", printed);
        // Printing is stable.
        prop_assert_eq!(reparsed.to_string(), printed);
    }

    #[test]
    fn compiling_and_evaluating_random_trees_never_panics(tree in tree(), profile in json(), now in any::<i64>()) {
        let source = tree.to_string();
        if let Ok(condition) = compile_expression(&source, &Schema::open()) {
            let context = MapContext::new(now).with_profile(profile.clone()).with_event(profile.clone()).with_journey(profile);
            let _ = condition.evaluate(&context).to_json();
            let _ = condition.next_change_after(&context);
        }
    }

    #[test]
    fn evaluation_never_panics_on_arbitrary_json(
        profile in json(),
        event in json(),
        journey in json(),
        now in prop_oneof![any::<i64>(), 1_700_000_000_000i64..1_900_000_000_000],
        history in prop::collection::vec((prop::sample::select(vec!["X", "Product Viewed", "Order Completed"]), any::<i64>()), 0..6),
    ) {
        let context = MapContext::new(now)
            .with_profile(profile)
            .with_event(event)
            .with_journey(journey)
            .with_history(history);
        for source in CONDITIONS {
            let condition = compile(source, &Schema::open()).unwrap();
            let _ = condition.evaluate(&context);
            let _ = condition.matches(&context);
            let _ = condition.next_change_after(&context);
        }
    }
}

// ---- next_change_after is never late ----

/// Time-dependent conditions an audience or a goal would use.
const TIMED: &[&str] = &[
    "days_since(profile.signup_at) > 30",
    "days_since(profile.signup_at) == 3",
    "days_since(profile.signup_at) >= 2.5",
    "days_since(profile.signup_at) + 1 > 30",
    "hours_since(profile.signup_at) < 48",
    "days_until(profile.renewal_at) == 3",
    "days_until(profile.renewal_at) <= 7 and days_until(profile.renewal_at) >= 0",
    "count(\"Product Viewed\", 7d) > 0 and count(\"Order Completed\", 7d) == 0",
    "count(\"Product Viewed\", 2d) >= 2",
    "count(\"Product Viewed\", 1d) == 1 or count(\"Product Viewed\", 3d) != 2",
    "last_at(\"Product Viewed\") < now() - 3d",
    "now() > profile.renewal_at - 3d",
    "now() - profile.signup_at >= 36h",
    "(now() - profile.signup_at) / 1d > 4.5",
    "profile.renewal_at - now() < 2d",
    "now() == profile.renewal_at",
    "hour(now(), profile.timezone) < 20 and hour(now(), profile.timezone) >= 9",
    "weekday(now(), profile.timezone) in [6, 7]",
    "hour(now() + 90m, \"America/New_York\") == 8",
    "day(now(), profile.timezone) == day(profile.birthday, profile.timezone) and month(now(), profile.timezone) == month(profile.birthday, profile.timezone)",
    "not (days_since(profile.signup_at) > 1) and hour(now()) > 3",
    "profile.plan == \"pro\" and days_since(profile.signup_at) > 30",
    "days_since(profile.missing) > 3",
    "string(now()) != \"\"",
];

fn timed_context() -> impl Strategy<Value = MapContext> {
    let base = common::at("2026-03-20T00:00:00Z");
    let span = 40 * common::DAY_MS;
    let zones = prop::sample::select(vec![
        "Europe/Berlin",
        "America/New_York",
        "Asia/Kathmandu",
        "UTC",
        "Australia/Lord_Howe",
    ]);
    (
        0..span,
        -span..span,
        -span..span,
        -span..span,
        zones,
        prop::collection::vec(
            (
                prop::sample::select(vec!["Product Viewed", "Order Completed"]),
                -10 * common::DAY_MS..common::DAY_MS,
            ),
            0..6,
        ),
        prop::sample::select(vec!["pro", "free"]),
    )
        .prop_map(
            move |(now_offset, signup, renewal, birthday, zone, history, plan)| {
                let now = base + now_offset;
                let iso = |ms: i64| cairn_condition::Value::Timestamp(ms).to_json();
                MapContext::new(now)
                    .with_profile(serde_json::json!({
                        "signup_at": iso(now + signup),
                        "renewal_at": iso(now + renewal),
                        "birthday": iso(base + birthday),
                        "timezone": zone,
                        "plan": plan,
                    }))
                    .with_history(
                        history
                            .into_iter()
                            .map(|(name, offset)| (name, now + offset)),
                    )
            },
        )
}

proptest! {
    #[test]
    fn next_change_after_is_never_late(context in timed_context(), samples in prop::collection::vec(0.0f64..1.0, 8)) {
        let now = context.now_ms;
        for source in TIMED {
            let condition = compile(source, &Schema::open()).unwrap();
            let current = condition.evaluate(&context).into_owned();
            let next = condition.next_change_after(&context);
            if let Some(next) = next {
                prop_assert!(next > now, "`{}`: {} is not after now {}", source, next, now);
            }
            // Horizon to sample: up to the answer (exclusive), or 400 days when there is none.
            let end = next.unwrap_or(now + 400 * common::DAY_MS);
            let mut instants: Vec<i64> = samples.iter().map(|fraction| now + ((end - now) as f64 * fraction) as i64).collect();
            instants.push(end - 1);
            for instant in instants.into_iter().filter(|&instant| instant >= now && instant < end) {
                let later = context.at(instant);
                let value = condition.evaluate(&later).into_owned();
                prop_assert_eq!(
                    &value, &current,
                    "`{}` changed at {} (now {}, answered {:?})", source, instant, now, next
                );
            }
        }
    }
}

// ---- specialized nodes agree with the general ones ----

proptest! {
    /// `path OP constant` and `path in [strings]` compile to dedicated nodes; wrapping the path in
    /// `coalesce(...)` keeps the general ones. Both must give the same value for any data.
    #[test]
    fn specialized_comparisons_agree_with_the_general_ones(
        value in json(),
        operator in prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]),
        constant in prop::sample::select(vec!["1", "2.5", "\"pro\"", "\"2026-06-15\"", "true", "[1, 2]", "date(\"2026-06-15\")", "7d"]),
        list in prop::sample::select(vec!["[\"pro\", \"free\"]", "[\"2026-06-15\"]", "[]"]),
        negated in any::<bool>(),
    ) {
        let context = MapContext::new(0).with_profile(serde_json::json!({ "x": value }));
        let schema = Schema::open();
        let agree = |specialized: String, general: String| -> Result<(), TestCaseError> {
            let (Ok(specialized_condition), Ok(general_condition)) = (compile(&specialized, &schema), compile(&general, &schema)) else {
                return Ok(());
            };
            prop_assert_eq!(
                specialized_condition.evaluate(&context).to_json(),
                general_condition.evaluate(&context).to_json(),
                "`{}` vs `{}`", specialized, general
            );
            Ok(())
        };
        agree(format!("profile.x {operator} {constant}"), format!("coalesce(profile.x) {operator} {constant}"))?;
        agree(format!("{constant} {operator} profile.x"), format!("{constant} {operator} coalesce(profile.x)"))?;
        let member = if negated { "not in" } else { "in" };
        agree(format!("profile.x {member} {list}"), format!("coalesce(profile.x) {member} {list}"))?;
    }
}
