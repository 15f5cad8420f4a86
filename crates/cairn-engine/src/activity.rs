//! The activity feed's facts: journey entries, exits, goals reached and messages sent, derived
//! by the applier from journey effects and delivery feedback, for other systems (sales, service).
//!
//! An item is kept as an outbox row on the internal channel [`ACTIVITY_CHANNEL`], committed with the
//! input that produced it, so it is as durable as a message and re-derived identically by a replay
//! (its id names the fact: the enrollment and what happened, or the message). The dispatcher posts
//! each row to every subscription that wants it. Items are derived only for the kinds and workspaces
//! some subscription asks for ([`ActivityWants`]), so an unsubscribed feed costs nothing.

use cairn_journey::effects::{Effects, EndDetail};
use cairn_journey::enrollment::EndReason;
use cairn_journey::orchestrate::JourneySet;
use cairn_model::WorkspaceId;
use cairn_storage::OutboxRow;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The outbox channel of activity items (never a customer-facing channel).
pub const ACTIVITY_CHANNEL: &str = "activity";

/// What happened to a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    JourneyEntered,
    JourneyExited,
    GoalReached,
    MessageSent,
}

impl ActivityKind {
    /// Every kind, in payload order.
    pub const ALL: [ActivityKind; 4] = [
        ActivityKind::JourneyEntered,
        ActivityKind::JourneyExited,
        ActivityKind::GoalReached,
        ActivityKind::MessageSent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::JourneyEntered => "journey_entered",
            ActivityKind::JourneyExited => "journey_exited",
            ActivityKind::GoalReached => "goal_reached",
            ActivityKind::MessageSent => "message_sent",
        }
    }

    /// The suffix of an item id (`<enrollment or message>.<suffix>`).
    fn id_suffix(self) -> &'static str {
        match self {
            ActivityKind::JourneyEntered => "entered",
            ActivityKind::JourneyExited => "exited",
            ActivityKind::GoalReached => "goal",
            ActivityKind::MessageSent => "sent",
        }
    }
}

/// One activity item, exactly as it is posted (absent fields are `null`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityItem {
    /// Deterministic: the same fact always has the same id (the idempotency key).
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ActivityKind,
    pub workspace: String,
    pub profile_id: String,
    pub journey_id: Option<String>,
    /// The step where it happened (entries, exits, goals).
    pub step: Option<String>,
    /// Why a journey was left (`journey_exited`: `completed`, `goal_reached`, `exit_criterion`,
    /// `stopped`, `merged`, `error`).
    pub reason: Option<String>,
    /// Which goal or exit criterion (its id), or the reason given to stop.
    pub detail: Option<String>,
    /// The message (`message_sent`).
    pub message_id: Option<String>,
    /// The message's channel (`message_sent`).
    pub channel: Option<String>,
    /// When it happened: RFC 3339, UTC, milliseconds.
    pub at: String,
}

/// Which items anyone subscribed to: the union of the subscriptions' kinds per workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityWants {
    /// (kinds, workspaces; `None`: every workspace), one per subscription.
    subscriptions: Vec<(BTreeSet<ActivityKind>, Option<BTreeSet<String>>)>,
}

impl ActivityWants {
    /// Adds one subscription's interest.
    pub fn add(
        &mut self,
        kinds: impl IntoIterator<Item = ActivityKind>,
        workspaces: Option<impl IntoIterator<Item = String>>,
    ) {
        self.subscriptions.push((
            kinds.into_iter().collect(),
            workspaces.map(|names| names.into_iter().collect()),
        ));
    }

    /// Whether nobody subscribed to anything.
    pub fn is_empty(&self) -> bool {
        self.subscriptions.is_empty()
    }

    /// Whether some subscription wants `kind` in `workspace`.
    pub fn wants(&self, kind: ActivityKind, workspace: &str) -> bool {
        self.subscriptions.iter().any(|(kinds, workspaces)| {
            kinds.contains(&kind)
                && workspaces
                    .as_ref()
                    .is_none_or(|names| names.contains(workspace))
        })
    }
}

/// Who and where an input's items are about.
pub(crate) struct Subject<'a> {
    pub workspace: &'a WorkspaceId,
    pub profile_id: &'a str,
}

impl Subject<'_> {
    fn item(&self, kind: ActivityKind, fact: &str, at_ms: i64) -> ActivityItem {
        ActivityItem {
            id: format!("{fact}.{}", kind.id_suffix()),
            kind,
            workspace: self.workspace.to_string(),
            profile_id: self.profile_id.to_string(),
            journey_id: None,
            step: None,
            reason: None,
            detail: None,
            message_id: None,
            channel: None,
            at: rfc3339_ms(at_ms),
        }
    }
}

