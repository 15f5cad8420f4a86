//! Operator commands on journeys and audiences, and Customer 360 source records and rulesets.
//!
//! Commands travel through the input log like events, so they apply in order with the events around
//! them and a replay of the log rebuilds the registry exactly. The API validates a command before it
//! submits it; applying it can still refuse (a journey archived in between), which the outcome says.

use cairn_delivery::DeliveryPolicy;
use cairn_journey::{AudienceDocument, JourneyDocument};
use cairn_model::{Identifier, ProfileId};
use cairn_template::TemplateDocument;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A change to a workspace's journeys or audiences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Creates a journey or replaces its draft.
    SaveDraft { document: Box<JourneyDocument> },
    /// Publishes the current draft as the next immutable version.
    Publish { journey: String },
    /// Stops entries (and, with the journey's `hold` behaviour, holds customers at their next step).
    Pause { journey: String },
    /// Lifts a pause; held customers continue.
    Resume { journey: String },
    /// Ends every enrollment with `stopped` and takes no more entries.
    Stop { journey: String, reason: String },
    /// Hides a stopped (or never published) journey.
    Archive { journey: String },
    /// Enrolls one profile through the API entry, with optional data (`journey.trigger`).
    Enroll {
        journey: String,
        profile: ProfileRef,
        data: Option<Value>,
    },
    /// Creates or replaces an audience.
    SaveAudience { document: Box<AudienceDocument> },
    /// Replaces the workspace's delivery policy (consent rules, caps, quiet hours, suppressions).
    SetPolicy { policy: Box<WorkspacePolicy> },
    /// Creates a message template or replaces its draft.
    SaveTemplate { document: Box<TemplateDocument> },
    /// Publishes a template's draft as its next version.
    PublishTemplate { template: String },
    /// Adds or replaces a Customer 360 source record (the fields as received: a JSON object).
    UpsertSourceRecord {
        source: String,
        id: String,
        fields: serde_json::Map<String, Value>,
    },
    /// Removes a Customer 360 source record.
    RemoveSourceRecord { source: String, id: String },
    /// Marks two source records as never the same person (an administrator's un-merge).
    UnmergeSourceRecords {
        left: cairn_identity::RecordKey,
        right: cairn_identity::RecordKey,
    },
    /// Replaces the workspace's Customer 360 ruleset (JSON, the `GET /api/v1/identity/rules`
    /// shape, checked by the API before): the stored records are re-resolved under it and the
    /// merges and splits follow onto profiles. `samples`: records shown per merge or split in the
    /// outcome.
    SetIdentityRules {
        ruleset: Value,
        #[serde(default)]
        samples: usize,
    },
}

/// A workspace's delivery policy: the volume-control settings and the suppression rules.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspacePolicy {
    #[serde(default)]
    pub delivery: DeliveryPolicy,
    /// Conditions over the profile and its event history; a message is not sent while one holds
    /// ("not if the customer bought in the last 14 days": `count("Order Completed", 14d) > 0`).
    #[serde(default)]
    pub suppressions: Vec<SuppressionRule>,
}

/// One suppression rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressionRule {
    pub name: String,
    pub condition: String,
    /// The channels it applies to (all when empty).
    #[serde(default)]
    pub channels: Vec<String>,
}

/// How a command names a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileRef {
    Id(ProfileId),
    Identifier(Identifier),
}

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        // A command is plain data: serializing it cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Command, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandOutcome {
    pub ok: bool,
    /// Why it was refused, or what it did.
    pub message: String,
    /// The version a `publish` created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The enrollment an `enroll` created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrollment: Option<u64>,
}

impl CommandOutcome {
    pub fn done(message: impl Into<String>) -> Self {
        CommandOutcome {
            ok: true,
            message: message.into(),
            version: None,
            enrollment: None,
        }
    }

    pub fn refused(message: impl Into<String>) -> Self {
        CommandOutcome {
            ok: false,
            message: message.into(),
            version: None,
            enrollment: None,
        }
    }
}
