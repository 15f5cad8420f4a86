//! Property tests: random valid journeys (every step type, random graphs) under random event sequences
//! and time advances never panic, never lose an enrollment, end every enrollment exactly once once
//! enough time has passed, give unique message ids and replay identically.

mod common;

use cairn_journey::simulate::{simulate, ScriptItem, Simulation};
use cairn_journey::{parse_journey, validate, Catalog, Event, Format};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const DAY_MS: i64 = 86_400_000;
const START_MS: i64 = 1_735_689_600_000; // 2025-01-01T00:00:00Z
const EVENT_NAMES: &[&str] = &[
    "Start",
    "A",
    "B",
    "Goal",
    "Email Opened",
    "Email Link Clicked",
];

/// One generated step: its kind and parameters; targets are chosen when the graph is built.
#[derive(Debug, Clone)]
enum Gen {
    WaitDuration(u32),
    WaitLocal(u8, u8),
    WaitDate(i8, bool),
    WaitForEvent(usize, u32),
    Decision(u8),
    Engagement(u8, u32),
    Random(u8),
    Send(u8),
    Webhook(u32),
    Update(i8),
    Join,
}

fn gen_step() -> impl Strategy<Value = Gen> {
    prop_oneof![
        (1u32..4_000).prop_map(Gen::WaitDuration),
        (0u8..24, 0u8..128).prop_map(|(hour, days)| Gen::WaitLocal(hour, days)),
        (-5i8..5, any::<bool>()).prop_map(|(offset, yearly)| Gen::WaitDate(offset, yearly)),
        (0usize..3, 1u32..3_000).prop_map(|(event, minutes)| Gen::WaitForEvent(event, minutes)),
        (0u8..10).prop_map(Gen::Decision),
        (0u8..3, 1u32..3_000).prop_map(|(kind, minutes)| Gen::Engagement(kind, minutes)),
        (1u8..99).prop_map(Gen::Random),
        (0u8..3).prop_map(Gen::Send),
        (1u32..600).prop_map(Gen::Webhook),
        (-3i8..4).prop_map(Gen::Update),
        Just(Gen::Join),
    ]
}

/// Builds a valid journey document: step `i` always continues to `i + 1` on its first edge (so every
/// step is reachable and the graph is acyclic), other edges jump forward.
fn build(steps: &[Gen], jumps: &[usize], with_goal: bool) -> Value {
    let count = steps.len() + 1;
    let id = |index: usize| format!("s{index}");
    let jump = |index: usize, salt: usize| {
        let span = count - index - 1;
        id(index + 1 + jumps[(index + salt) % jumps.len()] % span)
    };
    let mut documents = Vec::new();
    let mut last_send: Option<usize> = None;
    for (index, step) in steps.iter().enumerate() {
        let next = id(index + 1);
        let other = jump(index, 1);
        let document = match step {
            Gen::WaitDuration(minutes) => {
                json!({"id": id(index), "type": "wait", "duration": format!("{minutes}m"), "next": next})
            }
            Gen::WaitLocal(hour, days) => {
                let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
                let chosen: Vec<&str> = names
                    .iter()
                    .enumerate()
                    .filter(|(bit, _)| days & (1 << bit) != 0)
                    .map(|(_, name)| *name)
                    .collect();
                json!({"id": id(index), "type": "wait",
                       "until": {"time_of_day": format!("{hour:02}:30"), "days_of_week": chosen}, "next": next})
            }
            Gen::WaitDate(offset, yearly) => json!({"id": id(index), "type": "wait",
                "until": {"attribute": "profile.special_date", "offset_days": offset, "yearly": yearly, "time_of_day": "09:00"},
                "next": next}),
            Gen::WaitForEvent(event, minutes) => json!({"id": id(index), "type": "wait_for_event",
                "event": EVENT_NAMES[1 + event % 2], "timeout": format!("{minutes}m"),
                "on_event": other, "on_timeout": next}),
            Gen::Decision(threshold) => json!({"id": id(index), "type": "decision_split",
                "branches": [
                    {"condition": format!("profile.score > {threshold}"), "next": other},
                    {"condition": "event.name == \"A\"", "next": jump(index, 2)}
                ],
                "default": next}),
            Gen::Engagement(kind, minutes) => match last_send {
                Some(send) => {
                    json!({"id": id(index), "type": "engagement_split", "send_step": id(send),
                    "engagement": (["opened", "clicked", "bounced"][usize::from(*kind)]),
                    "window": format!("{minutes}m"), "on_yes": other, "on_no": next})
                }
                None => json!({"id": id(index), "type": "join", "next": next}),
            },
            Gen::Random(weight) => json!({"id": id(index), "type": "random_split", "branches": [
                {"name": "a", "weight": weight, "next": next},
                {"name": "holdout", "weight": 100 - u32::from(*weight), "holdout": true, "next": other}
            ]}),
            Gen::Send(channel) => {
                last_send = Some(index);
                json!({"id": id(index), "type": "send", "channel": (["email", "sms", "push"][usize::from(*channel)]),
                       "template": "t", "next": next})
            }
            Gen::Webhook(seconds) => {
                json!({"id": id(index), "type": "send", "channel": "webhook", "template": "hook",
                "await_response": {"timeout": format!("{seconds}s"), "on_success": next, "on_failure": other, "on_timeout": next}})
            }
            Gen::Update(by) => json!({"id": id(index), "type": "update_profile",
                "increment": {"score": by}, "set_expr": {"last_step": format!("\"{}\"", id(index))}, "next": next}),
            Gen::Join => json!({"id": id(index), "type": "join", "next": next}),
        };
        documents.push(document);
    }
    documents.push(json!({"id": id(count - 1), "type": "exit"}));
    let mut journey = json!({
        "id": "generated",
        "name": "Generated",
        "entry": {"event": {"name": "Start"}},
        "re_entry": "concurrent",
        "exits": [{"id": "banned", "condition": "profile.score < -20"}],
        "defaults": {"time_zone": "Europe/Berlin"},
        "start": "s0",
        "steps": documents,
    });
    if with_goal {
        journey["goals"] = json!([{"id": "goal", "event": "Goal"}]);
    }
    journey
}

