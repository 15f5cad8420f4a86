//! Evaluation speed of compiled conditions, against two peers measured in the same run: the same logic
//! hand-written in Rust over the same JSON (the floor: what reading the data costs), and parsing + checking +
//! compiling the condition on every evaluation (what an interpreter without a compile step would pay).
//! Counts heap allocations per evaluation too. Times are CPU time of the benchmark thread.
//!
//! `cargo run --release -p cairn-condition --example bench_eval`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_condition::{compile, EvalContext, MapContext, Schema, Type};
use serde_json::json;

struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const DAY_MS: i64 = 86_400_000;

/// CPU time of this thread in nanoseconds: unlike wall time, it does not count time spent descheduled while
/// other processes share the cores.
fn thread_cpu_ns() -> f64 {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    time.tv_sec as f64 * 1e9 + time.tv_nsec as f64
}

/// Runs `evaluate` repeatedly for about half a second of CPU time; returns (CPU ns per call, allocations per
/// call).
fn measure(mut evaluate: impl FnMut() -> bool) -> (f64, f64) {
    for _ in 0..10_000 {
        black_box(evaluate());
    }
    let mut iterations = 0u64;
    let allocations_before = ALLOCATIONS.load(Ordering::Relaxed);
    let start = thread_cpu_ns();
    while thread_cpu_ns() - start < 5e8 {
        for _ in 0..1_000 {
            black_box(evaluate());
        }
        iterations += 1_000;
    }
    let elapsed = thread_cpu_ns() - start;
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations_before;
    (
        elapsed / iterations as f64,
        allocations as f64 / iterations as f64,
    )
}

fn main() {
    let now = 1_781_524_800_000; // 2026-06-15T12:00:00Z
    let context = MapContext::new(now)
        .with_profile(json!({
            "plan": "pro", "signup_at": "2026-05-01T12:00:00Z", "country": "DE", "tags": ["beta", "vip"],
            "email": "ada@example.com", "age": 42, "address": {"city": "Berlin"}
        }))
        .with_event(json!({
            "type": "track", "event": "Order Completed", "timestamp": "2026-06-15T11:59:00Z",
            "properties": {"total": 120.5, "currency": "EUR"}
        }))
        .with_history([
            ("Product Viewed", now - DAY_MS),
            ("Product Viewed", now - 3 * DAY_MS),
            ("Order Completed", now - 20 * DAY_MS),
        ]);
    let mut schema = Schema::new();
    schema
        .profile_attribute("plan", Type::String)
        .profile_attribute("signup_at", Type::Timestamp)
        .profile_attribute("country", Type::String)
        .profile_attribute("phone", Type::String)
        .profile_attribute("tags", Type::List(Box::new(Type::String)))
        .event("Product Viewed")
        .event_property("Order Completed", "total", Type::Number)
        .event_property("Order Completed", "currency", Type::String);

    type Peer = Box<dyn Fn(&MapContext) -> bool>;
    let cases: Vec<(&str, &str, Peer)> = vec![
        (
            "profile (3 clauses)",
            "profile.plan == \"pro\" and profile.country in [\"DE\", \"AT\", \"CH\"] and days_since(profile.signup_at) > 30",
            Box::new(|context: &MapContext| {
                let profile = context.profile().expect("fixture");
                profile.get("plan").and_then(|plan| plan.as_str()) == Some("pro")
                    && profile.get("country").and_then(|country| country.as_str()).is_some_and(|country| ["DE", "AT", "CH"].contains(&country))
                    && profile
                        .get("signup_at")
                        .and_then(|signup| signup.as_str())
                        .and_then(|signup| chrono::DateTime::parse_from_rfc3339(signup).ok())
                        .is_some_and(|signup| (context.now_ms() - signup.timestamp_millis()).div_euclid(DAY_MS) > 30)
            }),
        ),
        (
            "event (3 clauses)",
            "event.properties.total >= 100 and event.properties.currency in [\"EUR\", \"USD\"] and not exists(profile.phone)",
            Box::new(|context: &MapContext| {
                let event = context.event().expect("fixture");
                let properties = &event["properties"];
                properties["total"].as_f64().is_some_and(|total| total >= 100.0)
                    && properties["currency"].as_str().is_some_and(|currency| ["EUR", "USD"].contains(&currency))
                    && context.profile().expect("fixture").get("phone").is_none_or(|phone| phone.is_null())
            }),
        ),
        (
            "aggregates (3 clauses)",
            "count(\"Product Viewed\", 7d) > 0 and count(\"Order Completed\", 7d) == 0 and contains(profile.tags, \"vip\")",
            Box::new(|context: &MapContext| {
                context.event_count("Product Viewed", Some(context.now_ms() - 7 * DAY_MS)) > 0
                    && context.event_count("Order Completed", Some(context.now_ms() - 7 * DAY_MS)) == 0
                    && context.profile().expect("fixture")["tags"].as_array().is_some_and(|tags| tags.iter().any(|tag| tag == "vip"))
            }),
        ),
    ];

    println!(
        "{:<24} {:>12} {:>10} {:>14} {:>10} {:>16} {:>10}",
        "condition",
        "compiled ns",
        "allocs",
        "hand-written ns",
        "× hand",
        "recompile ns",
        "× faster"
    );
    let mut results = Vec::new();
    for (name, source, peer) in &cases {
        let condition = compile(source, &schema).expect("benchmark condition compiles");
        assert_eq!(
            condition.matches(&context),
            peer(&context),
            "{name}: compiled and hand-written disagree"
        );
        let (compiled_ns, allocations) = measure(|| condition.matches(&context));
        let (peer_ns, _) = measure(|| peer(&context));
        let (recompile_ns, _) =
            measure(|| compile(source, &schema).is_ok_and(|fresh| fresh.matches(&context)));
        println!(
            "{name:<24} {compiled_ns:>12.0} {allocations:>10.2} {peer_ns:>14.0} {:>10.2} {recompile_ns:>16.0} {:>10.1}",
            compiled_ns / peer_ns,
            recompile_ns / compiled_ns
        );
        results.push(json!({"condition": name, "compiled_ns": compiled_ns.round(), "allocations_per_eval": allocations,
            "hand_written_ns": peer_ns.round(), "ratio_to_hand_written": compiled_ns / peer_ns, "recompile_ns": recompile_ns.round()}));
    }
    let audience = compile(cases[2].1, &schema).expect("compiles");
    let (next_change_ns, _) = measure(|| audience.next_change_after(&context).is_some());
    println!("next_change_after (aggregates): {next_change_ns:.0} ns");
    println!(
        "{}",
        json!({"bench": "condition_eval", "cases": results, "next_change_after_ns": next_change_ns.round()})
    );
}
