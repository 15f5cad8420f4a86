//! Customer 360 in the management API: source records written through the input log, the unified
//! profile view (`/360`), lookups from a source record to its profile, and explanations.
//!
//! - `PUT /api/v1/sources/{source}/records/{id}` upserts a record (a JSON object of the source's raw
//!   fields, the ones its mapping reads); `DELETE` removes it. Both are log commands: checked here
//!   against the workspace's identity configuration (nothing is stored when the check fails), then
//!   applied in order with the events around them.
//! - `GET /api/v1/sources/{source}/records/{id}/profile`: the record's unified id and profile.
//! - `GET /api/v1/profiles/{id}/360`: identifiers, source records as received, reconciled attributes
//!   with provenance, federated attributes fetched on demand (cache, timeout, failure policy), the
//!   profile's traits, recent events and messages, journeys and audiences, consents.
//! - `GET /api/v1/identity/explain?a=source:id&b=source:id`: why two records are one person.
//! - `POST /api/v1/identity/unmerge` `{"a": "source:id", "b": "source:id"}`: never the same person
//!   (through the log; the resolver splits the cluster and the engine the profile).
//! - `GET /api/v1/identity/rules`: the workspace's active ruleset; `PUT` (TOML or JSON, like the
//!   preview) applies a new one through the log: the records are re-resolved under it and the
//!   merges and splits follow onto profiles; the answer is the preview's summary with the engine's
//!   counts.
//! - `GET /api/v1/identity/rules/progress`: how far the latest re-resolution of the workspace's
//!   records (a rule change, or the rebuild at start under a changed file) has come — phase,
//!   records done of total, start time. Answered while it runs: it neither waits for the applier
//!   nor takes the state's lock.
//! - `POST /api/v1/identity/rules/preview?samples=N`: a dry run of a rule change — the proposed
//!   ruleset (TOML or JSON) re-resolves a copy of the workspace's records in their original order;
//!   the answer lists the profiles that would merge or split, with sample records, and the records
//!   the new rules could not map. Nothing is applied.

use crate::body::read_json;
use crate::commands;
use crate::error::ApiError;
use crate::management::{load, read};
use crate::profile_journeys::message_view;
use crate::ApiState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, put};
use axum::{Json, Router};
use cairn_engine::customer360::{parse_record_ref, SourceError};
use cairn_engine::journeys::Command;
use cairn_federated::FederatedAttributes;
use cairn_identity::RecordKey;
use cairn_model::{ErrorCode, WorkspaceId};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Recent events and messages shown in the 360 view.
const RECENT: usize = 20;

/// Each workspace's federated attribute sets (shared with the dispatcher).
pub use cairn_dispatch::federated::FederatedByWorkspace;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route(
            "/api/v1/sources/{source}/records/{id}",
            put(upsert_record).delete(remove_record),
        )
        .route(
            "/api/v1/sources/{source}/records/{id}/profile",
            get(record_profile),
        )
        .route("/api/v1/profiles/{id}/360", get(profile_360))
        .route("/api/v1/identity/explain", get(explain))
        .route("/api/v1/identity/unmerge", axum::routing::post(unmerge))
        .route("/api/v1/identity/rules", get(rules).put(set_rules))
        .route(
            "/api/v1/identity/rules/preview",
            axum::routing::post(preview_rules),
        )
        .route("/api/v1/identity/rules/progress", get(rules_progress))
}

fn source_error(error: SourceError) -> ApiError {
    ApiError::new(error.code(), error.to_string())
}

async fn upsert_record(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((source, id)): Path<(String, String)>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let body: Value = read_json(&headers, body).await?;
    let Value::Object(fields) = body else {
        return Err(ApiError::new(
            ErrorCode::InvalidRecord,
            "a source record is a JSON object of the source's fields",
        ));
    };
    {
        let (workspace, source, id, fields) = (
            workspace.clone(),
            source.clone(),
            id.clone(),
            fields.clone(),
        );
        read(&state, move |reader| {
            Ok(reader.check_source_record(&workspace, &source, &id, &fields))
        })
        .await?
        .map_err(source_error)?;
    }
    let command = Command::UpsertSourceRecord {
        source: source.clone(),
        id: id.clone(),
        fields,
    };
    let outcome = commands::run(&state, workspace.clone(), command).await?;
    if !outcome.ok {
        return Err(ApiError::new(ErrorCode::InvalidRecord, outcome.message));
    }
    let applied: Value = serde_json::from_str(&outcome.message).unwrap_or(Value::Null);
    let placement = placement(&state, workspace, RecordKey::new(source, id)).await?;
    Ok(Json(json!({
        "source": placement.source,
        "id": placement.id,
        "unified_id": placement.unified_id,
        "profile_id": placement.profile_id,
        "merged": applied["merged"],
    })))
}

