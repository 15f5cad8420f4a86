//! Volume control through the engine: caps across journeys with priorities, quiet hours in the
//! customer's time zone across a DST change, consent that changes between scheduling and sending,
//! suppression rules, transactional bypass — exact decisions at exact times under a manual clock.

use super::journeys::{ws, World};
use crate::journeys::command::{SuppressionRule, WorkspacePolicy};
use crate::journeys::Command;
use crate::Clock;
use cairn_delivery::{DeliveryPolicy, FrequencyCap, QuietHours};
use chrono::{Duration, TimeZone, Utc};
use serde_json::{json, Value};

fn set_policy(world: &World, policy: WorkspacePolicy) {
    let outcome = world.command(Command::SetPolicy {
        policy: Box::new(policy),
    });
    assert!(outcome.ok, "{outcome:?}");
}

/// A journey that sends one message on `event`, with the given send-step settings.
fn one_send(id: &str, event: &str, priority: i32, channel: &str, settings: Value) -> String {
    format!(
        r#"{{"id": "{id}", "name": "{id}", "priority": {priority},
            "entry": {{"event": {{"name": "{event}"}}}}, "re_entry": "concurrent",
            "start": "send", "steps": [
              {{"id": "send", "type": "send", "channel": "{channel}", "template": "{id}-template",
                "settings": {settings}, "next": "done"}},
              {{"id": "done", "type": "exit"}}]}}"#
    )
}

fn publish_json(world: &World, json: &str) {
    let document = cairn_journey::parse_journey(json, cairn_journey::Format::Json).expect("parses");
    let id = document.id.clone();
    assert!(
        world
            .command(Command::SaveDraft {
                document: Box::new(document)
            })
            .ok
    );
    let outcome = world.command(Command::Publish { journey: id });
    assert!(outcome.ok, "{outcome:?}");
}

/// The raw outbox rows of a user, oldest first.
fn rows(world: &World, user: &str) -> Vec<Value> {
    let mut rows = world
        .engine
        .reader()
        .messages(&ws(), &world.profile_id(user), 100)
        .expect("read")
        .expect("profile");
    rows.reverse();
    rows
}

#[test]
fn caps_across_journeys_let_the_higher_priority_through_and_delay_or_skip_the_rest() {
    let world = World::start();
    set_policy(
        &world,
        WorkspacePolicy {
            delivery: DeliveryPolicy {
                frequency_caps: vec![FrequencyCap {
                    channel: None,
                    window_ms: 7 * 86_400_000,
                    max_messages: 2,
                    reservation: None,
                }],
                ..DeliveryPolicy::default()
            },
            ..WorkspacePolicy::default()
        },
    );
    publish_json(
        &world,
        &one_send(
            "newsletter",
            "Newsletter Due",
            10,
            "email",
            json!({"when_capped": "skip"}),
        ),
    );
    publish_json(
        &world,
        &one_send(
            "vip-offer",
            "Offer Due",
            90,
            "email",
            json!({"when_capped": "delay"}),
        ),
    );
    let start = world.clock.now();
    world.track("ann", "Newsletter Due", json!({}));
    world.pass(Duration::hours(1));
    world.track("ann", "Offer Due", json!({}));
    world.pass(Duration::hours(1));
    world.track("ann", "Newsletter Due", json!({}));
    world.pass(Duration::hours(1));
    world.track("ann", "Offer Due", json!({}));
    let decided: Vec<(String, String)> = world
        .decided("ann")
        .into_iter()
        .map(|(_, template, status)| (template, status))
        .collect();
    assert_eq!(
        decided,
        vec![
            ("newsletter-template".into(), "ready".into()),
            ("vip-offer-template".into(), "ready".into()),
            ("newsletter-template".into(), "skipped".into()),
            ("vip-offer-template".into(), "delayed".into()),
        ],
        "two fit the cap; the low-priority one skips; the offer waits"
    );
    // The delayed offer goes out when the first send leaves the 7-day window, not earlier.
    world.pass(Duration::days(7) - Duration::hours(4));
    assert_eq!(world.messages("ann").len(), 2);
    world.pass(Duration::hours(2));
    assert_eq!(world.messages("ann").len(), 3);
    let last = rows(&world, "ann").into_iter().last().expect("the offer");
    let sent_at: chrono::DateTime<Utc> =
        serde_json::from_value(last["delivery"]["decided_at"].clone()).expect("time");
    assert_eq!(
        sent_at,
        start + Duration::days(7),
        "exactly when the cap frees up"
    );
}

