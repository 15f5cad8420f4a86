//! Durable timers' in-memory index: what is due when, without scanning every enrollment.
//!
//! Timers are kept in buckets of one second (a `BTreeMap` from second to a vector of compact
//! entries), so a waiting enrollment costs 16 bytes here however far away its timer is. Entries are
//! never removed when a timer moves or is cleared: the entry is left behind and ignored when it comes
//! due, because the owner (the enrollment, the audience membership) no longer has that time. Firing
//! takes the due buckets and hands back entries whose time has come, in time order.
//!
//! The index itself is not checkpointed: it is rebuilt at start from the checkpointed enrollments.

use std::collections::BTreeMap;

/// What a timer wakes: an enrollment, a profile's audience membership, or a profile's delayed
/// messages (quiet hours, frequency caps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Wake {
    Enrollment(u64),
    Audience(u32),
    Delivery,
}

/// One timer: the profile (rank) it belongs to and what it wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerEntry {
    pub at_ms: i64,
    pub rank: u32,
    pub wake: Wake,
}

/// The compact stored form: 16 bytes.
#[derive(Debug, Clone, Copy)]
struct Packed {
    /// Milliseconds into the bucket's second.
    offset_ms: u16,
    /// Tag in the top two bits: 00 enrollment (id below), 10 audience (index below), 01 delivery.
    target: u64,
    rank: u32,
}

const AUDIENCE_TAG: u64 = 1 << 63;
const DELIVERY_TAG: u64 = 1 << 62;
const TAGS: u64 = AUDIENCE_TAG | DELIVERY_TAG;

impl Packed {
    fn of(entry: TimerEntry) -> Packed {
        Packed {
            offset_ms: entry.at_ms.rem_euclid(1000) as u16,
            target: match entry.wake {
                Wake::Enrollment(id) => {
                    debug_assert!(id & TAGS == 0, "enrollment ids stay below 2^62");
                    id
                }
                Wake::Audience(audience) => AUDIENCE_TAG | u64::from(audience),
                Wake::Delivery => DELIVERY_TAG,
            },
            rank: entry.rank,
        }
    }

    fn entry(self, second: i64) -> TimerEntry {
        TimerEntry {
            at_ms: second * 1000 + i64::from(self.offset_ms),
            rank: self.rank,
            wake: match self.target & TAGS {
                AUDIENCE_TAG => Wake::Audience((self.target & !TAGS) as u32),
                DELIVERY_TAG => Wake::Delivery,
                _ => Wake::Enrollment(self.target),
            },
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Timers {
    buckets: BTreeMap<i64, Vec<Packed>>,
    entries: usize,
}

impl Timers {
    pub(crate) fn len(&self) -> usize {
        self.entries
    }

    /// Adds a timer. (A moved timer is simply added again; its old entry is ignored when due.)
    pub(crate) fn add(&mut self, entry: TimerEntry) {
        self.buckets
            .entry(entry.at_ms.div_euclid(1000))
            .or_default()
            .push(Packed::of(entry));
        self.entries += 1;
    }

    /// The earliest timer, if any (possibly a left-behind entry: an early wake-up is harmless).
    pub(crate) fn next_due_ms(&self) -> Option<i64> {
        let (second, bucket) = self.buckets.iter().next()?;
        bucket
            .iter()
            .map(|packed| packed.entry(*second).at_ms)
            .min()
    }

    /// Removes and returns every timer due at or before `now_ms` (or strictly before, when
    /// `inclusive` is false), in time order; later timers of the same second stay.
    pub(crate) fn take_due(&mut self, now_ms: i64, inclusive: bool) -> Vec<TimerEntry> {
        let is_due = |at_ms: i64| {
            if inclusive {
                at_ms <= now_ms
            } else {
                at_ms < now_ms
            }
        };
        let last_second = now_ms.div_euclid(1000);
        let mut due = Vec::new();
        while let Some(mut first) = self.buckets.first_entry() {
            let second = *first.key();
            if second > last_second {
                break;
            }
            if second < last_second {
                let bucket = first.remove();
                self.entries -= bucket.len();
                due.extend(bucket.into_iter().map(|packed| packed.entry(second)));
                continue;
            }
            let bucket = first.get_mut();
            let before = bucket.len();
            bucket.retain(|packed| {
                let entry = packed.entry(second);
                if is_due(entry.at_ms) {
                    due.push(entry);
                    false
                } else {
                    true
                }
            });
            self.entries -= before - bucket.len();
            if bucket.is_empty() {
                first.remove();
            }
            break;
        }
        due.sort_unstable();
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(at_ms: i64, id: u64) -> TimerEntry {
        TimerEntry {
            at_ms,
            rank: 1,
            wake: Wake::Enrollment(id),
        }
    }

    #[test]
    fn timers_come_due_in_time_order_and_later_ones_of_the_same_second_wait() {
        let mut timers = Timers::default();
        timers.add(at(5_700, 1));
        timers.add(at(1_000, 2));
        timers.add(at(5_200, 3));
        timers.add(TimerEntry {
            at_ms: 3_000,
            rank: 9,
            wake: Wake::Audience(4),
        });
        timers.add(TimerEntry {
            at_ms: 4_000,
            rank: 9,
            wake: Wake::Delivery,
        });
        assert_eq!(timers.next_due_ms(), Some(1_000));
        let due = timers.take_due(5_500, true);
        assert_eq!(
            due.iter().map(|e| e.at_ms).collect::<Vec<_>>(),
            [1_000, 3_000, 4_000, 5_200]
        );
        assert_eq!(due[2].wake, Wake::Delivery);
        assert_eq!(due[1].wake, Wake::Audience(4));
        assert_eq!(due[1].rank, 9);
        assert_eq!(timers.len(), 1);
        assert!(timers.take_due(5_700, false).is_empty(), "strictly before");
        assert_eq!(timers.take_due(5_700, true), vec![at(5_700, 1)]);
        assert_eq!(timers.next_due_ms(), None);
    }

    proptest! {
        /// Whatever is added comes back exactly once, never before its time, in order.
        #[test]
        fn every_timer_fires_once_at_or_after_its_time(
            times in proptest::collection::vec(-5_000i64..50_000, 0..200),
            steps in proptest::collection::vec(0i64..5_000, 1..30),
        ) {
            let mut timers = Timers::default();
            for (id, time) in times.iter().enumerate() {
                timers.add(at(*time, id as u64));
            }
            let mut now = -6_000;
            let mut fired = Vec::new();
            for step in steps {
                now += step;
                let due = timers.take_due(now, true);
                prop_assert!(due.windows(2).all(|pair| pair[0] <= pair[1]));
                for entry in due {
                    prop_assert!(entry.at_ms <= now);
                    fired.push(entry);
                }
            }
            fired.extend(timers.take_due(i64::MAX / 2, true));
            prop_assert_eq!(fired.len(), times.len());
            prop_assert_eq!(timers.len(), 0);
            let mut ids: Vec<u64> = fired.iter().map(|e| match e.wake { Wake::Enrollment(id) => id, Wake::Audience(_) | Wake::Delivery => u64::MAX }).collect();
            ids.sort_unstable();
            prop_assert_eq!(ids, (0..times.len() as u64).collect::<Vec<_>>());
        }
    }
}
