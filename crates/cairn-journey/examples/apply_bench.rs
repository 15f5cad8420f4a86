//! Prints the cost of the pure runtime per input, against the engine's budget on this 2-core machine
//! (50,000 events/s and 100,000 timer firings/s) and against a peer cost measured in the same run
//! (cloning the profile's JSON attributes once, what a runtime that copies state per input would pay).
//!
//! `cargo run --release -p cairn-journey --example apply_bench [-- ITERATIONS]`

use cairn_journey::effects::Effects;
use cairn_journey::orchestrate::{
    handle, JourneySet, ProfileInput, ProfileJourneys, SequentialIds,
};
use cairn_journey::runtime::{apply, Context, Input, LiveJourney, NoHistory};
use cairn_journey::simulate::{parse_script, simulate, Simulation};
use cairn_journey::{parse_journey, validate, Catalog, Enrollment, Event, Format, JourneyKey};
use serde_json::{json, Map, Value};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

const JOURNEY: &str = r#"
id: bench
name: Bench
entry: {event: {name: Start}}
re_entry: concurrent
goals: [{id: bought, event: Order Completed}]
exits: [{id: unsubscribed, event: Unsubscribed}]
start: wait
steps:
  - {id: wait, type: wait, duration: 1h, next: split}
  - id: split
    type: decision_split
    branches:
      - {condition: 'profile.tier == "gold"', next: vip}
    default: regular
  - {id: vip, type: send, channel: email, template: vip, next: later}
  - {id: regular, type: send, channel: email, template: regular, next: later}
  - {id: later, type: wait, duration: 1d, next: done}
  - {id: done, type: exit}
"#;

