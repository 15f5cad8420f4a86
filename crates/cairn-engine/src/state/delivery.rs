//! Volume control in the state: every message a journey sends is decided at the instant it is due
//! ([`cairn_delivery::decide`]): consent, the workspace's suppression rules and the send step's own
//! `suppress_if`, quiet hours in the customer's time zone and frequency caps across every journey.
//! The decision reads only the state and the input's time, so a replay decides the same. A delayed
//! message waits in the profile's state behind a timer and is decided again when it wakes.
//!
//! Consent changes arrive as events (`Email Unsubscribed`, `SMS Subscribed`, complaints, hard
//! bounces) and are applied in log order, so an opt-out logged before a message is due wins.

use super::{Dirty, ProfileJourneyState, State};
use crate::journeys::timers::{TimerEntry, Wake};
use cairn_condition::{Condition, EvalContext};
use cairn_delivery::{
    decide, Channel, ConsentChange, ConsentTarget, Decision, MessageCategory, SendAttempt,
    SendHistory, YieldAction,
};
use cairn_journey::EventHistory;
use cairn_model::WorkspaceId;
use cairn_storage::OutboxRow;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// A message waiting for quiet hours to end or a cap to free up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DelayedMessage {
    pub at_ms: i64,
    pub message_id: String,
    pub journey_id: String,
    pub channel: String,
    pub decided_at_ms: i64,
    /// The message as the journey produced it (JSON).
    pub body: String,
}

/// A message a journey wants to send, before the delivery decision.
pub(super) struct Proposed {
    pub message_id: String,
    pub journey_id: String,
    pub channel: String,
    /// The message as the journey produced it (JSON).
    pub body: Value,
}

/// The send history stored as its compact bytes.
pub(crate) mod send_history_bytes {
    use cairn_delivery::SendHistory;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        history: &SendHistory,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&history.to_bytes())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SendHistory, D::Error> {
        let bytes = Vec::<u8>::deserialize(deserializer)?;
        SendHistory::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

/// What suppression conditions see: the profile, its event history and the message's journey data.
struct SuppressionContext<'a> {
    now_ms: i64,
    profile: &'a Map<String, Value>,
    history: &'a dyn EventHistory,
    journey: Option<&'a Value>,
}

impl EvalContext for SuppressionContext<'_> {
    fn now_ms(&self) -> i64 {
        self.now_ms
    }
    fn profile(&self) -> Option<&Map<String, Value>> {
        Some(self.profile)
    }
    fn event(&self) -> Option<&Value> {
        None
    }
    fn journey(&self) -> Option<&Value> {
        self.journey
    }
    fn event_count(&self, name: &str, since_ms: Option<i64>) -> u64 {
        self.history.event_count(name, since_ms)
    }
    fn event_times(&self, name: &str) -> (Option<i64>, Option<i64>) {
        self.history.event_times(name)
    }
    fn recent_event_times(&self, name: &str) -> &[i64] {
        self.history.recent_event_times(name)
    }
}

/// The send step's delivery settings, read from the message's `settings`.
fn attempt_of(message: &Value, channel: Channel) -> SendAttempt {
    let settings = &message["settings"];
    let action = |name: &str| match settings[name].as_str() {
        Some("skip") => YieldAction::Skip,
        _ => YieldAction::Delay,
    };
    let at_ms = message["at_ms"].as_i64().unwrap_or(0);
    SendAttempt {
        channel,
        category: if message["transactional"].as_bool() == Some(true) {
            MessageCategory::Transactional
        } else {
            MessageCategory::Marketing
        },
        subscription_group: settings["subscription_group"]
            .as_u64()
            .and_then(|group| u32::try_from(group).ok()),
        priority: message["priority"]
            .as_i64()
            .map_or(0, |priority| priority.clamp(0, 255) as u8),
        when_capped: action("when_capped"),
        in_quiet_hours: action("in_quiet_hours"),
        send_before_ms: settings["expires_after"]
            .as_str()
            .and_then(|text| humantime::parse_duration(text).ok())
            .map(|expiry| at_ms.saturating_add(expiry.as_millis() as i64)),
    }
}

