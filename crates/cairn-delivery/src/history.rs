//! The compact per-profile send history that frequency caps are counted from.
//!
//! One sent message is one `u64`: 48 bits of send time (Unix milliseconds, good until the year 10889),
//! 8 bits of channel, 1 bit "counts toward caps" (marketing). Entries are kept sorted by time and
//! pruned to the longest cap window, so a customer who gets three emails a week costs the engine a
//! few dozen bytes. [`SendHistory::to_bytes`] / [`SendHistory::from_bytes`] give a stable little-endian
//! encoding for storage.

use crate::{Channel, DeliveryError, MessageCategory};

const TIME_BITS: u32 = 48;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;
const CHANNEL_SHIFT: u32 = 48;
const COUNTED_BIT: u64 = 1 << 56;

/// One sent message, packed into eight bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SentEntry(u64);

impl SentEntry {
    /// Packs a send. Times before 1970 are clamped to 0 and times past 2^48 ms to the maximum.
    pub fn new(sent_at_ms: i64, channel: Channel, category: MessageCategory) -> SentEntry {
        let time = (sent_at_ms.max(0) as u64).min(TIME_MASK);
        let counted = if category == MessageCategory::Marketing {
            COUNTED_BIT
        } else {
            0
        };
        SentEntry(time | (u64::from(channel as u8) << CHANNEL_SHIFT) | counted)
    }

    /// When the message was sent (Unix ms).
    pub fn sent_at_ms(self) -> i64 {
        (self.0 & TIME_MASK) as i64
    }

    /// The channel it was sent on.
    pub fn channel(self) -> Channel {
        // Only `new` and `from_bytes` (which validates) build entries.
        Channel::from_index(((self.0 >> CHANNEL_SHIFT) & 0xff) as u8).unwrap_or(Channel::Email)
    }

    /// Whether it counts toward frequency caps (marketing messages do, transactional ones do not).
    pub fn counts_toward_caps(self) -> bool {
        self.0 & COUNTED_BIT != 0
    }
}

/// A profile's recent sends, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendHistory {
    entries: Vec<SentEntry>,
}

impl SendHistory {
    /// An empty history.
    pub fn new() -> SendHistory {
        SendHistory::default()
    }

    /// Records a send and drops entries older than `keep_ms` before it (pass
    /// [`crate::DeliveryPolicy::history_retention_ms`]). Out-of-order records are inserted in place.
    pub fn record(
        &mut self,
        sent_at_ms: i64,
        channel: Channel,
        category: MessageCategory,
        keep_ms: i64,
    ) {
        let entry = SentEntry::new(sent_at_ms, channel, category);
        let position = self
            .entries
            .partition_point(|existing| existing.sent_at_ms() <= entry.sent_at_ms());
        self.entries.insert(position, entry);
        let newest = self
            .entries
            .last()
            .map_or(sent_at_ms, |last| last.sent_at_ms());
        self.prune_before(newest.saturating_sub(keep_ms));
        debug_assert!(self
            .entries
            .windows(2)
            .all(|pair| pair[0].sent_at_ms() <= pair[1].sent_at_ms()));
    }

    /// Inserts an entry taken from another history (a merge), keeping the order; nothing is pruned.
    pub fn record_entry(&mut self, entry: SentEntry) {
        let position = self
            .entries
            .partition_point(|existing| existing.sent_at_ms() <= entry.sent_at_ms());
        self.entries.insert(position, entry);
    }

    /// Drops entries sent at or before `cutoff_ms`.
    pub fn prune_before(&mut self, cutoff_ms: i64) {
        let first_kept = self
            .entries
            .partition_point(|entry| entry.sent_at_ms() <= cutoff_ms);
        self.entries.drain(..first_kept);
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[SentEntry] {
        &self.entries
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the history is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of heap this history uses (for RAM accounting).
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<SentEntry>()
    }

    /// The stable encoding: eight little-endian bytes per entry, oldest first.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.entries
            .iter()
            .flat_map(|entry| entry.0.to_le_bytes())
            .collect()
    }

