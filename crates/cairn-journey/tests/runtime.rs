//! The state machine, fed input by input with explicit instants, asserting the effects: every step type
//! and the edge cases (event at the timeout instant, goal while waiting, re-entry while enrolled, merges,
//! DST, pause and resume).

mod common;

use cairn_journey::effects::{Decision, Effects, EndDetail, StepChange};
use cairn_journey::orchestrate::{
    handle, JourneySet, ProfileInput, ProfileJourneys, SequentialIds,
};
use cairn_journey::runtime::{Context, LiveJourney, NoHistory};
use cairn_journey::{
    merge_profiles, Catalog, CompiledJourney, DeliveryResult, EndReason, Event, Format, JourneyKey,
    Status,
};
use common::{at, compile_text, ms};
use serde_json::{json, Map, Value};
use std::sync::Arc;

fn journey(yaml: &str) -> Arc<CompiledJourney> {
    compile_text(yaml, Format::Yaml, &Catalog::open())
}

/// One profile, one or more journeys, driven input by input.
struct Harness {
    journeys: JourneySet,
    state: ProfileJourneys,
    profile: Map<String, Value>,
    profile_id: Arc<str>,
    ids: SequentialIds,
}

impl Harness {
    fn new(journey: Arc<CompiledJourney>, profile: Value) -> Harness {
        Harness::with(vec![journey], profile)
    }

    fn with(journeys: Vec<Arc<CompiledJourney>>, profile: Value) -> Harness {
        let live = journeys
            .into_iter()
            .enumerate()
            .map(|(position, journey)| LiveJourney::new(JourneyKey(position as u32 + 1), journey))
            .collect();
        Harness {
            journeys: JourneySet::new(live),
            state: ProfileJourneys::default(),
            profile: match profile {
                Value::Object(map) => map,
                _ => Map::new(),
            },
            profile_id: Arc::from("prof_1"),
            ids: SequentialIds::default(),
        }
    }

    fn input(&mut self, now: i64, input: ProfileInput<'_>) -> Effects {
        let mut effects = Effects::default();
        let mut context = Context {
            now_ms: now,
            profile_id: &self.profile_id,
            profile: &mut self.profile,
            history: &NoHistory,
            trace_values: true,
        };
        handle(
            &self.journeys,
            &mut self.state,
            input,
            &mut context,
            &mut self.ids,
            &mut effects,
        );
        effects
    }

