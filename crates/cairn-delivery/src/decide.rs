//! The send-time decision: [`decide`] turns a message about to go out, the profile's consent and
//! send history, and "now" into [`Decision::Send`], [`Decision::DelayUntil`] or [`Decision::Skip`].
//!
//! Order of checks (the first that refuses wins):
//! 1. consent (every message, transactional included) → skip;
//! 2. suppression rules (the caller's predicate, evaluated lazily) → skip;
//! 3. transactional messages stop here and are sent: they bypass quiet hours and caps;
//! 4. quiet hours in the customer's zone → delay to their end, or skip (per send step);
//! 5. frequency caps with priority reservations → delay to the next free slot, or skip (per step).
//!
//! Quiet hours and caps are re-checked at the delayed instant until both agree, so a delay never
//! lands inside quiet hours. A delayed message is decided again when it wakes up (the history may
//! have changed by then); [`decide_batch`] settles messages due at the same instant by priority.

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::consent::ConsentRefusal;
use crate::{
    Channel, ConsentRules, ConsentState, DeliveryError, FrequencyCap, MessageCategory, QuietHours,
    SendHistory, SubscriptionGroupId,
};

/// The workspace's volume-control settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryPolicy {
    #[serde(default)]
    pub frequency_caps: Vec<FrequencyCap>,
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    #[serde(default)]
    pub consent: ConsentRules,
    /// The zone used when a profile has none.
    #[serde(with = "zone_name")]
    pub fallback_time_zone: Tz,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            frequency_caps: Vec::new(),
            quiet_hours: None,
            consent: ConsentRules::default(),
            fallback_time_zone: Tz::UTC,
        }
    }
}

mod zone_name {
    use chrono_tz::Tz;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(zone: &Tz, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(zone.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Tz, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse()
            .map_err(|_| serde::de::Error::custom(format!("unknown time zone `{name}`")))
    }
}

impl DeliveryPolicy {
    /// Validates caps, quiet hours and consent rules (call at startup or when settings change).
    pub fn validated(mut self) -> Result<DeliveryPolicy, DeliveryError> {
        for cap in &self.frequency_caps {
            cap.validate()?;
        }
        if let Some(quiet) = self.quiet_hours {
            quiet.validated()?;
        }
        self.consent = self.consent.validated()?;
        Ok(self)
    }

    /// How long a [`SendHistory`] must remember sends: the longest cap window.
    pub fn history_retention_ms(&self) -> i64 {
        self.frequency_caps
            .iter()
            .map(|cap| cap.window_ms)
            .max()
            .unwrap_or(0)
    }
}

/// What a send step does when quiet hours or a cap stand in the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum YieldAction {
    /// Send later, at the first instant allowed.
    #[default]
    Delay,
    /// Do not send.
    Skip,
}

/// One message about to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendAttempt {
    pub channel: Channel,
    pub category: MessageCategory,
    pub subscription_group: Option<SubscriptionGroupId>,
    /// The journey's priority: higher wins when caps are short (0 = lowest).
    pub priority: u8,
    pub when_capped: YieldAction,
    pub in_quiet_hours: YieldAction,
    /// A delay past this instant skips the message instead (`Skip(Expired)`).
    pub send_before_ms: Option<i64>,
}

/// Why a message is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SkipReason {
    Consent {
        refusal: ConsentRefusal,
    },
    /// A suppression rule matched (the rule's index, as the caller numbers them).
    Suppressed {
        rule: u32,
    },
    QuietHours,
    /// The cap at this index of [`DeliveryPolicy::frequency_caps`] is full.
    FrequencyCap {
        cap: u32,
    },
    /// The next allowed instant is past [`SendAttempt::send_before_ms`].
    Expired,
}

/// The verdict for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Send,
    /// Decide again at this instant (Unix ms).
    DelayUntil {
        at_ms: i64,
    },
    Skip {
        reason: SkipReason,
    },
}