async fn remove_record(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((source, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let key = RecordKey::new(source.clone(), id.clone());
    placement(&state, workspace.clone(), key).await?;
    let command = Command::RemoveSourceRecord {
        source: source.clone(),
        id: id.clone(),
    };
    let outcome = commands::run(&state, workspace, command).await?;
    if !outcome.ok {
        return Err(ApiError::new(ErrorCode::RecordNotFound, outcome.message));
    }
    Ok(Json(json!({"source": source, "id": id, "removed": true})))
}

async fn placement(
    state: &ApiState,
    workspace: WorkspaceId,
    key: RecordKey,
) -> Result<cairn_engine::customer360::RecordPlacement, ApiError> {
    read(state, move |reader| {
        Ok(reader.source_record_placement(&workspace, &key))
    })
    .await?
    .map_err(source_error)
}

async fn record_profile(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((source, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let placement = placement(&state, workspace, RecordKey::new(source, id)).await?;
    Ok(Json(json!(placement)))
}

async fn profile_360(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let profile = load(&state, workspace.clone(), id).await?;
    let (identity, journeys, consent, events, messages) = {
        let (workspace, id) = (workspace.clone(), profile.id);
        read(&state, move |reader| {
            Ok((
                reader.profile_identity(&workspace, &id),
                reader.profile_journeys(&workspace, &id),
                reader.consent(&workspace, &id),
                reader.events(&workspace, &id, None, RECENT)?,
                reader.messages(&workspace, &id, RECENT)?,
            ))
        })
        .await?
    };
    let identity = identity.unwrap_or_default();
    let federated = match state.federated.get(&workspace) {
        Some(attributes) => federated_of(attributes, &identity.records).await,
        None => Vec::new(),
    };
    let consents = json!({
        "engine": consent,
        "sources": identity
            .reconciled
            .fields
            .iter()
            .filter(|(field, _)| field.starts_with("consent."))
            .map(|(field, value)| (field.trim_start_matches("consent.").to_string(), json!(value)))
            .collect::<serde_json::Map<String, Value>>(),
    });
    Ok(Json(json!({
        "profile_id": profile.id,
        "identity_configured": identity.configured,
        "identifiers": profile.identifiers,
        "merged_ids": profile.merged_ids,
        "unified_ids": identity.unified_ids,
        "source_records": identity.records.iter().map(|record| json!({
            "source": record.source,
            "id": record.id,
            "unified_id": record.unified_id,
            "fields": record.fields,
            "canonical": record.canonical,
            "received_at": crate::views::time(record.received_at_ms),
        })).collect::<Vec<_>>(),
        "reconciled": identity.reconciled,
        "federated": federated,
        "traits": profile.traits,
        "consents": consents,
        "events": events.unwrap_or_default(),
        "messages": messages.unwrap_or_default().into_iter().map(message_view).collect::<Vec<_>>(),
        "journeys": journeys.unwrap_or(Value::Null),
        "event_count": profile.event_count,
        "created_at": profile.created_at,
        "updated_at": profile.updated_at,
    })))
}

/// Every federated attribute set of every source record, fetched concurrently (each within its
/// own timeout and failure policy); a failure is shown with its code beside the others rather than
/// failing the view.
async fn federated_of(
    attributes: &Arc<FederatedAttributes>,
    records: &[cairn_engine::customer360::SourceRecordView],
) -> Vec<Value> {
    let mut fetches = tokio::task::JoinSet::new();
    let mut position = 0;
    for record in records {
        for name in attributes.names_for_source(&record.source) {
            let (name, source, id) = (name.to_string(), record.source.clone(), record.id.clone());
            let attributes = attributes.clone();
            fetches.spawn(async move {
                let value = match attributes.fetch(&name, &id).await {
                    Ok(fetched) => json!(fetched),
                    Err(error) => json!({
                        "attribute": name,
                        "source": source,
                        "source_id": id,
                        "error": {"code": error.error_code_name(), "message": error.to_string()},
                    }),
                };
                (position, value)
            });
            position += 1;
        }
    }
    let mut results: Vec<(usize, Value)> = fetches.join_all().await;
    results.sort_by_key(|(position, _)| *position);
    results.into_iter().map(|(_, value)| value).collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainQuery {
    a: String,
    b: String,
}

async fn explain(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<ExplainQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let query = crate::paging::query(query)?;
    let parse = |text: &str| {
        parse_record_ref(text).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidQuery,
                format!("`{text}` is not `source:id`"),
            )
        })
    };
    let (left, right) = (parse(&query.a)?, parse(&query.b)?);
    let explanation = read(&state, move |reader| {
        Ok(reader.explain_records(&workspace, &left, &right))
    })
    .await?
    .map_err(source_error)?;
    Ok(Json(json!(explanation)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnmergeRequest {
    a: String,
    b: String,
}

async fn unmerge(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let request: UnmergeRequest = read_json(&headers, body).await?;
    let parse = |text: &str| {
        parse_record_ref(text).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidBody,
                format!("`{text}` is not `source:id`"),
            )
        })
    };
    let (left, right) = (parse(&request.a)?, parse(&request.b)?);
    for key in [&left, &right] {
        placement(&state, workspace.clone(), key.clone()).await?;
    }
    let command = Command::UnmergeSourceRecords {
        left: left.clone(),
        right: right.clone(),
    };
    let outcome = commands::run(&state, workspace, command).await?;
    if !outcome.ok {
        return Err(ApiError::new(ErrorCode::RecordNotFound, outcome.message));
    }
    let applied: Value = serde_json::from_str(&outcome.message).unwrap_or(Value::Null);
    Ok(Json(json!({
        "a": request.a,
        "b": request.b,
        "never_match": true,
        "split": applied["split"],
        "profiles": applied["profiles"],
    })))
}

async fn rules(State(state): State<ApiState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let rules = read(&state, move |reader| Ok(reader.identity_rules(&workspace)))
        .await?
        .map_err(source_error)?;
    Ok(Json(rules))
}

/// How far the latest re-resolution has come: read from the engine's figure at once (no read
/// barrier, which would wait for the re-resolution itself, and no lock of the state).
async fn rules_progress(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let progress = state
        .reader
        .identity_rules_progress(&workspace)
        .map_err(source_error)?;
    Ok(Json(json!({
        "run": progress.run,
        "cause": progress.cause,
        "phase": progress.phase,
        "records_done": progress.records_done,
        "records_total": progress.records_total,
        "started_at": progress.started_at_ms.map_or(Value::Null, crate::views::time),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewQuery {
    /// Sample records shown per merge or split.
    #[serde(default = "default_samples")]
    samples: usize,
}

fn default_samples() -> usize {
    5
}

/// Most sample records per merge or split.
const MAX_SAMPLES: usize = 100;

/// The `samples` query of the preview and of a rule change, checked.
fn samples(
    query: Result<Query<PreviewQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<usize, ApiError> {
    let query = crate::paging::query(query)?;
    if query.samples > MAX_SAMPLES {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("`samples` is at most {MAX_SAMPLES}"),
        ));
    }
    Ok(query.samples)
}

/// Reads a proposed ruleset (`application/toml`, or `application/json` in the `GET …/rules`
/// shape) and checks it: the ruleset as JSON (what a rule change carries through the log) and
/// compiled from that JSON, as the applier compiles it. A bad ruleset is `invalid_config` with
/// its line and column.
async fn read_proposed(
    headers: &HeaderMap,
    body: Body,
) -> Result<(Value, Arc<cairn_identity::compiled::CompiledRuleset>), ApiError> {
    let (text, format) = crate::body::read_ruleset(headers, body).await?;
    let identity_error = |error: cairn_identity::IdentityError| {
        let code =
            ErrorCode::from_name(error.error_code_name()).unwrap_or(ErrorCode::InvalidConfig);
        ApiError::new(code, error.to_string())
    };
    let ruleset = cairn_identity::Ruleset::parse(&text, format, "the proposed ruleset")
        .map_err(identity_error)?;
    let json = serde_json::to_value(&ruleset).map_err(|error| {
        ApiError::new(ErrorCode::InvalidConfig, format!("the ruleset: {error}"))
    })?;
    let compiled = cairn_identity::Ruleset::parse(
        &json.to_string(),
        cairn_identity::DocumentFormat::Json,
        "the proposed ruleset",
    )
    .and_then(cairn_identity::compiled::CompiledRuleset::new)
    .map_err(identity_error)?;
    Ok((json, Arc::new(compiled)))
}

async fn preview_rules(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<PreviewQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let samples = samples(query)?;
    let (_, proposed) = read_proposed(&headers, body).await?;
    let preview = read(&state, move |reader| {
        Ok(reader.preview_identity_rules(&workspace, proposed, samples))
    })
    .await?
    .map_err(source_error)?;
    Ok(Json(json!(preview)))
}

/// Applies a rule change: checked here (nothing is written when it is bad), then a log command, so
/// it is durable and replayed; applying re-resolves the workspace's records under the new rules
/// and follows the merges and splits onto profiles. Answers the preview's summary of what changed
/// with the engine's counts (`profiles_created`, `profiles_merged`).
async fn set_rules(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<PreviewQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let samples = samples(query)?;
    let (ruleset, _) = read_proposed(&headers, body).await?;
    {
        let workspace = workspace.clone();
        read(&state, move |reader| Ok(reader.identity_rules(&workspace)))
            .await?
            .map_err(source_error)?;
    }
    let command = Command::SetIdentityRules { ruleset, samples };
    let outcome = commands::run(&state, workspace, command).await?;
    if !outcome.ok {
        return Err(ApiError::new(ErrorCode::InvalidConfig, outcome.message));
    }
    let summary: Value = serde_json::from_str(&outcome.message).unwrap_or(Value::Null);
    Ok(Json(summary))
}