#[test]
fn quiet_hours_follow_each_customers_time_zone_across_a_dst_change() {
    let world = World::start();
    set_policy(
        &world,
        WorkspacePolicy {
            delivery: DeliveryPolicy {
                quiet_hours: Some(QuietHours::parse("21:00", "08:00").expect("valid")),
                ..DeliveryPolicy::default()
            },
            ..WorkspacePolicy::default()
        },
    );
    publish_json(
        &world,
        &one_send("reminder", "Reminder Due", 50, "email", json!({})),
    );
    // Saturday 2026-03-28 21:30 UTC: 22:30 in Berlin (quiet), 17:30 in New York (not quiet).
    // Berlin moves to summer time that night, so 08:00 local on Sunday is 06:00 UTC.
    world.clock.set(
        Utc.with_ymd_and_hms(2026, 3, 28, 21, 30, 0)
            .single()
            .expect("time"),
    );
    for (user, zone) in [
        ("berliner", "Europe/Berlin"),
        ("new-yorker", "America/New_York"),
    ] {
        let identify = json!({"type": "identify", "userId": user, "traits": {"timezone": zone}});
        let message = cairn_core::segment::normalize_object(
            identify.as_object().cloned().expect("object"),
            &cairn_core::segment::Envelope::default(),
            world.clock.now(),
        )
        .expect("valid");
        world
            .engine
            .ingestor()
            .submit_blocking(ws(), vec![message])
            .expect("stored");
        world.track(user, "Reminder Due", json!({}));
    }
    assert_eq!(
        world.messages("new-yorker").len(),
        1,
        "17:30 in New York: sent at once"
    );
    assert!(
        world.messages("berliner").is_empty(),
        "22:30 in Berlin: held"
    );
    world.clock.set(
        Utc.with_ymd_and_hms(2026, 3, 29, 5, 59, 0)
            .single()
            .expect("time"),
    );
    world.engine.tick().expect("tick");
    assert!(
        world.messages("berliner").is_empty(),
        "07:59 summer time: still quiet"
    );
    world.clock.set(
        Utc.with_ymd_and_hms(2026, 3, 29, 6, 0, 0)
            .single()
            .expect("time"),
    );
    world.engine.tick().expect("tick");
    assert_eq!(
        world.messages("berliner").len(),
        1,
        "08:00 summer time = 06:00 UTC"
    );
}

#[test]
fn an_opt_out_a_second_before_the_send_stops_it_and_transactional_bypasses_caps_not_consent() {
    let world = World::start();
    set_policy(
        &world,
        WorkspacePolicy {
            delivery: DeliveryPolicy {
                frequency_caps: vec![FrequencyCap {
                    channel: None,
                    window_ms: 86_400_000,
                    max_messages: 1,
                    reservation: None,
                }],
                ..DeliveryPolicy::default()
            },
            ..WorkspacePolicy::default()
        },
    );
    publish_json(
        &world,
        r#"{"id": "later", "name": "later", "entry": {"event": {"name": "Browse"}},
        "re_entry": "concurrent", "start": "wait", "steps": [
          {"id": "wait", "type": "wait", "duration": "1h", "next": "send"},
          {"id": "send", "type": "send", "channel": "email", "template": "t", "next": "done"},
          {"id": "done", "type": "exit"}]}"#,
    );
    publish_json(
        &world,
        &one_send("receipt", "Order Completed", 0, "email", json!({})).replace(
            r#""settings": {}"#,
            r#""settings": {}, "transactional": true"#,
        ),
    );
    world.track("ann", "Browse", json!({}));
    world.pass(Duration::minutes(59) + Duration::seconds(59));
    world.track("ann", "Email Unsubscribed", json!({}));
    world.pass(Duration::seconds(1));
    let decided = world.decided("ann");
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0].2, "skipped", "the opt-out came first");
    let reason = &rows(&world, "ann")[0]["delivery"]["reason"];
    assert_eq!(reason["reason"], "consent", "{reason}");

    // bob is capped by a marketing email; his receipt (transactional) still goes out.
    world.track("bob", "Browse", json!({}));
    world.pass(Duration::hours(1));
    world.track("bob", "Order Completed", json!({}));
    assert_eq!(
        world.messages("bob").len(),
        2,
        "transactional ignores the cap"
    );
    // ann opted out of email: not even a transactional email reaches her.
    world.track("ann", "Order Completed", json!({}));
    assert!(world.messages("ann").is_empty());
}

