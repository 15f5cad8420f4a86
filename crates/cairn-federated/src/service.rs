//! Fetching with cache, timeout and failure policy; writing back with an audit record.

use crate::cache::{AttributeCache, CachedValues};
use crate::clock::Clock;
use crate::config::{AttributeConfig, FailurePolicy, FederatedConfig};
use crate::connector::Connector;
use crate::{AttributeValues, FederatedError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Where fetched values came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "origin", rename_all = "snake_case")]
pub enum FetchOrigin {
    /// Fetched from the source system now.
    Live,
    /// From the cache, within the TTL.
    Cache,
    /// From an expired cache entry, because the source failed.
    Stale { error: String },
    /// The declared default, because the source failed.
    Default { error: String },
}

/// The values of an attribute set for one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fetched {
    pub attribute: String,
    pub source: String,
    pub source_id: String,
    /// `None` if the source system has no such record.
    pub values: Option<AttributeValues>,
    #[serde(flatten)]
    pub origin: FetchOrigin,
    /// When the values were read from the source system.
    pub fetched_at: DateTime<Utc>,
}

/// The outcome of a write-back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WriteOutcome {
    Applied { rows: u64 },
    Failed { error: String },
}

/// What a write-back did, for the caller to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub attribute: String,
    pub source: String,
    pub source_id: String,
    pub field: String,
    /// The value Cairn had cached before the write (if any).
    pub previous_value: Option<Value>,
    pub new_value: Value,
    /// Who asked (a user, `journey:ID/step:ID`, …).
    pub actor: String,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub outcome: WriteOutcome,
}

struct Attribute {
    config: AttributeConfig,
    connector: Connector,
}

/// The federated attribute sets of a workspace.
pub struct FederatedAttributes {
    attributes: BTreeMap<String, Attribute>,
    cache: AttributeCache,
    clock: Arc<dyn Clock>,
}