impl State {
    /// Decides an outbox message at `now`; returns its row (status `ready`, `delayed` or `skipped`,
    /// the decision inside the body). A delayed message is also kept in the profile's state with a
    /// timer; a sent one is recorded in the profile's send history.
    pub(super) fn decide_message(
        &mut self,
        rank: u32,
        workspace: &WorkspaceId,
        proposed: Proposed,
        now: i64,
    ) -> OutboxRow {
        let Proposed {
            message_id,
            journey_id,
            channel: channel_name,
            body: mut message,
        } = proposed;
        let decision = self.decision_for(rank, workspace, &message, &channel_name, now);
        let (status, detail) = match decision {
            Ok(Decision::Send) => ("ready", json!({"decision": "send"})),
            Ok(Decision::DelayUntil { at_ms }) => (
                "delayed",
                json!({"decision": "delay", "until": super::views::time(at_ms)}),
            ),
            Ok(Decision::Skip { reason }) => {
                ("skipped", json!({"decision": "skip", "reason": reason}))
            }
            Err(reason) => (
                "skipped",
                json!({"decision": "skip", "reason": {"reason": reason}}),
            ),
        };
        let retention = self.registries.get(workspace).map_or(0, |registry| {
            registry.policy().delivery.history_retention_ms()
        });
        let state = self
            .record_mut(rank)
            .journey
            .get_or_insert_with(Box::default);
        match decision {
            Ok(Decision::Send) => {
                if let Some(channel) = Channel::parse(&channel_name) {
                    let category = attempt_of(&message, channel).category;
                    state.sends.record(now, channel, category, retention);
                }
            }
            Ok(Decision::DelayUntil { at_ms }) => {
                state.delayed.push(DelayedMessage {
                    at_ms,
                    message_id: message_id.clone(),
                    journey_id: journey_id.clone(),
                    channel: channel_name.clone(),
                    decided_at_ms: now,
                    body: message.to_string(),
                });
                self.timers.add(TimerEntry {
                    at_ms,
                    rank,
                    wake: Wake::Delivery,
                });
            }
            _ => {}
        }
        if let Value::Object(object) = &mut message {
            let mut detail = detail;
            detail["decided_at"] = json!(super::views::time(now));
            object.insert("delivery".into(), detail);
        }
        self.touch(rank, Dirty::Extra);
        OutboxRow {
            message_id,
            workspace: workspace.clone(),
            profile_rank: rank,
            journey_id,
            channel: channel_name,
            at_ms: now,
            status: status.to_string(),
            body: message.to_string(),
        }
    }