#[test]
fn suppression_rules_hold_back_messages_for_recent_buyers() {
    let world = World::start();
    set_policy(
        &world,
        WorkspacePolicy {
            suppressions: vec![SuppressionRule {
                name: "bought recently".into(),
                condition: r#"count("Order Completed", 14d) > 0"#.into(),
                channels: vec!["email".into()],
            }],
            ..WorkspacePolicy::default()
        },
    );
    publish_json(
        &world,
        &one_send("promo", "Promo Due", 50, "email", json!({})),
    );
    world.track("buyer", "Order Completed", json!({}));
    world.track("buyer", "Promo Due", json!({}));
    world.track("browser", "Promo Due", json!({}));
    assert!(world.messages("buyer").is_empty());
    assert_eq!(
        rows(&world, "buyer")[0]["delivery"]["reason"]["reason"],
        "suppressed"
    );
    assert_eq!(world.messages("browser").len(), 1);
    // Fifteen days later the purchase is out of the window.
    world.pass(Duration::days(15));
    world.track("buyer", "Promo Due", json!({}));
    assert_eq!(world.messages("buyer").len(), 1);
}

#[test]
fn a_recipient_the_provider_rejects_is_not_used_again() {
    let world = World::start();
    // Transactional: marketing SMS would need an opt-in first.
    publish_json(
        &world,
        &one_send("text", "Order Completed", 0, "sms", json!({})).replace(
            r#""settings": {}"#,
            r#""settings": {}, "transactional": true"#,
        ),
    );
    world.identify(
        "ann",
        json!({"phone": "+15550100", "push_token": "t-new", "push_tokens": ["t-old", "t-new"]}),
    );
    let traits = |world: &World| {
        world
            .engine
            .reader()
            .profile_now(&ws(), &world.profile_id("ann"))
            .expect("profile")
            .traits
    };

    // FCM answered UNREGISTERED for one device token: it leaves the profile, the other stays.
    world.track(
        "ann",
        "Push Failed",
        json!({"invalid_recipient": true, "recipient": "t-new", "outcome": "failed"}),
    );
    let after = traits(&world);
    assert_eq!(after.get("push_token"), None, "{after:?}");
    assert_eq!(after["push_tokens"], json!(["t-old"]));

    // A failure that is not the recipient's fault changes nothing.
    world.track(
        "ann",
        "SMS Failed",
        json!({"invalid_recipient": false, "recipient": "+15550100", "outcome": "failed"}),
    );
    world.track("ann", "Order Completed", json!({}));
    assert_eq!(world.decided("ann")[0].2, "ready");

    // The provider rejected the number: the next SMS to it is decided skip, not sent.
    world.track(
        "ann",
        "SMS Failed",
        json!({"invalid_recipient": true, "recipient": "+15550100", "outcome": "failed"}),
    );
    world.pass(Duration::seconds(1));
    world.track("ann", "Order Completed", json!({}));
    let decided = world.decided("ann");
    assert_eq!(decided.len(), 2);
    assert_eq!(decided[1].2, "skipped");
    assert_eq!(
        rows(&world, "ann")[1]["delivery"]["reason"]["reason"],
        "undeliverable_address"
    );
}