fn per_iteration_ns(iterations: u32, mut body: impl FnMut()) -> f64 {
    for _ in 0..iterations / 10 {
        body();
    }
    let started = Instant::now();
    for _ in 0..iterations {
        body();
    }
    started.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .and_then(|text| text.parse().ok())
        .unwrap_or(1_000_000);
    let document = parse_journey(JOURNEY, Format::Yaml).expect("bench journey parses");
    let journey = Arc::new(validate(&document, &Catalog::open()).expect("bench journey validates"));
    let live = LiveJourney::new(JourneyKey(1), journey.clone());
    let profile_id: Arc<str> = Arc::from("prof_bench");
    let mut profile: Map<String, Value> = serde_json::from_value(json!({
        "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", "tier": "gold",
        "country": "GB", "timezone": "Europe/London", "points": 1200, "plan": "pro",
        "signup_at": "2024-01-01T00:00:00Z", "tags": ["vip", "newsletter"]
    }))
    .expect("profile");

    // The enrollment waits at `wait`; its timer fires: wait → split → send → wait (3 steps).
    let mut waiting = Enrollment::new(
        cairn_journey::EnrollmentId(7),
        JourneyKey(1),
        journey.start,
        0,
    );
    let mut effects = Effects::default();
    {
        let mut context = Context {
            now_ms: 0,
            profile_id: &profile_id,
            profile: &mut profile,
            history: &NoHistory,
            trace_values: false,
        };
        apply(
            &live,
            &mut waiting,
            Input::Enter {
                trigger: None,
                data: None,
            },
            &mut context,
            &mut effects,
        );
    }
    let timer_ns = per_iteration_ns(iterations, || {
        let mut enrollment = waiting.clone();
        effects.clear();
        let mut context = Context {
            now_ms: 3_600_000,
            profile_id: &profile_id,
            profile: &mut profile,
            history: &NoHistory,
            trace_values: false,
        };
        apply(
            &live,
            &mut enrollment,
            Input::Timer,
            &mut context,
            &mut effects,
        );
        black_box(&effects);
    });
    assert_eq!(effects.outbox.len(), 1, "the timer sends one message");

    // Per-profile orchestration: an event no journey cares about, and one that is checked against goals.
    let journeys = JourneySet::new(vec![live.clone()]);
    let mut state = ProfileJourneys {
        enrollments: vec![waiting.clone()],
        history: Vec::new(),
    };
    let mut ids = SequentialIds { next: 100 };
    let unrelated = Event::track("Page Viewed", 10, Map::new());
    let unrelated_ns = per_iteration_ns(iterations, || {
        effects.clear();
        let mut context = Context {
            now_ms: 10,
            profile_id: &profile_id,
            profile: &mut profile,
            history: &NoHistory,
            trace_values: false,
        };
        handle(
            &journeys,
            &mut state,
            ProfileInput::Event(&unrelated),
            &mut context,
            &mut ids,
            &mut effects,
        );
        black_box(&effects);
    });
    let goal_miss = Event::track("Unsubscribed", 10, Map::new());
    let journeys_goal_only = JourneySet::new(vec![live.clone()]);
    // Checking criteria: "Unsubscribed" ends the enrollment, so restore it each time.
    let criteria_ns = per_iteration_ns(iterations / 4, || {
        effects.clear();
        state.enrollments.clear();
        state.enrollments.push(waiting.clone());
        let mut context = Context {
            now_ms: 10,
            profile_id: &profile_id,
            profile: &mut profile,
            history: &NoHistory,
            trace_values: false,
        };
        handle(
            &journeys_goal_only,
            &mut state,
            ProfileInput::Event(&goal_miss),
            &mut context,
            &mut ids,
            &mut effects,
        );
        black_box(&effects);
    });

    // Peer: one clone of the profile attributes per input.
    let clone_ns = per_iteration_ns(iterations, || {
        black_box(profile.clone());
    });

    // Test mode: the cart-abandonment template over 30 simulated days.
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../journeys/templates/cart-abandonment.yaml"),
    )
    .expect("template");
    let cart = Arc::new(
        validate(
            &parse_journey(&template, Format::Yaml).expect("parses"),
            &Catalog::open(),
        )
        .expect("validates"),
    );
    let script = parse_script(
        "{\"event\": \"Cart Abandoned\", \"after\": \"1h\"}\n{\"event\": \"Cart Abandoned\", \"after\": \"10d\"}\n{\"event\": \"Cart Abandoned\", \"after\": \"20d\"}\n",
        1_735_689_600_000,
    )
    .expect("script");
    let simulation_runs = 2_000;
    let simulate_ns = per_iteration_ns(simulation_runs, || {
        black_box(simulate(
            cart.clone(),
            Simulation {
                profile_id: "prof_sim".to_owned(),
                profile: Map::new(),
                script: script.clone(),
                start_ms: 1_735_689_600_000,
                until_ms: 1_735_689_600_000 + 30 * 86_400_000,
                trace_values: true,
            },
        ));
    });

    let timer_budget_ns = 2.0 * 1e9 / 100_000.0;
    let event_budget_ns = 2.0 * 1e9 / 50_000.0;
    println!("iterations: {iterations}");
    println!(
        "timer fires, 3-step advance (wait -> split -> send -> wait): {timer_ns:.0} ns/apply; budget {timer_budget_ns:.0} ns (100k timers/s on 2 cores): {:.0}x headroom; {:.2}x one profile clone ({clone_ns:.0} ns)",
        timer_budget_ns / timer_ns,
        timer_ns / clone_ns
    );
    println!(
        "event no journey cares about: {unrelated_ns:.0} ns/handle; budget {event_budget_ns:.0} ns (50k events/s on 2 cores): {:.0}x headroom",
        event_budget_ns / unrelated_ns
    );
    println!(
        "event meeting an exit criterion (enrollment ends): {criteria_ns:.0} ns/handle; {:.0}x headroom",
        event_budget_ns / criteria_ns
    );
    println!(
        "test mode, cart abandonment over 30 simulated days (3 entries): {:.1} us/simulation",
        simulate_ns / 1_000.0
    );
    println!(
        "enrollment inline size: {} bytes",
        std::mem::size_of::<Enrollment>()
    );
}
