//! `next_change_after` answers exactly (not merely early) in the cases audiences and goals rely on, and
//! `references` says what a condition reads.

mod common;

use cairn_condition::{compile, MapContext, Schema};
use common::{at, DAY_MS, HOUR_MS};
use serde_json::json;

fn condition(source: &str) -> cairn_condition::Condition {
    compile(source, &Schema::open())
        .unwrap_or_else(|diagnostics| panic!("{source}: {diagnostics:?}"))
}

/// Follows `next_change_after` from `context` and returns the instants at which the value really changed.
fn changes(source: &str, context: &MapContext, until: i64) -> Vec<(i64, bool)> {
    let condition = condition(source);
    let mut instant = context.now_ms;
    let mut current = condition.matches(context);
    let mut changes = Vec::new();
    for _ in 0..200 {
        let Some(next) = condition.next_change_after(&context.at(instant)) else {
            break;
        };
        if next > until {
            break;
        }
        let value = condition.matches(&context.at(next));
        if value != current {
            changes.push((next, value));
            current = value;
        }
        instant = next;
    }
    changes
}

#[test]
fn days_since_flips_once_at_the_exact_day() {
    let now = at("2026-06-15T12:00:00Z");
    let signup = now - 10 * DAY_MS - 5 * HOUR_MS;
    let context = MapContext::new(now)
        .with_profile(json!({"signup_at": cairn_condition::Value::Timestamp(signup).to_json()}));
    let over_thirty = condition("days_since(profile.signup_at) > 30");
    // More than 30 whole days: from signup + 31 days on, and never again after that.
    assert_eq!(
        over_thirty.next_change_after(&context),
        Some(signup + 31 * DAY_MS)
    );
    assert_eq!(
        over_thirty.next_change_after(&context.at(signup + 31 * DAY_MS)),
        None
    );
    assert_eq!(
        changes(
            "days_since(profile.signup_at) == 12",
            &context,
            now + 60 * DAY_MS
        ),
        vec![(signup + 12 * DAY_MS, true), (signup + 13 * DAY_MS, false),]
    );
    // No signup date: never changes.
    assert_eq!(over_thirty.next_change_after(&MapContext::new(now)), None);
}

#[test]
fn windowed_counts_change_when_an_event_leaves_the_window() {
    let now = at("2026-06-15T12:00:00Z");
    let context = MapContext::new(now).with_history([
        ("Product Viewed", now - DAY_MS),
        ("Product Viewed", now - 3 * DAY_MS),
        ("Order Completed", now - 2 * DAY_MS),
    ]);
    let browsed_not_bought =
        "count(\"Product Viewed\", 7d) > 0 and count(\"Order Completed\", 7d) == 0";
    // The order leaves the 7-day window first (the audience is joined), then the last view (it is left).
    assert_eq!(
        changes(browsed_not_bought, &context, now + 30 * DAY_MS),
        vec![
            (now - 2 * DAY_MS + 7 * DAY_MS + 1, true),
            (now - DAY_MS + 7 * DAY_MS + 1, false),
        ]
    );
    // An all-time count cannot change by time alone.
    assert_eq!(
        condition("count(\"Product Viewed\") > 1").next_change_after(&context),
        None
    );
}

#[test]
fn instants_compared_with_now_are_solved() {
    let now = at("2026-06-15T12:00:00Z");
    let renewal = at("2026-06-20T00:00:00Z");
    let context = MapContext::new(now).with_profile(json!({"renewal_at": "2026-06-20T00:00:00Z"}));
    let reminder = condition("now() >= profile.renewal_at - 3d");
    assert_eq!(
        reminder.next_change_after(&context),
        Some(renewal - 3 * DAY_MS)
    );
    assert!(reminder.matches(&context.at(renewal - 3 * DAY_MS)));
    assert!(!reminder.matches(&context.at(renewal - 3 * DAY_MS - 1)));
    let lapsed = condition("last_at(\"Order Completed\") < now() - 30d");
    let bought = context
        .clone()
        .with_history([("Order Completed", now - DAY_MS)]);
    assert_eq!(
        changes(
            "last_at(\"Order Completed\") < now() - 30d",
            &bought,
            now + 60 * DAY_MS
        ),
        vec![(now + 29 * DAY_MS + 1, true)]
    );
    assert_eq!(
        lapsed.next_change_after(&context),
        None,
        "no order at all: last_at is null and stays null"
    );
}

