//! Volume control end to end: scripted customers receive messages from several journeys under an
//! injected clock; a small scheduler re-decides delayed messages when they wake up, exactly as the
//! dispatcher does. Each test asserts exactly which messages go out, and when.

use std::collections::BTreeMap;

use cairn_delivery::consent::ConsentRefusal;
use cairn_delivery::{
    decide, decide_batch, Channel, ConsentChange, ConsentState, ConsentTarget, Decision,
    DeliveryPolicy, FrequencyCap, MessageCategory, PriorityReservation, QuietHours, SendAttempt,
    SendHistory, SkipReason, YieldAction,
};
use chrono::DateTime;
use chrono_tz::Tz;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn at(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

fn iso(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn marketing(channel: Channel, priority: u8, when_capped: YieldAction) -> SendAttempt {
    SendAttempt {
        channel,
        category: MessageCategory::Marketing,
        subscription_group: None,
        priority,
        when_capped,
        in_quiet_hours: YieldAction::Delay,
        send_before_ms: None,
    }
}

fn three_emails_a_week() -> DeliveryPolicy {
    DeliveryPolicy {
        frequency_caps: vec![FrequencyCap {
            channel: Some(Channel::Email),
            window_ms: 7 * DAY,
            max_messages: 3,
            reservation: None,
        }],
        ..DeliveryPolicy::default()
    }
    .validated()
    .unwrap()
}

/// One customer and the messages journeys want to send them.
struct Customer {
    zone: Option<Tz>,
    consent: ConsentState,
    history: SendHistory,
    /// (due time, sequence) → (label, attempt)
    queue: BTreeMap<(i64, u32), (&'static str, SendAttempt)>,
    sequence: u32,
    sent: Vec<(String, &'static str)>,
    skipped: Vec<(&'static str, SkipReason)>,
}

impl Customer {
    fn new(zone: Option<Tz>) -> Customer {
        Customer {
            zone,
            consent: ConsentState::default(),
            history: SendHistory::new(),
            queue: BTreeMap::new(),
            sequence: 0,
            sent: Vec::new(),
            skipped: Vec::new(),
        }
    }

    fn schedule(&mut self, due: i64, label: &'static str, attempt: SendAttempt) {
        self.sequence += 1;
        self.queue.insert((due, self.sequence), (label, attempt));
    }

    /// Runs the scheduler until nothing is due before `until`, re-deciding delayed messages.
    fn run(&mut self, policy: &DeliveryPolicy, until: i64) {
        while let Some((&(due, sequence), _)) = self.queue.iter().next() {
            if due > until {
                break;
            }
            let (label, attempt) = self.queue.remove(&(due, sequence)).unwrap();
            match decide(
                policy,
                &attempt,
                &self.consent,
                &self.history,
                self.zone,
                due,
                || None,
            ) {
                Decision::Send => {
                    self.history.record(
                        due,
                        attempt.channel,
                        attempt.category,
                        policy.history_retention_ms(),
                    );
                    self.sent.push((iso(due), label));
                }
                Decision::DelayUntil { at_ms } => {
                    assert!(at_ms > due, "a delay moves forward");
                    self.queue.insert((at_ms, sequence), (label, attempt));
                }
                Decision::Skip { reason } => self.skipped.push((label, reason)),
            }
        }
    }

    fn sent(&self) -> Vec<(&str, &str)> {
        self.sent
            .iter()
            .map(|(time, label)| (time.as_str(), *label))
            .collect()
    }
}

#[test]
fn the_fourth_email_in_a_week_waits_for_the_first_to_leave_the_window() {
    let policy = three_emails_a_week();
    let mut ann = Customer::new(None);
    let delay = marketing(Channel::Email, 5, YieldAction::Delay);
    ann.schedule(at("2026-02-02T10:00:00Z"), "welcome", delay);
    ann.schedule(at("2026-02-03T10:00:00Z"), "tips", delay);
    ann.schedule(at("2026-02-04T10:00:00Z"), "cart", delay);
    ann.schedule(at("2026-02-05T10:00:00Z"), "promo", delay);
    ann.schedule(
        at("2026-02-05T11:00:00Z"),
        "sms ok",
        marketing(Channel::Sms, 5, YieldAction::Delay),
    );
    ann.consent.apply(
        ConsentChange::OptIn {
            target: ConsentTarget::Channel(Channel::Sms),
        },
        0,
    );
    ann.run(&policy, at("2026-03-01T00:00:00Z"));
    assert_eq!(
        ann.sent(),
        [
            ("2026-02-02T10:00:00Z", "welcome"),
            ("2026-02-03T10:00:00Z", "tips"),
            ("2026-02-04T10:00:00Z", "cart"),
            ("2026-02-05T11:00:00Z", "sms ok"),
            ("2026-02-09T10:00:00Z", "promo"),
        ]
    );
}

#[test]
fn a_step_that_skips_when_capped_is_skipped() {
    let policy = three_emails_a_week();
    let mut bob = Customer::new(None);
    for day in 2..=4 {
        bob.history.record(
            at(&format!("2026-02-0{day}T10:00:00Z")),
            Channel::Email,
            MessageCategory::Marketing,
            7 * DAY,
        );
    }
    bob.schedule(
        at("2026-02-05T10:00:00Z"),
        "promo",
        marketing(Channel::Email, 5, YieldAction::Skip),
    );
    bob.run(&policy, at("2026-03-01T00:00:00Z"));
    assert!(bob.sent.is_empty());
    assert_eq!(
        bob.skipped,
        [("promo", SkipReason::FrequencyCap { cap: 0 })]
    );
}

#[test]
fn reserved_slots_make_low_priority_journeys_yield_first() {
    // 3 emails a week, the last slot reserved for journeys of priority 8 and above.
    let mut policy = three_emails_a_week();
    policy.frequency_caps[0].reservation = Some(PriorityReservation {
        min_priority: 8,
        slots: 1,
    });
    let mut cy = Customer::new(None);
    cy.schedule(
        at("2026-02-02T10:00:00Z"),
        "newsletter",
        marketing(Channel::Email, 1, YieldAction::Skip),
    );
    cy.schedule(
        at("2026-02-03T10:00:00Z"),
        "promo",
        marketing(Channel::Email, 1, YieldAction::Skip),
    );
    cy.schedule(
        at("2026-02-04T10:00:00Z"),
        "another promo",
        marketing(Channel::Email, 1, YieldAction::Skip),
    );
    cy.schedule(
        at("2026-02-04T12:00:00Z"),
        "renewal reminder",
        marketing(Channel::Email, 9, YieldAction::Skip),
    );
    cy.schedule(
        at("2026-02-05T10:00:00Z"),
        "second renewal reminder",
        marketing(Channel::Email, 9, YieldAction::Skip),
    );
    cy.run(&policy, at("2026-03-01T00:00:00Z"));
    assert_eq!(
        cy.sent(),
        [
            ("2026-02-02T10:00:00Z", "newsletter"),
            ("2026-02-03T10:00:00Z", "promo"),
            ("2026-02-04T12:00:00Z", "renewal reminder"),
        ]
    );
    assert_eq!(
        cy.skipped,
        [
            ("another promo", SkipReason::FrequencyCap { cap: 0 }),
            (
                "second renewal reminder",
                SkipReason::FrequencyCap { cap: 0 }
            )
        ]
    );
}

#[test]
fn messages_due_together_are_settled_by_priority() {
    let policy = three_emails_a_week();
    let mut history = SendHistory::new();
    history.record(
        at("2026-02-02T10:00:00Z"),
        Channel::Email,
        MessageCategory::Marketing,
        7 * DAY,
    );
    history.record(
        at("2026-02-03T10:00:00Z"),
        Channel::Email,
        MessageCategory::Marketing,
        7 * DAY,
    );
    let now = at("2026-02-04T10:00:00Z");
    let attempts = [
        marketing(Channel::Email, 2, YieldAction::Delay),
        marketing(Channel::Email, 7, YieldAction::Delay),
        marketing(Channel::Email, 4, YieldAction::Skip),
    ];
    let decisions = decide_batch(
        &policy,
        &attempts,
        &ConsentState::default(),
        &history,
        None,
        now,
        |_| None,
    );
    assert_eq!(
        decisions,
        [
            Decision::DelayUntil {
                at_ms: at("2026-02-09T10:00:00Z")
            },
            Decision::Send,
            Decision::Skip {
                reason: SkipReason::FrequencyCap { cap: 0 }
            },
        ]
    );
}

#[test]
fn an_overall_cap_counts_every_channel() {
    let policy = DeliveryPolicy {
        frequency_caps: vec![FrequencyCap {
            channel: None,
            window_ms: DAY,
            max_messages: 2,
            reservation: None,
        }],
        ..DeliveryPolicy::default()
    };
    let mut dee = Customer::new(None);
    dee.consent.apply(
        ConsentChange::OptIn {
            target: ConsentTarget::Channel(Channel::Sms),
        },
        0,
    );
    dee.schedule(
        at("2026-02-02T08:00:00Z"),
        "email",
        marketing(Channel::Email, 5, YieldAction::Delay),
    );
    dee.schedule(
        at("2026-02-02T09:00:00Z"),
        "sms",
        marketing(Channel::Sms, 5, YieldAction::Delay),
    );
    dee.schedule(
        at("2026-02-02T10:00:00Z"),
        "push",
        marketing(Channel::Push, 5, YieldAction::Delay),
    );
    dee.run(&policy, at("2026-02-10T00:00:00Z"));
    assert_eq!(
        dee.sent(),
        [
            ("2026-02-02T08:00:00Z", "email"),
            ("2026-02-02T09:00:00Z", "sms"),
            ("2026-02-03T08:00:00Z", "push")
        ]
    );
}

#[test]
fn quiet_hours_follow_each_customers_zone() {
    let policy = DeliveryPolicy {
        quiet_hours: Some(QuietHours::parse("21:00", "08:00").unwrap()),
        ..DeliveryPolicy::default()
    };
    // 02:00Z on a winter day: 21:00 in New York (quiet), 11:00 in Tokyo, 03:00 in Paris (quiet).
    let now = at("2026-01-15T02:00:00Z");
    let mut decisions = Vec::new();
    for zone in [
        chrono_tz::America::New_York,
        chrono_tz::Asia::Tokyo,
        chrono_tz::Europe::Paris,
    ] {
        let mut customer = Customer::new(Some(zone));
        customer.schedule(
            now,
            "campaign",
            marketing(Channel::Email, 5, YieldAction::Delay),
        );
        customer.run(&policy, now + 2 * DAY);
        decisions.push(customer.sent()[0].0.to_owned());
    }
    assert_eq!(
        decisions,
        [
            "2026-01-15T13:00:00Z",
            "2026-01-15T02:00:00Z",
            "2026-01-15T07:00:00Z"
        ]
    );
    // Without a zone on the profile, the policy's fallback applies.
    let fallback = DeliveryPolicy {
        fallback_time_zone: chrono_tz::America::New_York,
        ..policy.clone()
    };
    let decision = decide(
        &fallback,
        &marketing(Channel::Email, 5, YieldAction::Delay),
        &ConsentState::default(),
        &SendHistory::new(),
        None,
        now,
        || None,
    );
    assert_eq!(
        decision,
        Decision::DelayUntil {
            at_ms: at("2026-01-15T13:00:00Z")
        }
    );
    // A step may skip instead of waiting.
    let mut skip = marketing(Channel::Email, 5, YieldAction::Delay);
    skip.in_quiet_hours = YieldAction::Skip;
    let decision = decide(
        &policy,
        &skip,
        &ConsentState::default(),
        &SendHistory::new(),
        Some(chrono_tz::America::New_York),
        now,
        || None,
    );
    assert_eq!(
        decision,
        Decision::Skip {
            reason: SkipReason::QuietHours
        }
    );
}

#[test]
fn quiet_hours_are_on_the_local_clock_across_dst() {
    let policy = DeliveryPolicy {
        quiet_hours: Some(QuietHours::parse("21:00", "08:00").unwrap()),
        ..DeliveryPolicy::default()
    };
    let new_york = Some(chrono_tz::America::New_York);
    let attempt = marketing(Channel::Email, 5, YieldAction::Delay);
    // The night clocks spring forward (2026-03-08): 08:00 EDT is 12:00Z.
    let spring = decide(
        &policy,
        &attempt,
        &ConsentState::default(),
        &SendHistory::new(),
        new_york,
        at("2026-03-08T04:00:00Z"),
        || None,
    );
    assert_eq!(
        spring,
        Decision::DelayUntil {
            at_ms: at("2026-03-08T12:00:00Z")
        }
    );
    // The night they fall back (2026-11-01): 08:00 EST is 13:00Z.
    let autumn = decide(
        &policy,
        &attempt,
        &ConsentState::default(),
        &SendHistory::new(),
        new_york,
        at("2026-11-01T04:00:00Z"),
        || None,
    );
    assert_eq!(
        autumn,
        Decision::DelayUntil {
            at_ms: at("2026-11-01T13:00:00Z")
        }
    );
    // Europe switches on another date (2026-03-29): the same night in Paris ends at 08:00 CEST = 06:00Z.
    let paris = decide(
        &policy,
        &attempt,
        &ConsentState::default(),
        &SendHistory::new(),
        Some(chrono_tz::Europe::Paris),
        at("2026-03-29T00:30:00Z"),
        || None,
    );
    assert_eq!(
        paris,
        Decision::DelayUntil {
            at_ms: at("2026-03-29T06:00:00Z")
        }
    );
}

#[test]
fn a_cap_that_frees_during_quiet_hours_sends_when_they_end() {
    let policy = DeliveryPolicy {
        quiet_hours: Some(QuietHours::parse("21:00", "08:00").unwrap()),
        frequency_caps: vec![FrequencyCap {
            channel: Some(Channel::Email),
            window_ms: DAY,
            max_messages: 1,
            reservation: None,
        }],
        ..DeliveryPolicy::default()
    };
    let mut eve = Customer::new(Some(chrono_tz::Europe::Paris));
    eve.history.record(
        at("2026-02-02T21:30:00Z"),
        Channel::Email,
        MessageCategory::Marketing,
        DAY,
    ); // 22:30 Paris
    eve.schedule(
        at("2026-02-03T10:00:00Z"),
        "follow-up",
        marketing(Channel::Email, 5, YieldAction::Delay),
    );
    eve.run(&policy, at("2026-02-10T00:00:00Z"));
    // The cap frees at 21:30Z (22:30 Paris, quiet) → quiet hours end at 08:00 Paris = 07:00Z.
    assert_eq!(eve.sent(), [("2026-02-04T07:00:00Z", "follow-up")]);
}

#[test]
fn transactional_messages_bypass_caps_and_quiet_hours_but_never_consent() {
    let mut policy = three_emails_a_week();
    policy.quiet_hours = Some(QuietHours::parse("21:00", "08:00").unwrap());
    let mut history = SendHistory::new();
    for day in 1..=3 {
        history.record(
            at(&format!("2026-02-0{day}T12:00:00Z")),
            Channel::Email,
            MessageCategory::Marketing,
            7 * DAY,
        );
    }
    let receipt = SendAttempt {
        category: MessageCategory::Transactional,
        ..marketing(Channel::Email, 0, YieldAction::Skip)
    };
    let midnight = at("2026-02-04T00:00:00Z");
    let mut consent = ConsentState::default();
    assert_eq!(
        decide(
            &policy,
            &receipt,
            &consent,
            &history,
            None,
            midnight,
            || None
        ),
        Decision::Send
    );
    assert_eq!(
        decide(
            &policy,
            &marketing(Channel::Email, 9, YieldAction::Delay),
            &consent,
            &history,
            None,
            midnight,
            || None
        ),
        Decision::DelayUntil {
            at_ms: at("2026-02-08T12:00:00Z")
        }
    );
    history.record(
        midnight,
        Channel::Email,
        MessageCategory::Transactional,
        7 * DAY,
    );
    assert_eq!(
        decide(
            &policy,
            &marketing(Channel::Email, 9, YieldAction::Delay),
            &consent,
            &history,
            None,
            midnight + 1,
            || None
        ),
        Decision::DelayUntil {
            at_ms: at("2026-02-08T12:00:00Z")
        },
        "transactional sends do not count toward caps"
    );
    consent.apply(
        ConsentChange::OptOut {
            target: ConsentTarget::Channel(Channel::Email),
        },
        midnight,
    );
    assert_eq!(
        decide(
            &policy,
            &receipt,
            &consent,
            &history,
            None,
            midnight + 1,
            || None
        ),
        Decision::Skip {
            reason: SkipReason::Consent {
                refusal: ConsentRefusal::ChannelOptedOut {
                    channel: Channel::Email
                }
            }
        }
    );
}

#[test]
fn an_opt_out_one_second_before_the_send_wins() {
    let policy = DeliveryPolicy {
        quiet_hours: Some(QuietHours::parse("21:00", "08:00").unwrap()),
        ..DeliveryPolicy::default()
    };
    let mut fay = Customer::new(None);
    fay.schedule(
        at("2026-02-02T23:00:00Z"),
        "night promo",
        marketing(Channel::Email, 5, YieldAction::Delay),
    );
    fay.run(&policy, at("2026-02-03T07:59:59Z"));
    assert!(fay.sent.is_empty(), "delayed to 08:00 by quiet hours");
    fay.consent.apply(
        ConsentChange::OptOut {
            target: ConsentTarget::Channel(Channel::Email),
        },
        at("2026-02-03T07:59:59Z"),
    );
    fay.run(&policy, at("2026-02-04T00:00:00Z"));
    assert!(fay.sent.is_empty());
    assert_eq!(
        fay.skipped,
        [(
            "night promo",
            SkipReason::Consent {
                refusal: ConsentRefusal::ChannelOptedOut {
                    channel: Channel::Email
                }
            }
        )]
    );
}

#[test]
fn suppression_is_asked_only_when_consent_allows_and_expiry_bounds_delays() {
    let policy = three_emails_a_week();
    let attempt = marketing(Channel::Email, 5, YieldAction::Delay);
    let mut consent = ConsentState::default();
    let now = at("2026-02-02T10:00:00Z");
    let decision = decide(
        &policy,
        &attempt,
        &consent,
        &SendHistory::new(),
        None,
        now,
        || Some(2),
    );
    assert_eq!(
        decision,
        Decision::Skip {
            reason: SkipReason::Suppressed { rule: 2 }
        }
    );
    consent.apply(ConsentChange::GlobalUnsubscribe, now);
    let decision = decide(
        &policy,
        &attempt,
        &consent,
        &SendHistory::new(),
        None,
        now,
        || panic!("not evaluated"),
    );
    assert_eq!(
        decision,
        Decision::Skip {
            reason: SkipReason::Consent {
                refusal: ConsentRefusal::GlobalUnsubscribe
            }
        }
    );

    let mut history = SendHistory::new();
    for hour in 0..3 {
        history.record(
            now - 3 * HOUR + hour * HOUR,
            Channel::Email,
            MessageCategory::Marketing,
            7 * DAY,
        );
    }
    let expiring = SendAttempt {
        send_before_ms: Some(now + DAY),
        ..attempt
    };
    let decision = decide(
        &policy,
        &expiring,
        &ConsentState::default(),
        &history,
        None,
        now,
        || None,
    );
    assert_eq!(
        decision,
        Decision::Skip {
            reason: SkipReason::Expired
        },
        "the slot frees in 7 days, after the deadline"
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    const ZONES: [Tz; 5] = [
        chrono_tz::UTC,
        chrono_tz::America::New_York,
        chrono_tz::Europe::Paris,
        chrono_tz::Australia::Lord_Howe, // 30-minute DST shift
        chrono_tz::Asia::Kathmandu,      // +05:45
    ];

    fn caps() -> impl Strategy<Value = Vec<FrequencyCap>> {
        proptest::collection::vec(
            (
                proptest::option::of(0u8..4),
                1i64..(10 * DAY),
                1u32..5,
                proptest::option::of((0u8..10, 0u32..5)),
            )
                .prop_map(|(channel, window_ms, max_messages, reservation)| {
                    FrequencyCap {
                        channel: channel.and_then(Channel::from_index),
                        window_ms,
                        max_messages,
                        reservation: reservation.map(|(min_priority, slots)| PriorityReservation {
                            min_priority,
                            slots: slots.min(max_messages),
                        }),
                    }
                }),
            0..3,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// A delay always lands on an instant where the same message would be sent; a send never
        /// exceeds a cap; transactional messages are never delayed.
        #[test]
        fn decisions_are_consistent(
            caps in caps(),
            quiet in proptest::option::of((0u16..1440, 0u16..1440)),
            sends in proptest::collection::vec((0i64..(20 * DAY), 0u8..4, any::<bool>()), 0..12),
            now_offset in 0i64..(20 * DAY),
            zone in 0usize..5,
            channel in 0u8..4,
            priority in 0u8..10,
            transactional in any::<bool>(),
        ) {
            let quiet_hours = quiet.and_then(|(start, end)| QuietHours { start_minute: start, end_minute: end }.validated().ok());
            let mut policy = DeliveryPolicy { frequency_caps: caps, quiet_hours, ..DeliveryPolicy::default() };
            policy.consent.marketing = [cairn_delivery::ConsentRequirement::NotOptedOut; 4];
            let base = at("2026-01-01T00:00:00Z");
            let now = base + now_offset;
            let mut history = SendHistory::new();
            for (offset, channel, marketing) in sends {
                let category = if marketing { MessageCategory::Marketing } else { MessageCategory::Transactional };
                history.record((base + offset).min(now), Channel::from_index(channel).unwrap(), category, i64::MAX / 4);
            }
            let attempt = SendAttempt {
                category: if transactional { MessageCategory::Transactional } else { MessageCategory::Marketing },
                ..marketing(Channel::from_index(channel).unwrap(), priority, YieldAction::Delay)
            };
            let zone = Some(ZONES[zone]);
            let decision = decide(&policy, &attempt, &ConsentState::default(), &history, zone, now, || None);
            match decision {
                Decision::Send if transactional => {}
                Decision::Send => {
                    for cap in &policy.frequency_caps {
                        prop_assert_eq!(cap.next_free_slot(&history, attempt.channel, priority, now), Some(now));
                    }
                }
                Decision::DelayUntil { at_ms } => {
                    prop_assert!(!transactional, "transactional messages are never delayed");
                    prop_assert!(at_ms > now);
                    let again = decide(&policy, &attempt, &ConsentState::default(), &history, zone, at_ms, || None);
                    prop_assert_eq!(again, Decision::Send, "at the delayed instant the message goes out");
                }
                Decision::Skip { reason } => {
                    prop_assert!(!transactional, "{:?}", reason);
                    let allowance_zero = matches!(reason, SkipReason::FrequencyCap { .. } | SkipReason::Expired);
                    prop_assert!(allowance_zero, "with Delay everywhere, only an exhausted cap skips: {:?}", reason);
                }
            }
        }
    }
}