/// The entries, exits and goals in one input's journey effects that someone wants.
pub(crate) fn of_effects(
    wants: &ActivityWants,
    subject: &Subject<'_>,
    journeys: &JourneySet,
    effects: &Effects,
) -> Vec<ActivityItem> {
    let workspace = subject.workspace.as_str();
    let mut items = Vec::new();
    if wants.wants(ActivityKind::JourneyEntered, workspace) {
        for entered in &effects.entered {
            let Some(live) = journeys.get(entered.journey) else {
                continue;
            };
            let mut item = subject.item(
                ActivityKind::JourneyEntered,
                &enrollment_fact(entered.enrollment.0),
                entered.at_ms,
            );
            item.journey_id = Some(live.journey.id.to_string());
            item.step = live
                .journey
                .steps
                .get(live.journey.start.get())
                .map(|step| step.id.to_string());
            items.push(item);
        }
    }
    for ended in &effects.ended {
        let Some(live) = journeys.get(ended.journey) else {
            continue;
        };
        let journey = &live.journey;
        let step = journey
            .steps
            .get(ended.step.get())
            .map(|step| step.id.to_string());
        let detail = match &ended.detail {
            EndDetail::Goal(index) => journey
                .goals
                .get(usize::from(*index))
                .map(|goal| goal.id.to_string()),
            EndDetail::ExitCriterion(index) => journey
                .exits
                .get(usize::from(*index))
                .map(|exit| exit.id.to_string()),
            EndDetail::Stopped(reason) => Some(reason.to_string()),
            EndDetail::MergedInto(enrollment) => Some(enrollment_fact(enrollment.0)),
            EndDetail::Error(what) => Some((*what).to_string()),
            EndDetail::None => None,
        };
        let kinds = [
            (ended.reason == EndReason::GoalReached).then_some(ActivityKind::GoalReached),
            Some(ActivityKind::JourneyExited),
        ];
        for kind in kinds.into_iter().flatten() {
            if !wants.wants(kind, workspace) {
                continue;
            }
            let mut item = subject.item(kind, &enrollment_fact(ended.enrollment.0), ended.at_ms);
            item.journey_id = Some(journey.id.to_string());
            item.step = step.clone();
            item.reason = Some(ended.reason.as_str().to_string());
            item.detail = detail.clone();
            items.push(item);
        }
    }
    items
}

/// A message a provider accepted (`Email Sent`, `SMS Sent`, `Push Sent`, `Webhook Responded`
/// with `ok`), if someone wants it: `properties` is the feedback event's.
pub(crate) fn of_delivery(
    wants: &ActivityWants,
    subject: &Subject<'_>,
    event_name: &str,
    properties: &serde_json::Value,
    at_ms: i64,
) -> Option<ActivityItem> {
    if !wants.wants(ActivityKind::MessageSent, subject.workspace.as_str()) {
        return None;
    }
    if !is_acceptance(event_name)
        || (event_name == crate::WEBHOOK_RESPONDED && properties["ok"] != true)
    {
        return None;
    }
    let message_id = properties["message_id"].as_str()?;
    let mut item = subject.item(ActivityKind::MessageSent, message_id, at_ms);
    item.message_id = Some(message_id.to_string());
    item.journey_id = properties["journey"].as_str().map(str::to_string);
    item.channel = properties["channel"].as_str().map(str::to_string);
    Some(item)
}

/// Whether an event name can say a provider accepted a message (`Email Sent`, `Webhook Responded`).
pub(crate) fn is_acceptance(event_name: &str) -> bool {
    event_name.ends_with(" Sent") || event_name == crate::WEBHOOK_RESPONDED
}

/// The outbox row that carries `item` to the dispatcher (always `ready`: no volume control).
pub(crate) fn outbox_row(
    item: &ActivityItem,
    workspace: &WorkspaceId,
    profile_rank: u32,
    at_ms: i64,
) -> OutboxRow {
    OutboxRow {
        message_id: item.id.clone(),
        workspace: workspace.clone(),
        profile_rank,
        journey_id: item.journey_id.clone().unwrap_or_default(),
        channel: ACTIVITY_CHANNEL.to_string(),
        at_ms,
        status: "ready".to_string(),
        body: serde_json::to_string(item).unwrap_or_default(),
    }
}

fn enrollment_fact(enrollment: u64) -> String {
    format!("enr-{enrollment:016x}")
}

fn rfc3339_ms(at_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wants_sent_in(workspace: &str) -> ActivityWants {
        let mut wants = ActivityWants::default();
        wants.add([ActivityKind::MessageSent], Some([workspace.to_string()]));
        wants
    }

    #[test]
    fn only_wanted_kinds_in_wanted_workspaces_are_derived() {
        let mut wants = wants_sent_in("a");
        assert!(wants.wants(ActivityKind::MessageSent, "a"));
        assert!(!wants.wants(ActivityKind::MessageSent, "b"));
        assert!(!wants.wants(ActivityKind::GoalReached, "a"));
        wants.add([ActivityKind::GoalReached], None::<Vec<String>>);
        assert!(wants.wants(ActivityKind::GoalReached, "b"));
        assert!(ActivityWants::default().is_empty());
    }

    #[test]
    fn a_provider_acceptance_is_one_message_sent_item_with_a_deterministic_id() {
        let wants = wants_sent_in("a");
        let workspace = WorkspaceId::new("a");
        let subject = Subject {
            workspace: &workspace,
            profile_id: "prof_1",
        };
        let properties = json!({"message_id": "m1", "channel": "email", "journey": "welcome"});
        let item = of_delivery(&wants, &subject, "Email Sent", &properties, 1_000).expect("item");
        assert_eq!(item.id, "m1.sent");
        assert_eq!(item.kind, ActivityKind::MessageSent);
        assert_eq!(item.channel.as_deref(), Some("email"));
        assert_eq!(item.journey_id.as_deref(), Some("welcome"));
        assert_eq!(item.at, "1970-01-01T00:00:01.000Z");
        let failed_hook = json!({"message_id": "m2", "channel": "webhook", "ok": false});
        assert!(of_delivery(&wants, &subject, crate::WEBHOOK_RESPONDED, &failed_hook, 0).is_none());
        let answered = json!({"message_id": "m2", "channel": "webhook", "ok": true});
        assert!(of_delivery(&wants, &subject, crate::WEBHOOK_RESPONDED, &answered, 0).is_some());
        assert!(of_delivery(&wants, &subject, "Email Opened", &properties, 0).is_none());
        let elsewhere = WorkspaceId::new("b");
        let other = Subject {
            workspace: &elsewhere,
            profile_id: "prof_1",
        };
        assert!(of_delivery(&wants, &other, "Email Sent", &properties, 0).is_none());
    }
}