/// How many times quiet hours and caps may push a delay further before giving up (each round moves
/// past one quiet window or one cap expiry; more than this means the constraints cannot meet).
const MAX_SETTLING_ROUNDS: usize = 16;

/// Decides whether `attempt` goes out at `now_ms`. `suppressed` is evaluated only when consent allows
/// the message; it returns the index of the first matching suppression rule.
pub fn decide(
    policy: &DeliveryPolicy,
    attempt: &SendAttempt,
    consent: &ConsentState,
    history: &SendHistory,
    time_zone: Option<Tz>,
    now_ms: i64,
    suppressed: impl FnOnce() -> Option<u32>,
) -> Decision {
    if let Err(refusal) = consent.check(
        &policy.consent,
        attempt.channel,
        attempt.category,
        attempt.subscription_group,
    ) {
        return Decision::Skip {
            reason: SkipReason::Consent { refusal },
        };
    }
    if let Some(rule) = suppressed() {
        return Decision::Skip {
            reason: SkipReason::Suppressed { rule },
        };
    }
    if attempt.category == MessageCategory::Transactional {
        return Decision::Send;
    }
    let zone = time_zone.unwrap_or(policy.fallback_time_zone);
    let mut send_at = now_ms;
    for _ in 0..MAX_SETTLING_ROUNDS {
        let mut moved = false;
        if let Some(quiet_end) = policy
            .quiet_hours
            .and_then(|quiet| quiet.quiet_until(send_at, zone))
        {
            if attempt.in_quiet_hours == YieldAction::Skip {
                return Decision::Skip {
                    reason: SkipReason::QuietHours,
                };
            }
            send_at = quiet_end;
            moved = true;
        }
        for (index, cap) in policy.frequency_caps.iter().enumerate() {
            let reason = SkipReason::FrequencyCap { cap: index as u32 };
            match cap.next_free_slot(history, attempt.channel, attempt.priority, send_at) {
                None => return Decision::Skip { reason },
                Some(free_at) if free_at > send_at => {
                    if attempt.when_capped == YieldAction::Skip {
                        return Decision::Skip { reason };
                    }
                    send_at = free_at;
                    moved = true;
                }
                Some(_) => {}
            }
        }
        if attempt
            .send_before_ms
            .is_some_and(|deadline| send_at > deadline)
        {
            return Decision::Skip {
                reason: SkipReason::Expired,
            };
        }
        if !moved {
            debug_assert!(send_at >= now_ms);
            return if send_at == now_ms {
                Decision::Send
            } else {
                Decision::DelayUntil { at_ms: send_at }
            };
        }
    }
    Decision::Skip {
        reason: SkipReason::Expired,
    }
}

/// Decides several messages for one profile due at the same instant: higher priority first (ties in
/// the given order), each `Send` recorded into a scratch copy of the history before the next is
/// decided, so the last free slot goes to the most important journey. Decisions come back in input
/// order. `suppressed(i)` is the suppression hook for message `i`.
pub fn decide_batch(
    policy: &DeliveryPolicy,
    attempts: &[SendAttempt],
    consent: &ConsentState,
    history: &SendHistory,
    time_zone: Option<Tz>,
    now_ms: i64,
    mut suppressed: impl FnMut(usize) -> Option<u32>,
) -> Vec<Decision> {
    let mut order: Vec<usize> = (0..attempts.len()).collect();
    order.sort_by_key(|&index| std::cmp::Reverse(attempts[index].priority));
    let mut scratch = history.clone();
    let retention = policy.history_retention_ms();
    let mut decisions = vec![
        Decision::Skip {
            reason: SkipReason::Expired
        };
        attempts.len()
    ];
    for index in order {
        let attempt = &attempts[index];
        let decision = decide(
            policy,
            attempt,
            consent,
            &scratch,
            time_zone,
            now_ms,
            || suppressed(index),
        );
        if decision == Decision::Send {
            scratch.record(now_ms, attempt.channel, attempt.category, retention);
        }
        decisions[index] = decision;
    }
    decisions
}
