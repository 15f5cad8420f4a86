//! Message-id de-duplication over a window, kept in memory by the writer.
//!
//! The writer owns a [`RecentMessageIds`]: a set of 128-bit hashes of `(workspace, messageId)` for the
//! messages received within the window (and at most `max_entries` of them, oldest forgotten first).
//! It is rebuilt at start from the keys stored with the log records ([`rebuild`]), so it survives
//! restarts and crashes exactly as the events do. Ids claimed by a group enter the window only once the
//! group has committed ([`GroupClaims`]); a failed commit leaves the window as it was.

use crate::EngineOptions;
use cairn_storage::{LogReader, StorageResult};
use std::collections::{HashSet, VecDeque};

pub(crate) use crate::codec::dedupe_key as key;

/// Rebuilds the window from the keys of the log records received within it.
pub(crate) fn rebuild(
    options: &EngineOptions,
    log: &dyn LogReader,
    now: chrono::DateTime<chrono::Utc>,
) -> StorageResult<RecentMessageIds> {
    let window_ms = i64::try_from(options.dedupe_window.as_millis()).unwrap_or(i64::MAX);
    let mut recent = RecentMessageIds::new(window_ms, options.dedupe_max_entries);
    let since = now.timestamp_millis().saturating_sub(window_ms);
    for (received_ms, key) in log.recent_keys(since, options.dedupe_max_entries)? {
        recent.insert(key, received_ms);
    }
    tracing::info!(
        remembered = recent.len(),
        "message-id de-duplication window rebuilt"
    );
    Ok(recent)
}

/// Message ids of committed events within the window.
#[derive(Debug)]
pub(crate) struct RecentMessageIds {
    keys: HashSet<u128>,
    /// `(received_at_ms, key)` in insertion order, for forgetting the oldest.
    order: VecDeque<(i64, u128)>,
    window_ms: i64,
    max_entries: usize,
}

impl RecentMessageIds {
    pub(crate) fn new(window_ms: i64, max_entries: usize) -> Self {
        RecentMessageIds {
            keys: HashSet::new(),
            order: VecDeque::new(),
            window_ms,
            max_entries,
        }
    }

    pub(crate) fn contains(&self, key: u128) -> bool {
        self.keys.contains(&key)
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Heap the window's tables hold, from their capacities (the hash set's power-of-two buckets,
    /// 7/8 of them usable, with a control byte each; the queue's slots).
    pub(crate) fn heap_bytes(&self) -> usize {
        let buckets = match self.keys.capacity() {
            0 => 0,
            capacity => (capacity * 8 / 7).next_power_of_two(),
        };
        buckets * (std::mem::size_of::<u128>() + 1)
            + self.order.capacity() * std::mem::size_of::<(i64, u128)>()
    }

    /// Remembers `key`, received at `received_ms`, and forgets what fell out of the window.
    pub(crate) fn insert(&mut self, key: u128, received_ms: i64) {
        if self.keys.insert(key) {
            self.order.push_back((received_ms, key));
        }
        let horizon = received_ms.saturating_sub(self.window_ms);
        while let Some(&(oldest_ms, oldest)) = self.order.front() {
            if oldest_ms >= horizon && self.order.len() <= self.max_entries {
                break;
            }
            self.order.pop_front();
            self.keys.remove(&oldest);
        }
        debug_assert_eq!(self.keys.len(), self.order.len());
    }
}

/// The ids claimed by the group being applied, not yet committed.
#[derive(Debug, Default)]
pub(crate) struct GroupClaims {
    keys: HashSet<u128>,
    claimed: Vec<(i64, u128)>,
}

impl GroupClaims {
    /// Claims a message id for this group; `false` if it is a duplicate of a committed or claimed one.
    pub(crate) fn claim(&mut self, recent: &RecentMessageIds, key: u128, received_ms: i64) -> bool {
        if recent.contains(key) || !self.keys.insert(key) {
            return false;
        }
        self.claimed.push((received_ms, key));
        true
    }

    /// After the group committed: its ids join the window.
    pub(crate) fn commit_into(self, recent: &mut RecentMessageIds) {
        for (received_ms, key) in self.claimed {
            recent.insert(key, received_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_model::WorkspaceId;

    #[test]
    fn ids_are_remembered_for_the_window_and_per_workspace() {
        let mut recent = RecentMessageIds::new(1_000, 100);
        let acme = WorkspaceId::new("acme");
        recent.insert(key(&acme, "m1"), 0);
        assert!(recent.contains(key(&acme, "m1")));
        assert!(
            !recent.contains(key(&WorkspaceId::new("globex"), "m1")),
            "workspaces do not share ids"
        );
        recent.insert(key(&acme, "m2"), 1_000);
        assert!(recent.contains(key(&acme, "m1")), "still inside the window");
        recent.insert(key(&acme, "m3"), 1_001);
        assert!(!recent.contains(key(&acme, "m1")), "fell out of the window");
        assert_eq!(recent.len(), 2);
    }

    #[test]
    fn the_oldest_ids_are_forgotten_beyond_the_entry_cap() {
        let mut recent = RecentMessageIds::new(i64::MAX, 2);
        let acme = WorkspaceId::new("acme");
        for (n, id) in ["a", "b", "c"].iter().enumerate() {
            recent.insert(key(&acme, id), n as i64);
        }
        assert!(!recent.contains(key(&acme, "a")));
        assert!(recent.contains(key(&acme, "b")) && recent.contains(key(&acme, "c")));
    }

    #[test]
    fn claims_join_the_window_only_when_committed() {
        let mut recent = RecentMessageIds::new(1_000, 100);
        let acme = WorkspaceId::new("acme");
        let mut failed = GroupClaims::default();
        assert!(failed.claim(&recent, key(&acme, "m1"), 0));
        assert!(
            !failed.claim(&recent, key(&acme, "m1"), 0),
            "a duplicate within the group"
        );
        drop(failed);
        let mut group = GroupClaims::default();
        assert!(
            group.claim(&recent, key(&acme, "m1"), 0),
            "the failed group's claim was forgotten"
        );
        group.commit_into(&mut recent);
        assert!(!GroupClaims::default().claim(&recent, key(&acme, "m1"), 5));
    }

    #[test]
    fn the_window_reports_the_heap_its_tables_hold() {
        let mut recent = RecentMessageIds::new(1_000, 10_000);
        assert_eq!(recent.heap_bytes(), 0);
        for n in 0..1_000u128 {
            recent.insert(n, 0);
        }
        let bytes = recent.heap_bytes();
        // At least 17 bytes a key in the set and 32 in the queue; at most four times that.
        assert!((49_000..=4 * 49_000).contains(&bytes), "{bytes}");
        for n in 1_000..1_100u128 {
            recent.insert(n, 0);
        }
        assert!(recent.heap_bytes() >= bytes, "tables do not shrink");
    }
}
