//! Profiles and their traits.

use crate::{Identifier, ProfileId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A profile's traits with, per top-level field, the timestamp of the event that set it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraitSet {
    pub values: Map<String, Value>,
    /// Milliseconds since the epoch of the event that last set each field.
    pub set_at: BTreeMap<String, i64>,
}

/// A unified profile as the management API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub id: ProfileId,
    pub workspace: String,
    pub partition: u16,
    pub identifiers: Vec<Identifier>,
    pub traits: Map<String, Value>,
    /// Per trait, when (event time) it was last set.
    pub trait_timestamps: BTreeMap<String, DateTime<Utc>>,
    /// Ids of profiles that were merged into this one; their events belong to this profile's timeline.
    pub merged_ids: Vec<ProfileId>,
    pub event_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