    /// Decodes [`SendHistory::to_bytes`], checking length, channels and order.
    pub fn from_bytes(bytes: &[u8]) -> Result<SendHistory, DeliveryError> {
        if !bytes.len().is_multiple_of(8) {
            return Err(DeliveryError::CorruptHistory(
                "length is not a multiple of 8",
            ));
        }
        let mut entries = Vec::with_capacity(bytes.len() / 8);
        for chunk in bytes.chunks_exact(8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let raw = u64::from_le_bytes(word);
            if Channel::from_index(((raw >> CHANNEL_SHIFT) & 0xff) as u8).is_none() {
                return Err(DeliveryError::CorruptHistory("unknown channel"));
            }
            if raw >> 57 != 0 {
                return Err(DeliveryError::CorruptHistory("reserved bits are set"));
            }
            let entry = SentEntry(raw);
            if entries
                .last()
                .is_some_and(|last: &SentEntry| last.sent_at_ms() > entry.sent_at_ms())
            {
                return Err(DeliveryError::CorruptHistory(
                    "entries are not in time order",
                ));
            }
            entries.push(entry);
        }
        Ok(SendHistory { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entries_pack_time_channel_and_category() {
        let entry = SentEntry::new(1_700_000_000_123, Channel::Sms, MessageCategory::Marketing);
        assert_eq!(entry.sent_at_ms(), 1_700_000_000_123);
        assert_eq!(entry.channel(), Channel::Sms);
        assert!(entry.counts_toward_caps());
        let transactional = SentEntry::new(5, Channel::Push, MessageCategory::Transactional);
        assert!(!transactional.counts_toward_caps());
        assert_eq!(std::mem::size_of::<SentEntry>(), 8);
    }

    #[test]
    fn record_keeps_order_and_prunes_to_the_window() {
        let mut history = SendHistory::new();
        let day = 86_400_000;
        history.record(
            10 * day,
            Channel::Email,
            MessageCategory::Marketing,
            7 * day,
        );
        history.record(
            12 * day,
            Channel::Email,
            MessageCategory::Marketing,
            7 * day,
        );
        history.record(11 * day, Channel::Sms, MessageCategory::Marketing, 7 * day);
        let times: Vec<i64> = history
            .entries()
            .iter()
            .map(|e| e.sent_at_ms() / day)
            .collect();
        assert_eq!(times, vec![10, 11, 12]);
        history.record(
            18 * day,
            Channel::Email,
            MessageCategory::Marketing,
            7 * day,
        );
        let times: Vec<i64> = history
            .entries()
            .iter()
            .map(|e| e.sent_at_ms() / day)
            .collect();
        assert_eq!(
            times,
            vec![12, 18],
            "entries at or before 18d - 7d are dropped"
        );
    }

    #[test]
    fn corrupt_bytes_are_errors() {
        assert!(SendHistory::from_bytes(&[1, 2, 3]).is_err());
        let mut bad_channel = SentEntry::new(1, Channel::Email, MessageCategory::Marketing).0;
        bad_channel |= 9 << CHANNEL_SHIFT;
        assert!(SendHistory::from_bytes(&bad_channel.to_le_bytes()).is_err());
        let mut out_of_order = SentEntry::new(9, Channel::Email, MessageCategory::Marketing)
            .0
            .to_le_bytes()
            .to_vec();
        out_of_order.extend(
            SentEntry::new(1, Channel::Email, MessageCategory::Marketing)
                .0
                .to_le_bytes(),
        );
        assert!(SendHistory::from_bytes(&out_of_order).is_err());
    }

    proptest! {
        #[test]
        fn encoding_round_trips(sends in proptest::collection::vec((0i64..1i64 << 47, 0u8..4, any::<bool>()), 0..40)) {
            let mut history = SendHistory::new();
            for (at, channel, marketing) in sends {
                let category = if marketing { MessageCategory::Marketing } else { MessageCategory::Transactional };
                history.record(at, Channel::from_index(channel).unwrap(), category, i64::MAX / 2);
            }
            let decoded = SendHistory::from_bytes(&history.to_bytes()).unwrap();
            prop_assert_eq!(decoded, history);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = SendHistory::from_bytes(&bytes);
        }
    }
}