    /// The verdict for one message, or why it cannot be sent at all.
    fn decision_for(
        &mut self,
        rank: u32,
        workspace: &WorkspaceId,
        message: &Value,
        channel_name: &str,
        now: i64,
    ) -> Result<Decision, &'static str> {
        let channel = Channel::parse(channel_name).ok_or("unknown channel")?;
        let step_rule = message["settings"]["suppress_if"]
            .as_str()
            .map(str::to_string);
        let step_condition = match &step_rule {
            Some(source) => Some(
                self.step_suppression(source)
                    .ok_or("suppress_if does not compile")?,
            ),
            None => None,
        };
        let Some(registry) = self.registries.get(workspace) else {
            return Ok(Decision::Send);
        };
        let policy = &registry.policy().delivery;
        let record = self.record(rank);
        let empty = ProfileJourneyState::default();
        let state = record.journey.as_deref().unwrap_or(&empty);
        let address_trait = match channel {
            Channel::Email => Some("email"),
            Channel::Sms => Some("phone"),
            Channel::Push | Channel::Webhook => None,
        };
        if let Some(address_trait) = address_trait {
            if let Some(address) = record
                .traits
                .values
                .get(address_trait)
                .and_then(Value::as_str)
            {
                if state
                    .undeliverable
                    .iter()
                    .any(|bad| bad.eq_ignore_ascii_case(address))
                {
                    return Err("undeliverable_address");
                }
            }
        }
        let attempt = attempt_of(message, channel);
        let time_zone = record
            .traits
            .values
            .get("timezone")
            .and_then(Value::as_str)
            .and_then(|name| name.parse::<chrono_tz::Tz>().ok());
        let context = SuppressionContext {
            now_ms: now,
            profile: &record.traits.values,
            history: &state.history,
            journey: message.get("data").filter(|data| !data.is_null()),
        };
        let suppressed = || {
            registry
                .suppressions
                .iter()
                .position(|(channels, condition)| {
                    (channels.is_empty() || channels.iter().any(|c| c == channel_name))
                        && condition.matches(&context)
                })
                .map(|index| index as u32)
                .or_else(|| {
                    step_condition
                        .as_ref()
                        .filter(|condition| condition.matches(&context))
                        .map(|_| registry.suppressions.len() as u32)
                })
        };
        Ok(decide(
            policy,
            &attempt,
            &state.consent,
            &state.sends,
            time_zone,
            now,
            suppressed,
        ))
    }

    /// A send step's `suppress_if`, compiled once per distinct source.
    fn step_suppression(&mut self, source: &str) -> Option<Condition> {
        if let Some(condition) = self.step_suppressions.get(source) {
            return Some(condition.clone());
        }
        let mut schema = cairn_condition::Schema::open();
        schema.allow_event_root(false);
        let condition = cairn_condition::compile(source, &schema).ok()?;
        self.step_suppressions
            .insert(source.to_string(), condition.clone());
        Some(condition)
    }

    /// Decides again the profile's delayed messages that are due.
    pub(super) fn wake_delayed(&mut self, rank: u32, now: i64) {
        let workspace = self.record(rank).workspace.clone();
        let due: Vec<DelayedMessage> = match &mut self.record_mut(rank).journey {
            Some(state) => {
                let (due, later): (Vec<_>, Vec<_>) = state
                    .delayed
                    .drain(..)
                    .partition(|message| message.at_ms <= now);
                state.delayed = later;
                due
            }
            None => Vec::new(),
        };
        if due.is_empty() {
            return;
        }
        self.touch(rank, Dirty::Extra);
        let mut due = due;
        // Higher priority first, so the last free slot under a cap goes to the most important journey.
        due.sort_by_key(|message| {
            let priority = serde_json::from_str::<Value>(&message.body)
                .ok()
                .and_then(|body| body["priority"].as_i64())
                .unwrap_or(0);
            (std::cmp::Reverse(priority), message.at_ms)
        });
        for delayed in due {
            let proposed = Proposed {
                body: serde_json::from_str(&delayed.body).unwrap_or(Value::Null),
                message_id: delayed.message_id,
                journey_id: delayed.journey_id,
                channel: delayed.channel,
            };
            let row = self.decide_message(rank, &workspace, proposed, now);
            self.keep_outbox_row(rank, row);
        }
    }

    /// Keeps an outbox row: pending for the checkpoint, and fresh for the dispatcher when ready.
    pub(super) fn keep_outbox_row(&mut self, rank: u32, row: OutboxRow) {
        if row.status == "ready" {
            self.fresh_outbox.push(row.clone());
        }
        let state = self
            .record_mut(rank)
            .journey
            .get_or_insert_with(Box::default);
        state.pending_outbox.push(row);
        self.touch(rank, Dirty::Extra);
    }

    /// Applies what a delivery or consent event says about the recipient: opt-outs, opt-ins,
    /// complaints, hard bounces.
    pub(super) fn apply_recipient_event(
        &mut self,
        rank: u32,
        name: &str,
        properties: &Value,
        at_ms: i64,
    ) {
        let (prefix, verb) = match name.rsplit_once(' ') {
            Some((prefix, verb)) => (Some(prefix), verb),
            None => (None, name),
        };
        let channel = prefix
            .and_then(channel_of_prefix)
            .or_else(|| properties["channel"].as_str().and_then(Channel::parse));
        let target = match properties["subscription_group"].as_u64() {
            Some(group) => u32::try_from(group).ok().map(ConsentTarget::Group),
            None => channel.map(ConsentTarget::Channel),
        };
        let global = properties["global"].as_bool() == Some(true);
        let change = match verb {
            "Unsubscribed" if global => Some(ConsentChange::GlobalUnsubscribe),
            "Subscribed" if global => Some(ConsentChange::GlobalResubscribe),
            "Unsubscribed" | "Complained" => target.map(|target| ConsentChange::OptOut { target }),
            "Subscribed" => target.map(|target| ConsentChange::OptIn { target }),
            _ => None,
        };
        let bounce = verb == "Bounced"
            && channel == Some(Channel::Email)
            && properties["bounce_type"].as_str() != Some("soft");
        let rejected = match verb {
            "Failed" if properties["invalid_recipient"].as_bool() == Some(true) => {
                properties["recipient"].as_str()
            }
            _ => None,
        };
        if let (Some(Channel::Push), Some(token)) = (channel, rejected) {
            self.forget_device_token(rank, token, at_ms);
            return;
        }
        if change.is_none() && !bounce && rejected.is_none() {
            return;
        }
        let email = self
            .record(rank)
            .traits
            .values
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_string);
        let state = self
            .record_mut(rank)
            .journey
            .get_or_insert_with(Box::default);
        if let Some(change) = change {
            state.consent.apply(change, at_ms);
        }
        let undeliverable = match rejected {
            Some(address) => Some(address.to_string()),
            None if bounce => properties["recipient"]
                .as_str()
                .map(str::to_string)
                .or(email),
            None => None,
        };
        if let Some(address) = undeliverable {
            if !state.undeliverable.contains(&address) {
                state.undeliverable.push(address);
            }
        }
        self.touch(rank, Dirty::Extra);
    }

    /// Removes a device token the push provider reported invalid from the profile's `push_token`
    /// and `push_tokens` traits, as of the failure's time.
    fn forget_device_token(&mut self, rank: u32, token: &str, at_ms: i64) {
        let traits = &mut self.record_mut(rank).traits;
        let mut changed = Vec::new();
        if traits.values.get("push_token").and_then(Value::as_str) == Some(token) {
            traits.values.remove("push_token");
            changed.push("push_token");
        }
        if let Some(Value::Array(tokens)) = traits.values.get_mut("push_tokens") {
            let before = tokens.len();
            tokens.retain(|value| value.as_str() != Some(token));
            if tokens.len() != before {
                changed.push("push_tokens");
            }
        }
        if changed.is_empty() {
            return;
        }
        for name in changed {
            let set_at = traits.set_at.entry(name.to_string()).or_insert(at_ms);
            *set_at = (*set_at).max(at_ms);
        }
        self.touch(rank, Dirty::Full);
    }
}

/// The channel an event name's prefix names (`Email`, `SMS`, `Push`, `Webhook`).
fn channel_of_prefix(prefix: &str) -> Option<Channel> {
    [
        Channel::Email,
        Channel::Sms,
        Channel::Push,
        Channel::Webhook,
    ]
    .into_iter()
    .find(|channel| channel.event_prefix() == prefix)
}

/// Default for serde: an empty history.
pub(crate) fn empty_history() -> SendHistory {
    SendHistory::new()
}
