//! Cost of the send-time decision (`decide`) on a realistic policy: two caps (3 marketing emails per
//! 7 days with a priority reservation, 5 messages per day overall), quiet hours in the customer's
//! zone, consent with a subscription group, and a history of 6 recent sends. Target: ≤ 2 µs.

use cairn_delivery::{
    decide, Channel, ConsentChange, ConsentRequirement, ConsentRules, ConsentState, ConsentTarget,
    DeliveryPolicy, FrequencyCap, MessageCategory, PriorityReservation, QuietHours, SendAttempt,
    SendHistory, SubscriptionGroup, YieldAction,
};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

const DAY: i64 = 86_400_000;

fn bench_decide(c: &mut Criterion) {
    let policy = DeliveryPolicy {
        frequency_caps: vec![
            FrequencyCap {
                channel: Some(Channel::Email),
                window_ms: 7 * DAY,
                max_messages: 3,
                reservation: Some(PriorityReservation {
                    min_priority: 8,
                    slots: 1,
                }),
            },
            FrequencyCap {
                channel: None,
                window_ms: DAY,
                max_messages: 5,
                reservation: None,
            },
        ],
        quiet_hours: Some(QuietHours::parse("21:00", "08:00").unwrap()),
        consent: ConsentRules {
            groups: vec![SubscriptionGroup {
                id: 1,
                name: "Newsletter".into(),
                channel: Channel::Email,
                requirement: ConsentRequirement::NotOptedOut,
                double_opt_in: false,
            }],
            ..ConsentRules::default()
        },
        fallback_time_zone: chrono_tz::UTC,
    }
    .validated()
    .unwrap();
    let now = 1_767_348_000_000; // 2026-01-02T10:00:00Z
    let mut history = SendHistory::new();
    for (days_ago, channel) in [
        (6, Channel::Email),
        (5, Channel::Sms),
        (4, Channel::Email),
        (3, Channel::Push),
        (2, Channel::Sms),
        (1, Channel::Push),
    ] {
        history.record(
            now - days_ago * DAY,
            channel,
            MessageCategory::Marketing,
            policy.history_retention_ms(),
        );
    }
    let mut consent = ConsentState::default();
    consent.apply(
        ConsentChange::OptIn {
            target: ConsentTarget::Group(1),
        },
        now - 30 * DAY,
    );
    let attempt = SendAttempt {
        channel: Channel::Email,
        category: MessageCategory::Marketing,
        subscription_group: Some(1),
        priority: 5,
        when_capped: YieldAction::Delay,
        in_quiet_hours: YieldAction::Delay,
        send_before_ms: None,
    };
    let zone = Some(chrono_tz::Europe::Berlin);
    c.bench_function(
        "decide (2 caps, quiet hours, consent group, 6 sends)",
        |b| {
            b.iter(|| {
                decide(
                    black_box(&policy),
                    black_box(&attempt),
                    &consent,
                    &history,
                    zone,
                    black_box(now),
                    || None,
                )
            })
        },
    );
}

criterion_group!(benches, bench_decide);
criterion_main!(benches);