    fn event(&mut self, time: &str, name: &str, properties: Value) -> Effects {
        let properties = match properties {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let event = Event::track(name, ms(time), properties);
        self.input(ms(time), ProfileInput::Event(&event))
    }

    /// Fires the earliest due timer at its instant.
    fn next_timer(&mut self) -> (String, Effects) {
        let (wake_at, enrollment) = self
            .state
            .enrollments
            .iter()
            .filter_map(|enrollment| enrollment.timer().map(|wake| (wake, enrollment.id)))
            .min()
            .expect("a timer is set");
        let effects = self.input(wake_at, ProfileInput::Timer { enrollment });
        (at(wake_at), effects)
    }

    fn timer_of_first(&self) -> Option<String> {
        self.state.enrollments.first()?.timer().map(at)
    }

    fn step_of_first(&self) -> String {
        let enrollment = &self.state.enrollments[0];
        let live = self.journeys.get(enrollment.journey).expect("journey");
        live.journey.steps[enrollment.step.get()].id.to_string()
    }
}

fn sent(effects: &Effects) -> Vec<(String, String)> {
    effects
        .outbox
        .iter()
        .map(|message| (message.step_id.to_string(), message.message_id.to_string()))
        .collect()
}

fn ended(effects: &Effects) -> Vec<EndReason> {
    effects.ended.iter().map(|ended| ended.reason).collect()
}

const HEADER: &str = "id: j\nname: J\nentry: {event: {name: Start}}\nre_entry: concurrent\n";

#[test]
fn wait_for_a_duration_sets_the_timer_then_moves_on() {
    let mut harness = Harness::new(
        journey(&format!(
            "{HEADER}start: w\nsteps:\n  - {{id: w, type: wait, duration: 2h, next: s}}\n  - {{id: s, type: send, channel: email, template: t, next: x}}\n  - {{id: x, type: exit}}\n"
        )),
        json!({}),
    );
    let entered = harness.event("2025-01-01T10:00:00Z", "Start", json!({}));
    assert_eq!(entered.entered.len(), 1);
    assert_eq!(
        entered.timers[0].wake_at_ms,
        Some(ms("2025-01-01T12:00:00Z"))
    );
    assert!(entered.outbox.is_empty());
    // An early timer (stale) does nothing.
    let early = harness.input(
        ms("2025-01-01T11:00:00Z"),
        ProfileInput::Timer {
            enrollment: harness.state.enrollments[0].id,
        },
    );
    assert!(early.is_empty());
    let (when, effects) = harness.next_timer();
    assert_eq!(when, "2025-01-01T12:00:00.000Z");
    assert_eq!(
        sent(&effects),
        [("s".to_owned(), "000000000000000100010000".to_owned())]
    );
    assert_eq!(ended(&effects), [EndReason::Completed]);
    assert!(harness.state.enrollments.is_empty());
    // Counters: entered w, s, x; left w and s by advancing; x by ending.
    let changes: Vec<(u16, StepChange)> = entered
        .step_counts
        .iter()
        .chain(&effects.step_counts)
        .map(|count| (count.step.0, count.change))
        .collect();
    assert_eq!(
        changes,
        [
            (0, StepChange::Entered),
            (0, StepChange::Advanced),
            (1, StepChange::Entered),
            (1, StepChange::Advanced),
            (2, StepChange::Entered),
            (2, StepChange::Ended(EndReason::Completed)),
        ]
    );
}

#[test]
fn wait_until_a_date_time_passes_at_once_when_it_is_over() {
    let yaml = format!(
        "{HEADER}start: w\nsteps:\n  - {{id: w, type: wait, until: {{date_time: \"2025-06-01T09:00:00+02:00\"}}, next: x}}\n  - {{id: x, type: exit}}\n"
    );
    let mut before = Harness::new(journey(&yaml), json!({}));
    before.event("2025-05-01T00:00:00Z", "Start", json!({}));
    assert_eq!(
        before.timer_of_first().as_deref(),
        Some("2025-06-01T07:00:00.000Z")
    );
    let mut after = Harness::new(journey(&yaml), json!({}));
    let effects = after.event("2025-07-01T00:00:00Z", "Start", json!({}));
    assert_eq!(ended(&effects), [EndReason::Completed]);
    assert!(matches!(
        effects.trace[1].decision,
        Decision::Wait { passed: true, .. }
    ));
}

fn local_time_journey(default_zone: &str) -> Arc<CompiledJourney> {
    journey(&format!(
        "{HEADER}defaults: {{time_zone: {default_zone}}}\nstart: w\nsteps:\n  - {{id: w, type: wait, until: {{time_of_day: \"02:30\"}}, next: x}}\n  - {{id: x, type: exit}}\n"
    ))
}

#[test]
fn local_time_wait_on_spring_forward_day_moves_to_the_jump() {
    // Berlin 2025-03-30: 02:00 CET jumps to 03:00 CEST (01:00 UTC). 02:30 does not exist.
    let mut berlin = Harness::new(
        local_time_journey("UTC"),
        json!({"timezone": "Europe/Berlin"}),
    );
    berlin.event("2025-03-29T23:00:00Z", "Start", json!({}));
    assert_eq!(
        berlin.timer_of_first().as_deref(),
        Some("2025-03-30T01:00:00.000Z")
    );
    // New York 2025-03-09: 02:00 EST jumps to 03:00 EDT (07:00 UTC); default zone used (no profile zone).
    let mut new_york = Harness::new(local_time_journey("America/New_York"), json!({}));
    new_york.event("2025-03-09T05:00:00Z", "Start", json!({}));
    assert_eq!(
        new_york.timer_of_first().as_deref(),
        Some("2025-03-09T07:00:00.000Z")
    );
}

#[test]
fn local_time_wait_on_fall_back_day_takes_the_first_instant_and_keeps_the_wall_clock() {
    // Berlin 2025-10-26: 02:30 happens twice (00:30 and 01:30 UTC): the first.
    let mut berlin = Harness::new(
        local_time_journey("UTC"),
        json!({"timezone": "Europe/Berlin"}),
    );
    berlin.event("2025-10-25T20:00:00Z", "Start", json!({}));
    assert_eq!(
        berlin.timer_of_first().as_deref(),
        Some("2025-10-26T00:30:00.000Z")
    );
    // An invalid profile zone falls back to the journey default, and the trace says so.
    let mut fallback = Harness::new(
        local_time_journey("America/New_York"),
        json!({"timezone": "Mars/Olympus"}),
    );
    let effects = fallback.event("2025-11-01T12:00:00Z", "Start", json!({}));
    // New York 2025-11-02: 02:30 exists once, after the fall back (EST): 07:30 UTC.
    assert_eq!(
        fallback.timer_of_first().as_deref(),
        Some("2025-11-02T07:30:00.000Z")
    );
    let explanation = cairn_journey::explain::explain(
        &fallback.journeys.journeys()[0].journey,
        &effects.trace[1],
    );
    assert!(
        explanation.contains("the journey's default time zone"),
        "{explanation}"
    );
}

#[test]
fn date_attribute_waits_with_offsets_and_yearly_birthdays() {
    let renewal = journey(&format!(
        "{HEADER}start: w\nsteps:\n  - {{id: w, type: wait, until: {{attribute: profile.renewal_date, offset_days: -3, time_of_day: \"09:00\"}}, next: x}}\n  - {{id: x, type: exit}}\n"
    ));
    let mut harness = Harness::new(
        renewal,
        json!({"renewal_date": "2025-04-01", "timezone": "Europe/Berlin"}),
    );
    harness.event("2025-03-01T00:00:00Z", "Start", json!({}));
    // 2025-03-29 09:00 CET = 08:00 UTC.
    assert_eq!(
        harness.timer_of_first().as_deref(),
        Some("2025-03-29T08:00:00.000Z")
    );

    let birthday = journey(&format!(
        "{HEADER}start: w\nsteps:\n  - {{id: w, type: wait, until: {{attribute: profile.birthday, yearly: true, time_of_day: \"10:00\"}}, next: x}}\n  - {{id: x, type: exit}}\n"
    ));
    let mut harness = Harness::new(birthday, json!({"birthday": "1990-02-14"}));
    harness.event("2025-03-01T00:00:00Z", "Start", json!({}));
    assert_eq!(
        harness.timer_of_first().as_deref(),
        Some("2026-02-14T10:00:00.000Z")
    );
}

fn wait_for_event_journey() -> Arc<CompiledJourney> {
    journey(&format!(
        "{HEADER}start: w\nsteps:\n  - id: w\n    type: wait_for_event\n    event: Paid\n    filter: event.properties.amount > 10\n    timeout: 1h\n    on_event: yes\n    on_timeout: no\n  - {{id: yes, type: send, channel: email, template: thanks, next: x}}\n  - {{id: no, type: send, channel: email, template: nudge, next: x}}\n  - {{id: x, type: exit}}\n"
    ))
}

#[test]
fn awaited_event_arriving_exactly_at_the_timeout_takes_the_event_path() {
    let mut harness = Harness::new(wait_for_event_journey(), json!({}));
    harness.event("2025-01-01T10:00:00Z", "Start", json!({}));
    // A paid event below the filter does not count.
    let small = harness.event("2025-01-01T10:30:00Z", "Paid", json!({"amount": 5}));
    assert!(small.outbox.is_empty());
    let effects = harness.event("2025-01-01T11:00:00Z", "Paid", json!({"amount": 20}));
    assert_eq!(effects.outbox[0].template.as_ref(), "thanks");
    assert_eq!(effects.timers[0].wake_at_ms, None);
}

#[test]
fn awaited_event_after_the_timeout_instant_does_not_count_and_the_timer_takes_the_timeout_path() {
    let mut harness = Harness::new(wait_for_event_journey(), json!({}));
    harness.event("2025-01-01T10:00:00Z", "Start", json!({}));
    let late = harness.event("2025-01-01T11:00:00.001Z", "Paid", json!({"amount": 20}));
    assert!(late.outbox.is_empty());
    let (when, effects) = harness.next_timer();
    assert_eq!(when, "2025-01-01T11:00:00.000Z");
    assert_eq!(effects.outbox[0].template.as_ref(), "nudge");
}

#[test]
fn decision_split_first_match_wins_and_the_trace_shows_what_it_read() {
    let yaml = format!(
        "{HEADER}start: d\nsteps:\n  - id: d\n    type: decision_split\n    branches:\n      - {{name: vip, condition: 'profile.tier == \"gold\"', next: a}}\n      - {{name: big, condition: 'event.properties.total > 100', next: b}}\n    default: c\n  - {{id: a, type: send, channel: email, template: vip, next: x}}\n  - {{id: b, type: send, channel: email, template: big, next: x}}\n  - {{id: c, type: send, channel: email, template: other, next: x}}\n  - {{id: x, type: exit}}\n"
    );
    let compiled = journey(&yaml);
    let cases = [
        (json!({"tier": "gold"}), 500, "vip"),
        (json!({"tier": "silver"}), 500, "big"),
        (json!({"tier": "silver"}), 50, "other"),
    ];
    for (profile, total, template) in cases {
        let mut harness = Harness::new(compiled.clone(), profile);
        let effects = harness.event("2025-01-01T10:00:00Z", "Start", json!({"total": total}));
        assert_eq!(effects.outbox[0].template.as_ref(), template);
    }
    let mut harness = Harness::new(compiled.clone(), json!({"tier": "gold"}));
    let effects = harness.event("2025-01-01T10:00:00Z", "Start", json!({"total": 1}));
    let explanation = cairn_journey::explain::explain(&compiled, &effects.trace[1]);
    assert_eq!(
        explanation,
        "branch 1 `vip` matched: profile.tier == \"gold\" (read profile.tier = \"gold\")"
    );
}

fn engagement_journey() -> Arc<CompiledJourney> {
    journey(&format!(
        "{HEADER}start: e\nsteps:\n  - {{id: e, type: send, channel: email, template: t, next: w}}\n  - {{id: w, type: wait, duration: 1h, next: s}}\n  - {{id: s, type: engagement_split, send_step: e, engagement: opened, window: 1d, on_yes: yes, on_no: no}}\n  - {{id: yes, type: exit}}\n  - {{id: no, type: send, channel: sms, template: t2, next: done}}\n  - {{id: done, type: exit}}\n"
    ))
}

#[test]
fn engagement_split_takes_yes_at_once_when_already_engaged() {
    let mut harness = Harness::new(engagement_journey(), json!({}));
    let entered = harness.event("2025-01-01T10:00:00Z", "Start", json!({}));
    let message_id = entered.outbox[0].message_id.to_string();
    let open = harness.event(
        "2025-01-01T10:30:00Z",
        "Email Opened",
        json!({"message_id": message_id}),
    );
    assert!(matches!(
        open.trace[0].decision,
        Decision::EngagementRecorded { .. }
    ));
    let (_, effects) = harness.next_timer();
    assert!(effects.outbox.is_empty());
    assert_eq!(ended(&effects), [EndReason::Completed]);
    assert_eq!(
        &*harness.journeys.journeys()[0].journey.steps[effects.ended[0].step.get()].id,
        "yes"
    );
}

#[test]
fn engagement_split_waits_for_the_window_then_takes_no() {
    let mut harness = Harness::new(engagement_journey(), json!({}));
    harness.event("2025-01-01T10:00:00Z", "Start", json!({}));
    harness.next_timer();
    // At the split: waits until the window ends (1 day after the send).
    assert_eq!(harness.step_of_first(), "s");
    assert_eq!(
        harness.timer_of_first().as_deref(),
        Some("2025-01-02T10:00:00.000Z")
    );
    // Feedback about another enrollment's message is ignored.
    harness.event(
        "2025-01-01T12:00:00Z",
        "Email Opened",
        json!({"message_id": "000000000000009900000000"}),
    );
    assert_eq!(harness.step_of_first(), "s");
    let (_, effects) = harness.next_timer();
    assert_eq!(effects.outbox[0].channel.as_str(), "sms");
}

#[test]
fn engagement_split_waiting_takes_yes_when_the_open_arrives_in_the_window() {
    let mut harness = Harness::new(engagement_journey(), json!({}));
    let entered = harness.event("2025-01-01T10:00:00Z", "Start", json!({}));
    let message_id = entered.outbox[0].message_id.to_string();
    harness.next_timer();
    let effects = harness.event(
        "2025-01-01T20:00:00Z",
        "Email Link Clicked",
        json!({"message_id": message_id}),
    );
    assert_eq!(ended(&effects), [EndReason::Completed]);
    assert!(effects.outbox.is_empty());
}

#[test]
fn random_split_is_stable_per_customer_and_honours_the_weights() {
    let compiled = journey(&format!(
        "{HEADER}start: r\nsteps:\n  - id: r\n    type: random_split\n    branches:\n      - {{name: a, weight: 50, next: a}}\n      - {{name: b, weight: 40, next: b}}\n      - {{name: control, weight: 10, holdout: true, next: x}}\n  - {{id: a, type: send, channel: email, template: a, next: x}}\n  - {{id: b, type: send, channel: email, template: b, next: x}}\n  - {{id: x, type: exit}}\n"
    ));
    let mut counts = [0u32; 3];
    for customer in 0..2_000 {
        let mut templates = Vec::new();
        for _replay in 0..2 {
            let mut harness = Harness::new(compiled.clone(), json!({}));
            harness.profile_id = Arc::from(format!("prof_{customer}").as_str());
            let effects = harness.event("2025-01-01T10:00:00Z", "Start", json!({}));
            templates.push(
                effects
                    .outbox
                    .first()
                    .map(|message| message.template.to_string()),
            );
        }
        assert_eq!(
            templates[0], templates[1],
            "the same customer takes the same branch"
        );
        let index = match templates[0].as_deref() {
            Some("a") => 0,
            Some("b") => 1,
            _ => 2,
        };
        counts[index] += 1;
    }
    assert!((900..1100).contains(&counts[0]), "{counts:?}");
    assert!((700..900).contains(&counts[1]), "{counts:?}");
    assert!((140..260).contains(&counts[2]), "{counts:?}");
}

#[test]
fn send_writes_a_complete_outbox_message_with_a_deterministic_id() {
    let compiled = journey(
        "id: j\nname: J\npriority: 7\nentry: {event: {name: Start}}\nstart: s\nsteps:\n  - {id: s, type: send, channel: push, template: promo, transactional: true, settings: {title: Hi}, next: x}\n  - {id: x, type: exit}\n",
    );
    let mut harness = Harness::new(compiled, json!({}));
    let effects = harness.event("2025-01-01T10:00:00Z", "Start", json!({}));
    let message = &effects.outbox[0];
    assert_eq!(message.message_id.to_string(), "000000000000000100000000");
    assert_eq!(message.channel.as_str(), "push");
    assert_eq!(message.template.as_ref(), "promo");
    assert_eq!(message.priority, 7);
    assert!(message.transactional);
    assert_eq!(message.settings["title"], json!("Hi"));
    assert_eq!(message.profile_id.as_ref(), "prof_1");
    assert_eq!(message.at_ms, ms("2025-01-01T10:00:00Z"));
}

fn webhook_journey() -> Arc<CompiledJourney> {
    journey(&format!(
        "{HEADER}start: call\nsteps:\n  - id: call\n    type: send\n    channel: webhook\n    template: crm\n    await_response: {{timeout: 30s, on_success: check, on_failure: failed, on_timeout: slow}}\n  - id: check\n    type: decision_split\n    branches:\n      - {{condition: 'journey.steps.call.response.score > 50', next: hot}}\n    default: cold\n  - {{id: hot, type: send, channel: email, template: hot, next: x}}\n  - {{id: cold, type: send, channel: email, template: cold, next: x}}\n  - {{id: failed, type: send, channel: email, template: failed, next: x}}\n  - {{id: slow, type: send, channel: email, template: slow, next: x}}\n  - {{id: x, type: exit}}\n"
    ))
}

#[test]
fn webhook_response_fields_drive_a_later_split() {
    let mut harness = Harness::new(webhook_journey(), json!({}));
    let entered = harness.event("2025-01-01T10:00:00Z", "Start", json!({}));
    assert_eq!(entered.outbox[0].channel.as_str(), "webhook");
    assert_eq!(
        harness.timer_of_first().as_deref(),
        Some("2025-01-01T10:00:30.000Z")
    );
    let result = DeliveryResult {
        message_id: entered.outbox[0].message_id,
        ok: true,
        response: json!({"status": 200, "score": 80}),
    };
    let effects = harness.input(
        ms("2025-01-01T10:00:02Z"),
        ProfileInput::DeliveryResult(&result),
    );
    assert_eq!(effects.outbox[0].template.as_ref(), "hot");

    let mut failing = Harness::new(webhook_journey(), json!({}));
    let entered = failing.event("2025-01-01T10:00:00Z", "Start", json!({}));
    let result = DeliveryResult {
        message_id: entered.outbox[0].message_id,
        ok: false,
        response: json!({"status": 500}),
    };
    let effects = failing.input(
        ms("2025-01-01T10:00:01Z"),
        ProfileInput::DeliveryResult(&result),
    );
    assert_eq!(effects.outbox[0].template.as_ref(), "failed");

    let mut silent = Harness::new(webhook_journey(), json!({}));
    silent.event("2025-01-01T10:00:00Z", "Start", json!({}));
    let (when, effects) = silent.next_timer();
    assert_eq!(when, "2025-01-01T10:00:30.000Z");
    assert_eq!(effects.outbox[0].template.as_ref(), "slow");
}

fn fetch_journey() -> Arc<CompiledJourney> {
    journey(&format!(
        "{HEADER}start: points\nsteps:\n  - id: points\n    type: fetch\n    sets: [loyalty]\n    timeout: 1m\n    on_success: check\n    on_failure: failed\n    on_timeout: slow\n  - id: check\n    type: decision_split\n    branches:\n      - {{condition: 'journey.steps.points.response.loyalty.points > 100', next: vip}}\n    default: x\n  - {{id: vip, type: send, channel: email, template: vip, next: x}}\n  - {{id: failed, type: send, channel: email, template: failed, next: x}}\n  - {{id: slow, type: send, channel: email, template: slow, next: x}}\n  - {{id: x, type: exit}}\n"
    ))
}

#[test]
fn a_fetch_waits_for_federated_values_that_a_later_split_reads() {
    let mut harness = Harness::new(fetch_journey(), json!({}));
    let entered = harness.event("2025-01-01T10:00:00Z", "Start", json!({}));
    assert!(entered.outbox.is_empty(), "a fetch is not a message");
    let request = &entered.fetches[0];
    let sets: Vec<&str> = request.sets.iter().map(|set| set.as_ref()).collect();
    assert_eq!(sets, ["loyalty"]);
    assert_eq!(request.step_id.as_ref(), "points");
    assert_eq!(request.profile_id.as_ref(), "prof_1");
    assert_eq!(
        harness.timer_of_first().as_deref(),
        Some("2025-01-01T10:01:00.000Z")
    );
    let answer = |message_id, ok, response| DeliveryResult {
        message_id,
        ok,
        response,
    };
    // An answer for another request (a later visit) is not this one's.
    let mut other = request.message_id;
    other.attempt += 1;
    let ignored = harness.input(
        ms("2025-01-01T10:00:01Z"),
        ProfileInput::DeliveryResult(&answer(other, true, json!({"loyalty": {"points": 500}}))),
    );
    assert!(ignored.outbox.is_empty());
    assert_eq!(harness.step_of_first(), "points");
    let effects = harness.input(
        ms("2025-01-01T10:00:02Z"),
        ProfileInput::DeliveryResult(&answer(
            request.message_id,
            true,
            json!({"loyalty": {"points": 340}}),
        )),
    );
    assert_eq!(effects.outbox[0].template.as_ref(), "vip");

    let mut failing = Harness::new(fetch_journey(), json!({}));
    let entered = failing.event("2025-01-01T10:00:00Z", "Start", json!({}));
    let effects = failing.input(
        ms("2025-01-01T10:00:01Z"),
        ProfileInput::DeliveryResult(&answer(
            entered.fetches[0].message_id,
            false,
            json!({"error": {"code": "federated_timeout"}}),
        )),
    );
    assert_eq!(effects.outbox[0].template.as_ref(), "failed");

    let mut silent = Harness::new(fetch_journey(), json!({}));
    silent.event("2025-01-01T10:00:00Z", "Start", json!({}));
    let (when, effects) = silent.next_timer();
    assert_eq!(when, "2025-01-01T10:01:00.000Z");
    assert_eq!(effects.outbox[0].template.as_ref(), "slow");
}

#[test]
fn test_mode_answers_a_fetch_from_the_script_or_times_it_out() {
    let answered = common::run(
        &fetch_journey(),
        json!({}),
        r#"{"event": "Start", "timestamp": "2025-01-01T10:00:00Z"}
{"type": "delivery_result", "after": "5s", "step": "points", "ok": true, "response": {"loyalty": {"points": 900}}}"#,
        "2025-01-01T10:00:00Z",
        "2025-01-02T10:00:00Z",
    );
    let templates: Vec<String> = common::messages(&answered)
        .into_iter()
        .map(|(_, _, _, template)| template)
        .collect();
    assert_eq!(templates, ["vip"], "{:?}", answered.notes);
    let silent = common::run(
        &fetch_journey(),
        json!({}),
        r#"{"event": "Start", "timestamp": "2025-01-01T10:00:00Z"}"#,
        "2025-01-01T10:00:00Z",
        "2025-01-02T10:00:00Z",
    );
    assert_eq!(
        common::messages(&silent),
        [(
            "2025-01-01T10:01:00.000Z".to_owned(),
            "slow".to_owned(),
            "email".to_owned(),
            "slow".to_owned()
        )]
    );
}

#[test]
fn update_profile_sets_increments_unsets_and_later_steps_see_the_new_values() {
    let compiled = journey(&format!(
        "{HEADER}start: u\nsteps:\n  - id: u\n    type: update_profile\n    set: {{tier: gold}}\n    set_expr: {{score: 'profile.points + 5'}}\n    increment: {{visits: 1}}\n    unset: [cart]\n    next: d\n  - id: d\n    type: decision_split\n    branches:\n      - {{condition: 'profile.tier == \"gold\" and profile.visits == 3', next: a}}\n    default: x\n  - {{id: a, type: send, channel: email, template: gold, next: x}}\n  - {{id: x, type: exit}}\n"
    ));
    let mut harness = Harness::new(compiled, json!({"points": 10, "visits": 2, "cart": ["x"]}));
    let effects = harness.event("2025-01-01T10:00:00Z", "Start", json!({}));
    assert_eq!(
        Value::Object(harness.profile.clone()),
        json!({"points": 10, "visits": 3, "tier": "gold", "score": 15})
    );
    let changes: Vec<(String, Option<Value>)> = effects.profile_updates[0]
        .changes
        .iter()
        .map(|change| (change.attribute.to_string(), change.value.clone()))
        .collect();
    assert_eq!(
        changes,
        [
            ("tier".to_owned(), Some(json!("gold"))),
            ("score".to_owned(), Some(json!(15))),
            ("visits".to_owned(), Some(json!(3))),
            ("cart".to_owned(), None),
        ]
    );
    assert_eq!(effects.outbox[0].template.as_ref(), "gold");
}

#[test]
fn write_back_asks_for_the_computed_value_and_leaves_the_profile_alone() {
    let compiled = journey(&format!(
        "{HEADER}start: u\nsteps:\n  - id: u\n    type: update_profile\n    write_back: {{loyalty.points: 'profile.points + event.properties.bonus', loyalty.tier: \"'gold'\"}}\n    next: x\n  - {{id: x, type: exit}}\n"
    ));
    let mut harness = Harness::new(compiled, json!({"points": 10}));
    let effects = harness.event("2025-01-01T10:00:00Z", "Start", json!({"bonus": 5}));
    let writes: Vec<(String, String, Value, String)> = effects
        .write_backs
        .iter()
        .map(|write| {
            (
                write.set.to_string(),
                write.field.to_string(),
                write.value.clone(),
                write.step_id.to_string(),
            )
        })
        .collect();
    assert_eq!(
        writes,
        [
            ("loyalty".into(), "points".into(), json!(15), "u".into()),
            ("loyalty".into(), "tier".into(), json!("gold"), "u".into()),
        ]
    );
    assert_eq!(effects.write_backs[0].at_ms, ms("2025-01-01T10:00:00Z"));
    assert_eq!(
        Value::Object(harness.profile.clone()),
        json!({"points": 10})
    );
    assert!(effects.profile_updates.is_empty(), "no profile change");
    assert_eq!(ended(&effects), [EndReason::Completed]);
}

#[test]
fn join_merges_paths_and_exit_completes() {
    let compiled = journey(&format!(
        "{HEADER}start: d\nsteps:\n  - id: d\n    type: decision_split\n    branches:\n      - {{condition: 'profile.a == 1', next: j}}\n    default: j\n  - {{id: j, type: join, next: x}}\n  - {{id: x, type: exit}}\n"
    ));
    let mut harness = Harness::new(compiled, json!({"a": 1}));
    let effects = harness.event("2025-01-01T10:00:00Z", "Start", json!({}));
    assert_eq!(ended(&effects), [EndReason::Completed]);
    assert_eq!(effects.ended[0].step.0, 2);
}

fn goal_journey(re_entry: &str) -> Arc<CompiledJourney> {
    journey(&format!(
        "id: j\nname: J\nentry: {{event: {{name: Start}}}}\nre_entry: {re_entry}\ngoals:\n  - {{id: bought, condition: 'event.name == \"Order Completed\"'}}\nexits:\n  - {{id: vip, condition: 'profile.vip == true'}}\nstart: w\nsteps:\n  - {{id: w, type: wait, duration: 1d, next: s}}\n  - {{id: s, type: send, channel: email, template: t, next: x}}\n  - {{id: x, type: exit}}\n"
    ))
}

#[test]
fn goal_reached_while_waiting_ends_the_enrollment_and_clears_its_timer() {
    let mut harness = Harness::new(goal_journey("once"), json!({}));
    harness.event("2025-01-01T10:00:00Z", "Start", json!({}));
    // Events no journey cares about cost nothing.
    assert!(harness
        .event("2025-01-01T11:00:00Z", "Page Viewed", json!({}))
        .is_empty());
    let effects = harness.event("2025-01-01T12:00:00Z", "Order Completed", json!({}));
    assert_eq!(ended(&effects), [EndReason::GoalReached]);
    assert_eq!(effects.ended[0].detail, EndDetail::Goal(0));
    assert_eq!(effects.timers[0].wake_at_ms, None);
    assert!(harness.state.enrollments.is_empty());
    let explanation =
        cairn_journey::explain::explain(&harness.journeys.journeys()[0].journey, &effects.trace[0]);
    assert_eq!(
        explanation,
        "goal `bought` met: event.name == \"Order Completed\" (read event.name = \"Order Completed\")"
    );
}

#[test]
fn profile_exit_criteria_apply_on_profile_changes_and_timers() {
    let mut harness = Harness::new(goal_journey("once"), json!({}));
    harness.event("2025-01-01T10:00:00Z", "Start", json!({}));
    harness.profile.insert("vip".to_owned(), json!(true));
    let effects = harness.input(ms("2025-01-01T11:00:00Z"), ProfileInput::ProfileChanged);
    assert_eq!(ended(&effects), [EndReason::ExitCriterion]);
    // A customer who already meets the exit criterion ends at entry, before any step runs.
    let mut vip = Harness::new(goal_journey("once"), json!({"vip": true}));
    let effects = vip.event("2025-01-01T10:00:00Z", "Start", json!({}));
    assert_eq!(ended(&effects), [EndReason::ExitCriterion]);
    assert!(effects.outbox.is_empty());
}

#[test]
fn re_entry_rules_while_enrolled_and_after() {
    let cases: [(&str, [usize; 3]); 4] = [
        // Entries after: a second Start while enrolled, one after the exit, one 8 days later.
        ("once", [0, 0, 0]),
        ("after_exit", [0, 1, 1]),
        ("{after_cool_down: 7d}", [0, 0, 1]),
        ("concurrent", [1, 1, 1]),
    ];
    for (rule, expected) in cases {
        let mut harness = Harness::new(goal_journey(rule), json!({}));
        assert_eq!(
            harness
                .event("2025-01-01T10:00:00Z", "Start", json!({}))
                .entered
                .len(),
            1
        );
        let while_enrolled = harness.event("2025-01-01T11:00:00Z", "Start", json!({}));
        // Finish everything that is enrolled.
        while harness
            .state
            .enrollments
            .iter()
            .any(|enrollment| enrollment.timer().is_some())
        {
            harness.next_timer();
        }
        let after_exit = harness.event("2025-01-03T10:00:00Z", "Start", json!({}));
        while harness
            .state
            .enrollments
            .iter()
            .any(|enrollment| enrollment.timer().is_some())
        {
            harness.next_timer();
        }
        let later = harness.event("2025-01-09T10:00:00Z", "Start", json!({}));
        assert_eq!(
            [
                while_enrolled.entered.len(),
                after_exit.entered.len(),
                later.entered.len()
            ],
            expected,
            "re_entry {rule}"
        );
    }
}

#[test]
fn a_waiting_enrollment_is_its_own_entry_record_until_it_ends() {
    let mut harness = Harness::new(goal_journey("concurrent"), json!({}));
    harness.event("2025-01-01T10:00:00Z", "Start", json!({}));
    harness.event("2025-01-01T11:00:00Z", "Start", json!({}));
    // Two waiting and no stored record (waiting costs no history), yet both count as entries.
    assert!(harness.state.history.is_empty());
    let entry_view = |harness: &Harness| {
        harness
            .state
            .history_of(&harness.journeys, "j")
            .map(|history| {
                (
                    history.entries,
                    history.last_entered_at_ms,
                    history.last_ended_at_ms.get(),
                )
            })
    };
    assert_eq!(
        entry_view(&harness),
        Some((2, ms("2025-01-01T11:00:00Z"), None))
    );
    assert_eq!(harness.state.history_of(&harness.journeys, "other"), None);
    // The first one's wait ends, it sends and exits: it is folded into the stored record.
    harness.next_timer();
    assert_eq!(harness.state.enrollments.len(), 1);
    assert_eq!(harness.state.history.len(), 1);
    assert_eq!(harness.state.history[0].entries, 1);
    let ended_at = ms("2025-01-02T10:00:00Z");
    assert_eq!(
        entry_view(&harness),
        Some((2, ms("2025-01-01T11:00:00Z"), Some(ended_at)))
    );
    assert_eq!(harness.state.histories(&harness.journeys).len(), 1);
    // A checkpoint from before counted the waiting enrollment in the record from its entry; once
    // converted it reads the same.
    let mut older = harness.state.clone();
    older.history[0].entries = 2;
    older.history[0].last_entered_at_ms = ms("2025-01-01T11:00:00Z");
    older.uncount_enrollments(&harness.journeys);
    assert_eq!(
        older.histories(&harness.journeys),
        harness.state.histories(&harness.journeys)
    );
    // A record left with no entries goes.
    let mut waiting_only = ProfileJourneys {
        enrollments: harness.state.enrollments.clone(),
        history: vec![harness.state.history[0]],
    };
    waiting_only.history[0].entries = 1;
    waiting_only.uncount_enrollments(&harness.journeys);
    assert!(waiting_only.history.is_empty());
}

#[test]
fn a_profile_merge_keeps_the_earlier_enrollment_and_never_resends() {
    let compiled = journey(
        "id: j\nname: J\nentry: {event: {name: Start}}\nstart: s\nsteps:\n  - {id: s, type: send, channel: email, template: first, next: w}\n  - {id: w, type: wait, duration: 1d, next: t}\n  - {id: t, type: send, channel: email, template: second, next: x}\n  - {id: x, type: exit}\n",
    );
    let mut older = Harness::new(compiled.clone(), json!({}));
    let older_entry = older.event("2025-01-01T10:00:00Z", "Start", json!({}));
    let mut younger = Harness::new(compiled.clone(), json!({}));
    younger.ids.next = 100;
    let younger_entry = younger.event("2025-01-01T12:00:00Z", "Start", json!({}));
    let mut effects = Effects::default();
    merge_profiles(
        &older.journeys,
        &mut older.state,
        std::mem::take(&mut younger.state),
        ms("2025-01-01T13:00:00Z"),
        &mut effects,
    );
    assert_eq!(ended(&effects), [EndReason::Merged]);
    assert_eq!(
        effects.ended[0].enrollment,
        younger_entry.entered[0].enrollment
    );
    assert_eq!(
        effects.ended[0].detail,
        EndDetail::MergedInto(older_entry.entered[0].enrollment)
    );
    assert_eq!(older.state.enrollments.len(), 1);
    assert_eq!(older.state.history[0].entries, 1, "the entry that ended");
    assert_eq!(
        older
            .state
            .history_of(&older.journeys, "j")
            .map(|history| history.entries),
        Some(2)
    );
    // The survivor continues with its own ids: its second message is new, its first is never re-sent.
    let (_, next) = older.next_timer();
    assert_eq!(
        sent(&next),
        [("t".to_owned(), "000000000000000100020000".to_owned())]
    );
    assert_ne!(next.outbox[0].message_id, older_entry.outbox[0].message_id);

    // The other way round: the absorbed profile entered first, so it survives.
    let mut late = Harness::new(compiled.clone(), json!({}));
    late.event("2025-01-02T10:00:00Z", "Start", json!({}));
    let mut early = Harness::new(compiled, json!({}));
    early.ids.next = 50;
    early.event("2025-01-01T10:00:00Z", "Start", json!({}));
    let mut effects = Effects::default();
    merge_profiles(
        &late.journeys,
        &mut late.state,
        std::mem::take(&mut early.state),
        ms("2025-01-02T11:00:00Z"),
        &mut effects,
    );
    assert_eq!(late.state.enrollments[0].id.0, 50);
    assert_eq!(effects.ended[0].enrollment.0, 1);
}

#[test]
fn a_paused_journey_holds_customers_at_their_next_step_and_resume_continues() {
    let compiled = journey(&format!(
        "{HEADER}start: w\nsteps:\n  - {{id: w, type: wait, duration: 1h, next: s}}\n  - {{id: s, type: send, channel: email, template: t, next: x}}\n  - {{id: x, type: exit}}\n"
    ));
    let mut harness = Harness::new(compiled, json!({}));
    harness.event("2025-01-01T10:00:00Z", "Start", json!({}));
    harness.journeys.set_paused(JourneyKey(1), true);
    // New entries are refused while paused.
    assert!(harness
        .event("2025-01-01T10:30:00Z", "Start", json!({}))
        .entered
        .is_empty());
    let (_, held) = harness.next_timer();
    assert!(held.outbox.is_empty());
    assert_eq!(harness.state.enrollments[0].status, Status::Held);
    assert_eq!(harness.step_of_first(), "s");
    assert_eq!(harness.timer_of_first(), None);
    harness.journeys.set_paused(JourneyKey(1), false);
    let resumed = harness.input(
        ms("2025-01-02T09:00:00Z"),
        ProfileInput::JourneyResumed {
            journey: JourneyKey(1),
        },
    );
    assert_eq!(resumed.outbox[0].at_ms, ms("2025-01-02T09:00:00Z"));
    assert_eq!(ended(&resumed), [EndReason::Completed]);
}

#[test]
fn a_paused_journey_with_continue_lets_customers_through() {
    let compiled = journey(&format!(
        "{HEADER}pause_behaviour: continue\nstart: w\nsteps:\n  - {{id: w, type: wait, duration: 1h, next: s}}\n  - {{id: s, type: send, channel: email, template: t, next: x}}\n  - {{id: x, type: exit}}\n"
    ));
    let mut harness = Harness::new(compiled, json!({}));
    harness.event("2025-01-01T10:00:00Z", "Start", json!({}));
    harness.journeys.set_paused(JourneyKey(1), true);
    let (_, effects) = harness.next_timer();
    assert_eq!(effects.outbox.len(), 1);
}

#[test]
fn stopping_a_journey_ends_every_enrollment_with_the_reason() {
    let mut harness = Harness::new(goal_journey("concurrent"), json!({}));
    harness.event("2025-01-01T10:00:00Z", "Start", json!({}));
    harness.event("2025-01-01T11:00:00Z", "Start", json!({}));
    let effects = harness.input(
        ms("2025-01-01T12:00:00Z"),
        ProfileInput::JourneyStopped {
            journey: JourneyKey(1),
            reason: "campaign cancelled",
        },
    );
    assert_eq!(ended(&effects), [EndReason::Stopped, EndReason::Stopped]);
    assert_eq!(
        effects.ended[0].detail,
        EndDetail::Stopped(Arc::from("campaign cancelled"))
    );
    assert_eq!(effects.timers.len(), 2);
    assert!(harness.state.enrollments.is_empty());
}

#[test]
fn enrollments_stay_small_without_variable_data_unless_the_journey_reads_it() {
    let mut plain = Harness::new(goal_journey("once"), json!({}));
    plain.event("2025-01-01T10:00:00Z", "Start", json!({}));
    assert!(plain.state.enrollments[0].data.is_none());
    let mut reading = Harness::new(engagement_journey(), json!({}));
    reading.event("2025-01-01T10:00:00Z", "Start", json!({}));
    assert!(reading.state.enrollments[0].data.is_some());
}

#[test]
fn api_and_audience_entries_through_the_orchestration() {
    let api = journey(
        "id: a\nname: A\nentry: {api: {filter: 'profile.country == \"DE\"'}}\nstart: x\nsteps:\n  - {id: x, type: exit}\n",
    );
    let audience = journey(
        "id: b\nname: B\nentry: {audience: {id: lapsed}}\nstart: s\nsteps:\n  - {id: s, type: send, channel: email, template: t, next: x}\n  - {id: x, type: exit}\n",
    );
    let mut harness = Harness::with(vec![api, audience], json!({"country": "DE"}));
    let data = json!({"source": "crm"});
    let effects = harness.input(
        ms("2025-01-01T10:00:00Z"),
        ProfileInput::EnrollByApi {
            journey: JourneyKey(1),
            data: Some(&data),
        },
    );
    assert_eq!(ended(&effects), [EndReason::Completed]);
    let effects = harness.input(
        ms("2025-01-01T10:00:00Z"),
        ProfileInput::AudienceJoined { audience: "lapsed" },
    );
    assert_eq!(effects.outbox.len(), 1);
    assert!(harness
        .input(
            ms("2025-01-01T10:00:00Z"),
            ProfileInput::AudienceJoined { audience: "other" }
        )
        .is_empty());
}