#[test]
fn local_hours_follow_the_time_zone_across_dst() {
    // 2026-03-28T20:00Z is 21:00 CET; Berlin springs forward in the night (02:00 CET → 03:00 CEST).
    let now = at("2026-03-28T20:00:00Z");
    let context = MapContext::new(now).with_profile(json!({"timezone": "Europe/Berlin"}));
    let daytime = "hour(now(), profile.timezone) >= 9 and hour(now(), profile.timezone) < 20";
    assert_eq!(
        changes(daytime, &context, now + 2 * DAY_MS),
        vec![
            (at("2026-03-29T07:00:00Z"), true),  // 09:00 CEST
            (at("2026-03-29T18:00:00Z"), false), // 20:00 CEST
            (at("2026-03-30T07:00:00Z"), true),
            (at("2026-03-30T18:00:00Z"), false),
        ]
    );
    let new_york = MapContext::new(at("2026-10-31T20:00:00Z"))
        .with_profile(json!({"timezone": "America/New_York"}));
    let weekend = "weekday(now(), profile.timezone) in [6, 7]";
    // Saturday 31 Oct 16:00 EDT; the weekend ends at Monday 00:00 EST (05:00Z), after the fall-back.
    assert_eq!(
        changes(weekend, &new_york, at("2026-11-05T00:00:00Z")),
        vec![(at("2026-11-02T05:00:00Z"), false)]
    );
}

#[test]
fn conditions_without_time_never_change_by_time() {
    let context = common::fixture();
    for source in [
        "profile.plan == \"pro\"",
        "event.properties.total > 3",
        "count(\"Product Viewed\") > 0",
        "first_at(\"X\") == null",
    ] {
        assert_eq!(
            condition(source).next_change_after(&context),
            None,
            "{source}"
        );
    }
}

#[test]
fn references_say_what_a_condition_reads() {
    let references = condition(
        "event.name == \"Order Completed\" and event.properties.total > 3 and profile.plan == \"pro\" \
         and count(\"Product Viewed\", 7d) > 0 and last_at(\"Cart Updated\") != null and profile.address.city != null",
    )
    .references()
    .clone();
    assert_eq!(references.profile_paths, vec!["address.city", "plan"]);
    assert_eq!(
        references.aggregate_events,
        vec!["Cart Updated", "Product Viewed"]
    );
    assert!(references.reads_event && references.reads_now && !references.reads_journey);
    assert_eq!(references.longest_window_ms, Some(7 * DAY_MS));
    assert_eq!(
        references.required_event_names,
        Some(vec!["Order Completed".to_owned()])
    );

    let either =
        condition("event.name in [\"A\", \"B\"] or (event.name == \"C\" and journey.id == \"j\")")
            .references()
            .clone();
    assert_eq!(
        either.required_event_names,
        Some(vec!["A".to_owned(), "B".to_owned(), "C".to_owned()])
    );
    assert!(either.reads_journey && !either.reads_now);
    let any_event = condition("event.name == \"A\" or profile.plan == \"pro\"")
        .references()
        .clone();
    assert_eq!(any_event.required_event_names, None);
    let audience = condition("days_since(profile.signup_at) > 30")
        .references()
        .clone();
    assert!(audience.reads_now && !audience.reads_event);
    assert_eq!(audience.longest_window_ms, None);
}

#[test]
fn conditions_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<cairn_condition::Condition>();
    let shared = condition("profile.plan == \"pro\"");
    let handle = std::thread::spawn(move || {
        shared.matches(&MapContext::new(0).with_profile(json!({"plan": "pro"})))
    });
    assert!(handle.join().unwrap());
}

#[test]
fn explanations_show_each_clause_and_the_data_it_read() {
    let context = common::fixture();
    let condition = condition("profile.plan == \"pro\" and days_since(profile.signup_at) > 60 and count(\"Product Viewed\", 7d) > 0");
    let explanation = condition.explain(&context);
    let clauses: Vec<(&str, serde_json::Value)> = explanation
        .iter()
        .map(|clause| (clause.clause.as_str(), clause.value.clone()))
        .collect();
    assert_eq!(
        clauses,
        vec![
            ("profile.plan == \"pro\"", json!(true)),
            ("days_since(profile.signup_at) > 60", json!(false)),
            ("count(\"Product Viewed\", 7d) > 0", json!(true)),
        ]
    );
    assert_eq!(
        explanation[1].inputs,
        vec![(
            "profile.signup_at".to_owned(),
            json!("2026-05-01T12:00:00Z")
        )]
    );
    assert_eq!(
        explanation[2].inputs,
        vec![("count(\"Product Viewed\", 7d)".to_owned(), json!(2.0))]
    );
    // A condition that is not an and/or chain is one clause.
    let single = self::condition("not (profile.age > 40)").explain(&context);
    assert_eq!(single.len(), 1);
    assert_eq!(
        single[0].inputs,
        vec![("profile.age".to_owned(), json!(42.0))]
    );
}
