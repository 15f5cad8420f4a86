//! A token bucket with injected time, for per-provider rate limits (Twilio's messages per second,
//! an SMTP relay's hourly quota). Integer arithmetic in milli-tokens: deterministic, no float drift.
//!
//! `governor` was considered; its clock abstraction works with `Instant`-like nanosecond values,
//! while the dispatcher's time is Unix milliseconds from the engine's clock, and it needs no atomics
//! here (one bucket per provider worker). This is 40 lines with an exact answer to "when may I send".

use crate::DeliveryError;

const MILLI: u64 = 1_000;

/// At most `capacity` sends in a burst, refilled at `per_second` tokens per second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    capacity_milli: u64,
    per_second: u64,
    available_milli: u64,
    updated_at_ms: i64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    pub fn new(capacity: u32, per_second: u32, now_ms: i64) -> Result<TokenBucket, DeliveryError> {
        if capacity == 0 || per_second == 0 {
            return Err(DeliveryError::InvalidSetting {
                setting: "rate_limit",
                reason: "capacity and per_second must be at least 1".into(),
            });
        }
        let capacity_milli = u64::from(capacity) * MILLI;
        Ok(TokenBucket {
            capacity_milli,
            per_second: u64::from(per_second),
            available_milli: capacity_milli,
            updated_at_ms: now_ms,
        })
    }

    fn refill(&mut self, now_ms: i64) {
        if now_ms > self.updated_at_ms {
            // per_second tokens per 1000 ms = per_second milli-tokens per ms.
            let elapsed = (now_ms - self.updated_at_ms) as u64;
            self.available_milli = self
                .available_milli
                .saturating_add(elapsed.saturating_mul(self.per_second))
                .min(self.capacity_milli);
            self.updated_at_ms = now_ms;
        }
    }

    /// Takes one token at `now_ms`, or returns the instant one will be available.
    pub fn try_acquire(&mut self, now_ms: i64) -> Result<(), i64> {
        self.refill(now_ms);
        if self.available_milli >= MILLI {
            self.available_milli -= MILLI;
            return Ok(());
        }
        let missing = MILLI - self.available_milli;
        Err(self.updated_at_ms + missing.div_ceil(self.per_second) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let mut bucket = TokenBucket::new(2, 10, 0).unwrap();
        assert_eq!(bucket.try_acquire(0), Ok(()));
        assert_eq!(bucket.try_acquire(0), Ok(()));
        assert_eq!(
            bucket.try_acquire(0),
            Err(100),
            "10/s → one token per 100 ms"
        );
        assert_eq!(bucket.try_acquire(99), Err(100));
        assert_eq!(bucket.try_acquire(100), Ok(()));
        assert_eq!(bucket.try_acquire(10_000), Ok(()));
        assert_eq!(bucket.try_acquire(10_000), Ok(()));
        assert!(
            bucket.try_acquire(10_000).is_err(),
            "never more than the capacity"
        );
        assert!(TokenBucket::new(0, 1, 0).is_err());
    }

    proptest! {
        #[test]
        fn never_exceeds_rate_plus_burst(rate in 1u32..50, capacity in 1u32..20, steps in proptest::collection::vec(0i64..200, 1..300)) {
            let mut bucket = TokenBucket::new(capacity, rate, 0).unwrap();
            let mut now = 0i64;
            let mut granted = 0u64;
            for step in steps {
                now += step;
                if bucket.try_acquire(now).is_ok() { granted += 1; }
            }
            let bound = u64::from(capacity) + (now as u64 * u64::from(rate)) / 1000;
            prop_assert!(granted <= bound, "granted {} > bound {}", granted, bound);
        }
    }
}
