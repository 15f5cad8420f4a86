//! Frequency caps: at most N counted (marketing) messages per rolling window, on one channel or on
//! all channels together, with slots reserved for high-priority journeys.
//!
//! A message counts toward a cap at time `t` when it was sent in `(t - window, t]`. A message of
//! priority `p` may use a cap only while the count is below `max_messages` minus the slots reserved
//! for priorities above `p` — so when a cap fills up, the low-priority journeys yield first.

use serde::{Deserialize, Serialize};

use crate::{Channel, DeliveryError, SendHistory};

/// Keeps `slots` of a cap's messages for journeys of priority `min_priority` or higher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityReservation {
    pub min_priority: u8,
    pub slots: u32,
}

/// "At most `max_messages` marketing messages per `window_ms`", on `channel` or on every channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCap {
    /// `None` caps all channels together.
    #[serde(default)]
    pub channel: Option<Channel>,
    pub window_ms: i64,
    pub max_messages: u32,
    #[serde(default)]
    pub reservation: Option<PriorityReservation>,
}

impl FrequencyCap {
    /// Checks the window is positive and the reservation fits.
    pub fn validate(&self) -> Result<(), DeliveryError> {
        let invalid = |reason: String| {
            Err(DeliveryError::InvalidSetting {
                setting: "frequency_caps",
                reason,
            })
        };
        if self.window_ms <= 0 {
            return invalid(format!(
                "window must be positive, got {} ms",
                self.window_ms
            ));
        }
        if let Some(reservation) = self.reservation {
            if reservation.slots > self.max_messages {
                return invalid(format!(
                    "{} reserved slots exceed the cap of {}",
                    reservation.slots, self.max_messages
                ));
            }
        }
        Ok(())
    }

    /// How many counted messages a message of `priority` may find in the window and still go out.
    pub fn allowance(&self, priority: u8) -> u32 {
        match self.reservation {
            Some(reservation) if priority < reservation.min_priority => {
                self.max_messages - reservation.slots.min(self.max_messages)
            }
            _ => self.max_messages,
        }
    }

    fn applies_to(&self, channel: Channel) -> bool {
        self.channel.is_none_or(|capped| capped == channel)
    }

    /// The earliest instant at or after `at_ms` when a message of `channel` and `priority` fits under
    /// this cap, or `None` when it never will (an allowance of zero).
    pub fn next_free_slot(
        &self,
        history: &SendHistory,
        channel: Channel,
        priority: u8,
        at_ms: i64,
    ) -> Option<i64> {
        if !self.applies_to(channel) {
            return Some(at_ms);
        }
        let allowance = self.allowance(priority);
        let window_start = at_ms - self.window_ms;
        let mut counted_in_window = history
            .entries()
            .iter()
            .filter(|entry| entry.counts_toward_caps() && entry.sent_at_ms() <= at_ms);
        let in_window: u32 = counted_in_window
            .clone()
            .filter(|entry| entry.sent_at_ms() > window_start && self.applies_to(entry.channel()))
            .count() as u32;
        if in_window < allowance {
            return Some(at_ms);
        }
        if allowance == 0 {
            return None;
        }
        // The slot frees when the (in_window - allowance + 1)-th oldest counted message leaves the window.
        let must_expire = (in_window - allowance) as usize;
        let oldest_to_expire = counted_in_window
            .find_map({
                let mut seen = 0usize;
                move |entry| {
                    if entry.sent_at_ms() > window_start && self.applies_to(entry.channel()) {
                        if seen == must_expire {
                            return Some(entry.sent_at_ms());
                        }
                        seen += 1;
                    }
                    None
                }
            })
            .unwrap_or(window_start);
        Some(oldest_to_expire + self.window_ms)
    }
}
