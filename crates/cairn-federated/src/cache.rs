//! The in-memory cache of fetched values (never persisted): entries expire after the attribute's
//! TTL but are kept so a "use stale" failure policy can still answer.

use crate::AttributeValues;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use std::collections::HashMap;

/// A cached answer.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedValues {
    pub values: Option<AttributeValues>,
    pub fetched_at: DateTime<Utc>,
}

/// Cache keyed by (attribute set, source record id).
#[derive(Debug, Default)]
pub struct AttributeCache {
    entries: Mutex<HashMap<(String, String), CachedValues>>,
}

impl AttributeCache {
    /// The entry, fresh or not.
    pub fn get(&self, attribute: &str, source_id: &str) -> Option<CachedValues> {
        self.entries
            .lock()
            .get(&(attribute.to_string(), source_id.to_string()))
            .cloned()
    }

    pub fn put(&self, attribute: &str, source_id: &str, entry: CachedValues) {
        self.entries
            .lock()
            .insert((attribute.to_string(), source_id.to_string()), entry);
    }

    pub fn invalidate(&self, attribute: &str, source_id: &str) {
        self.entries
            .lock()
            .remove(&(attribute.to_string(), source_id.to_string()));
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