impl FederatedAttributes {
    pub fn new(
        config: FederatedConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<FederatedAttributes, FederatedError> {
        let mut attributes = BTreeMap::new();
        for attribute in config.attributes {
            let connector =
                Connector::new(&attribute.connector).map_err(|message| FederatedError::Config {
                    origin: attribute.name.clone(),
                    line: 1,
                    column: 1,
                    message,
                })?;
            attributes.insert(
                attribute.name.clone(),
                Attribute {
                    config: attribute,
                    connector,
                },
            );
        }
        Ok(FederatedAttributes {
            attributes,
            cache: AttributeCache::default(),
            clock,
        })
    }

    fn attribute(&self, name: &str) -> Result<&Attribute, FederatedError> {
        self.attributes
            .get(name)
            .ok_or_else(|| FederatedError::UnknownAttribute(name.to_string()))
    }

    /// The declared attribute sets.
    pub fn names(&self) -> Vec<&str> {
        self.attributes.keys().map(String::as_str).collect()
    }

    /// The declared attribute sets whose connector takes record ids of `source`.
    pub fn names_for_source(&self, source: &str) -> Vec<&str> {
        self.attributes
            .values()
            .filter(|entry| entry.config.source == source)
            .map(|entry| entry.config.name.as_str())
            .collect()
    }

    /// The source of attribute set `name`.
    pub fn source_of(&self, name: &str) -> Option<&str> {
        self.attributes
            .get(name)
            .map(|entry| entry.config.source.as_str())
    }

    /// The declared attribute sets that can be written back to their source system.
    pub fn writable_names(&self) -> BTreeSet<String> {
        self.attributes
            .values()
            .filter(|entry| entry.connector.can_write())
            .map(|entry| entry.config.name.clone())
            .collect()
    }

    /// The record id that parameterizes attribute set `name` for a profile, among its source
    /// records `(source, id)`: the first record of the set's source.
    pub fn record_for<'r>(&self, name: &str, records: &'r [(String, String)]) -> Option<&'r str> {
        let source = self.source_of(name)?;
        records
            .iter()
            .find(|(record_source, _)| record_source == source)
            .map(|(_, id)| id.as_str())
    }

    /// Fetches the named sets for one profile (each through [`FederatedAttributes::fetch`], all at
    /// once): `name → values`, `null` when the profile has no record of the set's source or the
    /// source has no row for it. The first set that fails under its policy is the error.
    pub async fn fetch_for_profile(
        &self,
        names: &[&str],
        records: &[(String, String)],
    ) -> Result<BTreeMap<String, Value>, FederatedError> {
        let fetches = names.iter().map(|name| async move {
            let values = match self.record_for(name, records) {
                Some(id) => self.fetch(name, id).await?.values,
                None => None,
            };
            let value = values.map_or(Value::Null, |values| {
                Value::Object(values.into_iter().collect())
            });
            Ok::<_, FederatedError>((name.to_string(), value))
        });
        let mut sets = BTreeMap::new();
        for fetched in futures::future::join_all(fetches).await {
            let (name, value) = fetched?;
            sets.insert(name, value);
        }
        Ok(sets)
    }

    /// How many records have cached values (fresh or stale).
    pub fn cached_entries(&self) -> usize {
        self.cache.len()
    }

    /// Fetches an attribute set for a record: from the cache within the TTL, else from the source
    /// system within the timeout, else by the failure policy.
    pub async fn fetch(&self, attribute: &str, source_id: &str) -> Result<Fetched, FederatedError> {
        let entry = self.attribute(attribute)?;
        let now = self.clock.now();
        let cached = self.cache.get(attribute, source_id);
        let fetched = |values: Option<AttributeValues>, origin: FetchOrigin, fetched_at| Fetched {
            attribute: attribute.to_string(),
            source: entry.config.source.clone(),
            source_id: source_id.to_string(),
            values,
            origin,
            fetched_at,
        };
        let ttl = chrono::Duration::seconds(
            i64::try_from(entry.config.cache_ttl_seconds).unwrap_or(i64::MAX / 2_000),
        );
        if let Some(hit) = &cached {
            if now < hit.fetched_at + ttl {
                return Ok(fetched(
                    hit.values.clone(),
                    FetchOrigin::Cache,
                    hit.fetched_at,
                ));
            }
        }
        match self
            .call(entry, |connector| connector.fetch(source_id))
            .await
        {
            Ok(values) => {
                self.cache.put(
                    attribute,
                    source_id,
                    CachedValues {
                        values: values.clone(),
                        fetched_at: now,
                    },
                );
                Ok(fetched(values, FetchOrigin::Live, now))
            }
            Err(error) => match &entry.config.on_failure {
                FailurePolicy::Fail => Err(error),
                FailurePolicy::UseStale => match cached {
                    Some(stale) => Ok(fetched(
                        stale.values,
                        FetchOrigin::Stale {
                            error: error.to_string(),
                        },
                        stale.fetched_at,
                    )),
                    None => Err(error),
                },
                FailurePolicy::UseDefault(values) => Ok(fetched(
                    Some(values.clone()),
                    FetchOrigin::Default {
                        error: error.to_string(),
                    },
                    now,
                )),
            },
        }
    }

    /// Writes one field back to the source system and returns the audit record; the cached
    /// values of the record are dropped so the next fetch reads the new value.
    pub async fn write_back(
        &self,
        attribute: &str,
        source_id: &str,
        field: &str,
        value: Value,
        actor: &str,
    ) -> Result<AuditRecord, FederatedError> {
        let entry = self.attribute(attribute)?;
        if !entry.connector.can_write() {
            return Err(FederatedError::WriteBackUnsupported {
                attribute: attribute.to_string(),
                message: "no write-back is declared".to_string(),
            });
        }
        let previous_value = self
            .cache
            .get(attribute, source_id)
            .and_then(|cached| cached.values)
            .and_then(|values| values.get(field).cloned());
        let result = self
            .call(entry, |connector| connector.write(source_id, field, &value))
            .await;
        let mut audit = AuditRecord {
            attribute: attribute.to_string(),
            source: entry.config.source.clone(),
            source_id: source_id.to_string(),
            field: field.to_string(),
            previous_value,
            new_value: value,
            actor: actor.to_string(),
            at: self.clock.now(),
            outcome: WriteOutcome::Applied { rows: 0 },
        };
        self.cache.invalidate(attribute, source_id);
        match result {
            Ok(rows) => {
                audit.outcome = WriteOutcome::Applied { rows };
                Ok(audit)
            }
            Err(error) => {
                audit.outcome = WriteOutcome::Failed {
                    error: error.to_string(),
                };
                Err(FederatedError::WriteBack {
                    message: error.to_string(),
                    audit: Box::new(audit),
                })
            }
        }
    }

    /// Runs a connector call within the attribute's timeout.
    async fn call<'a, T, F, Fut>(
        &'a self,
        entry: &'a Attribute,
        operation: F,
    ) -> Result<T, FederatedError>
    where
        F: FnOnce(&'a Connector) -> Fut,
        Fut: std::future::Future<Output = Result<T, String>> + 'a,
    {
        let timeout = Duration::from_millis(entry.config.timeout_ms);
        match tokio::time::timeout(timeout, operation(&entry.connector)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => {
                entry.connector.reset().await;
                Err(FederatedError::Source {
                    attribute: entry.config.name.clone(),
                    message,
                })
            }
            Err(_) => {
                entry.connector.reset().await;
                Err(FederatedError::Timeout {
                    attribute: entry.config.name.clone(),
                    timeout_ms: entry.config.timeout_ms,
                })
            }
        }
    }
}
