//! Federated attributes at send time: the attribute sets a message's template reads
//! (`federated.loyalty.points`), fetched for the profile's source records through
//! `cairn-federated` — its cache, timeout and failure policy — just before the message is composed.
//! A fetch that fails under the policy is a transient failure of the message (it is retried), never
//! an empty value.

use crate::compose::ComposeError;
use cairn_federated::FederatedAttributes;
use cairn_model::{ErrorCode, WorkspaceId};
use cairn_template::CompiledTemplate;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Each workspace's federated attribute sets.
pub type FederatedByWorkspace = BTreeMap<WorkspaceId, Arc<FederatedAttributes>>;

/// The `federated` value a template renders with: the sets it reads, fetched for the profile's
/// source records `(source, id)`; `None` when it reads none.
pub async fn values_for_template(
    attributes: Option<&FederatedAttributes>,
    template: &CompiledTemplate,
    records: &[(String, String)],
) -> Result<Option<Value>, ComposeError> {
    let reads = template.federated_reads();
    if !reads.any() {
        return Ok(None);
    }
    let Some(attributes) = attributes else {
        return Ok(Some(Value::Object(Map::new())));
    };
    let names: Vec<&str> = attributes
        .names()
        .into_iter()
        .filter(|name| reads.reads(name))
        .collect();
    let sets = attributes
        .fetch_for_profile(&names, records)
        .await
        .map_err(|error| ComposeError::Federated {
            code: ErrorCode::from_name(error.error_code_name())
                .unwrap_or(ErrorCode::FederatedSourceFailed),
            message: error.to_string(),
        })?;
    Ok(Some(Value::Object(sets.into_iter().collect())))
}
