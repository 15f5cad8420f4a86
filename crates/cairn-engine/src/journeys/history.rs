//! A profile's event history as conditions see it: counts, first and last times, and recent times.
//!
//! Only event names that some published journey or audience counts are kept (the registry says which,
//! and how far back: the longest window any condition uses). All-time counts and first/last times
//! need no list; windowed counts keep the timestamps inside the longest window, oldest first, so
//! `count("Product Viewed", 7d)` and its next change in time are exact.

use cairn_journey::EventHistory;
use serde::{Deserialize, Serialize};

/// How one event name is tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tracking {
    /// The longest window any condition counts this name over; `None`: all-time aggregates only.
    pub window_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProfileHistory {
    names: Vec<NameHistory>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct NameHistory {
    name: String,
    count: u64,
    first_ms: i64,
    last_ms: i64,
    /// Timestamps inside the tracked window, ascending.
    recent: Vec<i64>,
}

impl ProfileHistory {
    pub(crate) fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Records an event of a tracked name at `timestamp_ms`, as of `now_ms`.
    pub(crate) fn record(
        &mut self,
        name: &str,
        timestamp_ms: i64,
        tracking: Tracking,
        now_ms: i64,
    ) {
        let position = match self.names.iter().position(|entry| entry.name == name) {
            Some(position) => position,
            None => {
                self.names.push(NameHistory {
                    name: name.to_string(),
                    count: 0,
                    first_ms: timestamp_ms,
                    last_ms: timestamp_ms,
                    recent: Vec::new(),
                });
                self.names.len() - 1
            }
        };
        let entry = &mut self.names[position];
        entry.count += 1;
        entry.first_ms = entry.first_ms.min(timestamp_ms);
        entry.last_ms = entry.last_ms.max(timestamp_ms);
        if let Some(window_ms) = tracking.window_ms {
            let horizon = now_ms.saturating_sub(window_ms);
            if timestamp_ms >= horizon {
                let at = entry.recent.partition_point(|&t| t <= timestamp_ms);
                entry.recent.insert(at, timestamp_ms);
            }
            let expired = entry.recent.partition_point(|&t| t < horizon);
            entry.recent.drain(..expired);
        }
    }

    /// Adds another profile's history (a merge): counts add up, times widen, recent times join.
    pub(crate) fn absorb(&mut self, other: ProfileHistory) {
        for theirs in other.names {
            match self.names.iter_mut().find(|ours| ours.name == theirs.name) {
                Some(ours) => {
                    ours.count += theirs.count;
                    ours.first_ms = ours.first_ms.min(theirs.first_ms);
                    ours.last_ms = ours.last_ms.max(theirs.last_ms);
                    ours.recent.extend(theirs.recent);
                    ours.recent.sort_unstable();
                }
                None => self.names.push(theirs),
            }
        }
    }

    fn get(&self, name: &str) -> Option<&NameHistory> {
        self.names.iter().find(|entry| entry.name == name)
    }
}

impl EventHistory for ProfileHistory {
    fn event_count(&self, name: &str, since_ms: Option<i64>) -> u64 {
        match (self.get(name), since_ms) {
            (None, _) => 0,
            (Some(entry), None) => entry.count,
            (Some(entry), Some(since)) => {
                (entry.recent.len() - entry.recent.partition_point(|&t| t < since)) as u64
            }
        }
    }

    fn event_times(&self, name: &str) -> (Option<i64>, Option<i64>) {
        self.get(name).map_or((None, None), |entry| {
            (Some(entry.first_ms), Some(entry.last_ms))
        })
    }

    fn recent_event_times(&self, name: &str) -> &[i64] {
        self.get(name).map_or(&[], |entry| &entry.recent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windowed_counts_keep_only_the_window_and_all_time_counts_everything() {
        let mut history = ProfileHistory::default();
        let week = Tracking {
            window_ms: Some(7 * 86_400_000),
        };
        let day = 86_400_000;
        history.record("Viewed", 0, week, 0);
        history.record("Viewed", 5 * day, week, 5 * day);
        history.record("Viewed", 2 * day, week, 5 * day); // late, still inside
        history.record("Viewed", 9 * day, week, 9 * day);
        assert_eq!(history.event_count("Viewed", None), 4);
        assert_eq!(history.event_count("Viewed", Some(2 * day)), 3);
        assert_eq!(
            history.recent_event_times("Viewed"),
            [2 * day, 5 * day, 9 * day]
        );
        assert_eq!(history.event_times("Viewed"), (Some(0), Some(9 * day)));
        history.record("Bought", 3, Tracking { window_ms: None }, 3);
        assert_eq!(history.event_count("Bought", None), 1);
        assert!(history.recent_event_times("Bought").is_empty());
        assert_eq!(history.event_count("Never", None), 0);
    }
}