/// A scripted input: an event at an offset (minutes) from the previous one.
fn gen_script() -> impl Strategy<Value = Vec<(usize, u32, bool)>> {
    prop::collection::vec(
        (0usize..EVENT_NAMES.len(), 0u32..3_000, any::<bool>()),
        0..25,
    )
}

fn script_items(script: &[(usize, u32, bool)]) -> Vec<ScriptItem> {
    let mut at = START_MS;
    // Every script begins with an entry.
    let mut items = vec![ScriptItem::Event(Event::track(
        "Start",
        START_MS,
        Map::new(),
    ))];
    for (event, minutes, feedback) in script {
        at += i64::from(*minutes) * 60_000;
        let name = EVENT_NAMES[*event];
        let mut properties = Map::new();
        if name.starts_with("Email") && *feedback {
            // Addressed by step: the simulator fills in the latest message id of that step.
            properties.insert("message_step".to_owned(), json!("s0"));
        }
        items.push(ScriptItem::Event(Event::track(name, at, properties)));
        if *feedback && name == "B" {
            items.push(ScriptItem::Identify {
                at_ms: at,
                traits: Map::from_iter([("score".to_owned(), json!(-30))]),
            });
        }
    }
    items
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_journeys_end_every_enrollment_exactly_once_with_unique_message_ids(
        steps in prop::collection::vec(gen_step(), 1..12),
        jumps in prop::collection::vec(0usize..100, 1..8),
        with_goal in any::<bool>(),
        script in gen_script(),
        score in -5i64..15,
        date_offset_days in -400i64..400,
    ) {
        let document = build(&steps, &jumps, with_goal);
        let text = serde_json::to_string(&document).expect("serialize");
        let parsed = parse_journey(&text, Format::Json).expect("generated document parses");
        let journey = match validate(&parsed, &Catalog::open()) {
            Ok(journey) => Arc::new(journey),
            Err(errors) => {
                return Err(TestCaseError::fail(format!(
                    "generated journey is invalid: {}\n{text}",
                    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
                )));
            }
        };
        let special_date = cairn_journey::local_time::format_rfc3339(START_MS + date_offset_days * DAY_MS)
            .expect("date");
        let simulation = Simulation {
            profile_id: "prof_generated".to_owned(),
            profile: Map::from_iter([
                ("score".to_owned(), json!(score)),
                ("special_date".to_owned(), json!(&special_date[..10])),
                ("timezone".to_owned(), json!("America/New_York")),
            ]),
            script: script_items(&script),
            start_ms: START_MS,
            // Long enough for every bounded wait to be over: each step waits at most 400 days (a date
            // up to 400 days away, or a yearly date up to a year after the previous step).
            until_ms: START_MS + (steps.len() as i64 + 1) * 401 * DAY_MS,
            trace_values: false,
        };
        let report = simulate(journey.clone(), simulation.clone());

        // Every enrollment that entered ended exactly once, and none is left.
        let entered: Vec<u64> = report.inputs.iter()
            .flat_map(|input| input.effects.entered.iter().map(|entered| entered.enrollment.0))
            .collect();
        let mut ended: Vec<u64> = report.ended().iter().map(|ended| ended.enrollment.0).collect();
        prop_assert!(report.active.is_empty(), "still active: {:?}", report.active);
        ended.sort_unstable();
        let mut entered_sorted = entered.clone();
        entered_sorted.sort_unstable();
        prop_assert_eq!(&ended, &entered_sorted);

        // Per-step counters balance: nothing is lost between steps.
        let mut current: BTreeMap<u16, i64> = BTreeMap::new();
        for input in &report.inputs {
            for count in &input.effects.step_counts {
                let entry = current.entry(count.step.0).or_default();
                match count.change {
                    cairn_journey::effects::StepChange::Entered => *entry += 1,
                    _ => *entry -= 1,
                }
                prop_assert!(*entry >= 0);
            }
        }
        prop_assert!(current.values().all(|&value| value == 0), "{current:?}");

        // Message ids are unique per (enrollment, step, attempt).
        let ids: Vec<String> = report.messages().iter().map(|message| message.message_id.to_string()).collect();
        let unique: BTreeSet<&String> = ids.iter().collect();
        prop_assert_eq!(unique.len(), ids.len());

        // Replaying the same inputs gives the same effects, message ids included.
        let replay = simulate(journey, simulation);
        prop_assert_eq!(replay, report);
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in ".{0,300}") {
        let _ = parse_journey(&text, Format::Json);
        let _ = parse_journey(&text, Format::Yaml);
    }

    #[test]
    fn parsing_mutated_templates_never_panics(cut in 0usize..2_000, insert in "[ :{}\\[\\]a-z0-9\n-]{0,8}") {
        let text = std::fs::read_to_string(common::repo_root().join("journeys/templates/cart-abandonment.yaml"))
            .expect("template");
        let cut = cut.min(text.len());
        let cut = (0..=cut).rev().find(|index| text.is_char_boundary(*index)).unwrap_or(0);
        let mutated = format!("{}{}{}", &text[..cut], insert, &text[cut..]);
        if let Ok(document) = parse_journey(&mutated, Format::Yaml) {
            let _ = validate(&document, &Catalog::open());
        }
    }
}
