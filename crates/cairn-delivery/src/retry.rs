//! Retry policy: exponential backoff with deterministic "equal jitter", a maximum number of attempts,
//! transient vs permanent vs in-doubt failures, and the provider's `Retry-After` as a lower bound.
//!
//! The jitter comes from a hash of a seed (the message id's hash) and the attempt number, so the same
//! message always gets the same schedule — replays and tests are exact — while different messages
//! spread out.

use serde::{Deserialize, Serialize};

use crate::DeliveryError;

/// How a failed attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Worth retrying (429, 5xx, connection refused, SMTP 4xx), optionally not before `retry_after_ms`.
    Transient { retry_after_ms: Option<u64> },
    /// Will never succeed (invalid number, 5xx SMTP reply, unknown device token).
    Permanent,
    /// The request may or may not have been accepted (timeout after sending it).
    InDoubt,
}

/// What to do with a message whose attempt ended in doubt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InDoubtPolicy {
    /// Send again (safe where the provider honours the idempotency key; otherwise risks a duplicate).
    Resend,
    /// Give up and record the message as in doubt (never a duplicate, possibly lost).
    #[default]
    Drop,
}

/// Why retrying stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GiveUpReason {
    Permanent,
    AttemptsExhausted,
    InDoubtDropped,
}

/// The verdict after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    RetryAt { at_ms: i64 },
    GiveUp { reason: GiveUpReason },
}

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    #[serde(default)]
    pub in_doubt: InDoubtPolicy,
}

impl Default for RetryPolicy {
    /// 8 attempts, 1 s doubling to at most 1 hour (about 2 hours in all).
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 3_600_000,
            in_doubt: InDoubtPolicy::Drop,
        }
    }
}

impl RetryPolicy {
    /// Checks attempts ≥ 1 and a positive, ordered backoff range.
    pub fn validated(self) -> Result<RetryPolicy, DeliveryError> {
        let invalid = |reason: &str| {
            Err(DeliveryError::InvalidSetting {
                setting: "retry",
                reason: reason.into(),
            })
        };
        if self.max_attempts == 0 {
            return invalid("max_attempts must be at least 1");
        }
        if self.initial_backoff_ms == 0 || self.max_backoff_ms < self.initial_backoff_ms {
            return invalid("backoff must satisfy 0 < initial_backoff_ms <= max_backoff_ms");
        }
        Ok(self)
    }

    /// The un-jittered backoff after `attempts_made` attempts (1 → initial, doubling, capped).
    pub fn backoff_ceiling_ms(&self, attempts_made: u32) -> u64 {
        let doublings = attempts_made.saturating_sub(1).min(63);
        self.initial_backoff_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_backoff_ms)
    }

    /// The delay before the next attempt: half the ceiling plus a deterministic jitter of up to the
    /// other half.
    pub fn backoff_ms(&self, attempts_made: u32, seed: u64) -> u64 {
        let ceiling = self.backoff_ceiling_ms(attempts_made);
        let half = ceiling / 2;
        let jitter = xxhash_rust::xxh3::xxh3_64_with_seed(&attempts_made.to_le_bytes(), seed)
            % (ceiling - half + 1);
        half + jitter
    }

    /// After `attempts_made` attempts, the last of which failed with `failure` at `now_ms`.
    pub fn next(
        &self,
        attempts_made: u32,
        failure: FailureClass,
        seed: u64,
        now_ms: i64,
    ) -> RetryDecision {
        let retry_after_ms = match failure {
            FailureClass::Permanent => {
                return RetryDecision::GiveUp {
                    reason: GiveUpReason::Permanent,
                }
            }
            FailureClass::InDoubt if self.in_doubt == InDoubtPolicy::Drop => {
                return RetryDecision::GiveUp {
                    reason: GiveUpReason::InDoubtDropped,
                }
            }
            FailureClass::InDoubt => None,
            FailureClass::Transient { retry_after_ms } => retry_after_ms,
        };
        if attempts_made >= self.max_attempts {
            return RetryDecision::GiveUp {
                reason: GiveUpReason::AttemptsExhausted,
            };
        }
        let delay = self
            .backoff_ms(attempts_made, seed)
            .max(retry_after_ms.unwrap_or(0));
        RetryDecision::RetryAt {
            at_ms: now_ms.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX)),
        }
    }
}

/// A stable seed for a message id (xxh3), for [`RetryPolicy::next`].
pub fn seed_for(message_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(message_id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn schedule_doubles_within_jitter_and_stops() {
        let policy = RetryPolicy {
            max_attempts: 4,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 5_000,
            in_doubt: InDoubtPolicy::Resend,
        };
        let transient = FailureClass::Transient {
            retry_after_ms: None,
        };
        let mut at = 0i64;
        let mut delays = Vec::new();
        for attempt in 1..4 {
            let RetryDecision::RetryAt { at_ms } = policy.next(attempt, transient, 42, at) else {
                panic!()
            };
            delays.push(at_ms - at);
            at = at_ms;
        }
        assert!((500..=1_000).contains(&delays[0]), "{delays:?}");
        assert!((1_000..=2_000).contains(&delays[1]), "{delays:?}");
        assert!((2_000..=4_000).contains(&delays[2]), "{delays:?}");
        assert_eq!(
            policy.next(4, transient, 42, at),
            RetryDecision::GiveUp {
                reason: GiveUpReason::AttemptsExhausted
            }
        );
        assert_eq!(
            policy.next(1, FailureClass::Permanent, 42, 0),
            RetryDecision::GiveUp {
                reason: GiveUpReason::Permanent
            }
        );
    }

    #[test]
    fn retry_after_is_a_lower_bound_and_in_doubt_follows_the_policy() {
        let policy = RetryPolicy::default();
        let decision = policy.next(
            1,
            FailureClass::Transient {
                retry_after_ms: Some(30_000),
            },
            1,
            100,
        );
        assert_eq!(decision, RetryDecision::RetryAt { at_ms: 30_100 });
        assert_eq!(
            policy.next(1, FailureClass::InDoubt, 1, 0),
            RetryDecision::GiveUp {
                reason: GiveUpReason::InDoubtDropped
            }
        );
        let resend = RetryPolicy {
            in_doubt: InDoubtPolicy::Resend,
            ..policy
        };
        assert!(matches!(
            resend.next(1, FailureClass::InDoubt, 1, 0),
            RetryDecision::RetryAt { .. }
        ));
    }

    #[test]
    fn invalid_settings_are_refused() {
        assert!(RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        }
        .validated()
        .is_err());
        assert!(RetryPolicy {
            initial_backoff_ms: 10,
            max_backoff_ms: 5,
            ..RetryPolicy::default()
        }
        .validated()
        .is_err());
    }

    proptest! {
        #[test]
        fn backoff_stays_between_half_and_full_ceiling(attempt in 1u32..100, seed in any::<u64>(), initial in 1u64..10_000, extra in 0u64..10_000_000) {
            let policy = RetryPolicy { max_attempts: 200, initial_backoff_ms: initial, max_backoff_ms: initial + extra, in_doubt: InDoubtPolicy::Drop };
            let ceiling = policy.backoff_ceiling_ms(attempt);
            let delay = policy.backoff_ms(attempt, seed);
            prop_assert!(delay >= ceiling / 2 && delay <= ceiling);
            prop_assert_eq!(delay, policy.backoff_ms(attempt, seed), "deterministic");
        }
    }
}
