//! Durable timers' in-memory index: what is due when, without scanning every enrollment.
//!
//! Timers are kept in buckets of one second (a `BTreeMap` from second to a vector of compact
//! entries), so a waiting enrollment costs 8 bytes here however far away its timer is: the profile's
//! rank, the kind of owner and the millisecond. The owner (the enrollment, the audience membership)
//! is found on the profile by its wake-up time when the timer fires. Entries are never removed when a
//! timer moves or is cleared: the entry is left behind and ignored when it comes due, because no
//! owner on the profile has that time any more. Firing takes the due buckets and hands back each due
//! (instant, profile, kind) once, in time order.
//!
//! The index itself is not checkpointed: it is rebuilt at start from the checkpointed enrollments.

use std::collections::BTreeMap;

/// What a timer wakes on its profile: the enrollments, the audience memberships or the delayed
/// messages (quiet hours, frequency caps) whose wake-up time is the timer's instant. The entry does
/// not say which enrollment or audience: the owner is found on the profile by its wake-up time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Wake {
    Enrollment,
    Audience,
    Delivery,
}

/// One timer: the profile (rank) it belongs to and what it wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerEntry {
    pub at_ms: i64,
    pub rank: u32,
    pub wake: Wake,
}

/// The compact stored form, 8 bytes: the rank in the high 32 bits, the kind in bits 10–11 and the
/// milliseconds into the bucket's second in bits 0–9.
#[derive(Debug, Clone, Copy)]
struct Packed(u64);

const OFFSET_BITS: u32 = 10;
const OFFSET_MASK: u64 = (1 << OFFSET_BITS) - 1;

impl Packed {
    fn of(entry: TimerEntry) -> Packed {
        let kind: u64 = match entry.wake {
            Wake::Enrollment => 0,
            Wake::Audience => 1,
            Wake::Delivery => 2,
        };
        let offset = entry.at_ms.rem_euclid(1000) as u64;
        Packed((u64::from(entry.rank) << 32) | (kind << OFFSET_BITS) | offset)
    }

    fn entry(self, second: i64) -> TimerEntry {
        TimerEntry {
            at_ms: second * 1000 + (self.0 & OFFSET_MASK) as i64,
            rank: (self.0 >> 32) as u32,
            wake: match (self.0 >> OFFSET_BITS) & 0b11 {
                0 => Wake::Enrollment,
                1 => Wake::Audience,
                _ => Wake::Delivery,
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
    /// `inclusive` is false), in time order, each (instant, profile, kind) once (the entry stands for
    /// every owner on the profile with that wake-up time); later timers of the same second stay.
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
        due.dedup();
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(at_ms: i64, rank: u32) -> TimerEntry {
        TimerEntry {
            at_ms,
            rank,
            wake: Wake::Enrollment,
        }
    }

    #[test]
    fn an_entry_is_8_bytes() {
        assert_eq!(std::mem::size_of::<Packed>(), 8);
        let entry = TimerEntry {
            at_ms: -1_001,
            rank: u32::MAX,
            wake: Wake::Delivery,
        };
        assert_eq!(Packed::of(entry).entry(-2), entry);
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
            wake: Wake::Audience,
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
        assert_eq!(due[1].wake, Wake::Audience);
        assert_eq!(due[1].rank, 9);
        assert_eq!(timers.len(), 1);
        assert!(timers.take_due(5_700, false).is_empty(), "strictly before");
        assert_eq!(timers.take_due(5_700, true), vec![at(5_700, 1)]);
        assert_eq!(timers.next_due_ms(), None);
    }

    #[test]
    fn two_owners_of_one_profile_due_at_the_same_instant_come_back_once() {
        let mut timers = Timers::default();
        timers.add(at(2_500, 7));
        timers.add(at(2_500, 7));
        timers.add(at(2_500, 8));
        timers.add(TimerEntry {
            at_ms: 2_500,
            rank: 7,
            wake: Wake::Audience,
        });
        let due = timers.take_due(3_000, true);
        assert_eq!(
            due,
            vec![
                at(2_500, 7),
                TimerEntry {
                    at_ms: 2_500,
                    rank: 7,
                    wake: Wake::Audience,
                },
                at(2_500, 8),
            ]
        );
        assert_eq!(timers.len(), 0);
    }

    proptest! {
        /// Whatever is added comes back exactly once, never before its time, in order.
        #[test]
        fn every_timer_fires_once_at_or_after_its_time(
            times in proptest::collection::vec(-5_000i64..50_000, 0..200),
            steps in proptest::collection::vec(0i64..5_000, 1..30),
        ) {
            let mut timers = Timers::default();
            for (rank, time) in times.iter().enumerate() {
                timers.add(at(*time, rank as u32));
            }
            let mut now = -6_000;
            let mut fired = Vec::new();
            for step in steps {
                now += step;
                let due = timers.take_due(now, true);
                prop_assert!(due.windows(2).all(|pair| pair[0] <= pair[1]));
                for entry in due {
                    prop_assert!(entry.at_ms <= now);
                    prop_assert_eq!(entry.at_ms, times[entry.rank as usize]);
                    fired.push(entry);
                }
            }
            fired.extend(timers.take_due(i64::MAX / 2, true));
            prop_assert_eq!(fired.len(), times.len());
            prop_assert_eq!(timers.len(), 0);
            let mut ranks: Vec<u32> = fired.iter().map(|e| e.rank).collect();
            ranks.sort_unstable();
            prop_assert_eq!(ranks, (0..times.len() as u32).collect::<Vec<_>>());
        }
    }
}
