//! Journeys in the management API: drafts, validation, the lifecycle (publish, pause, resume, stop,
//! archive), versions, per-step statistics, enrollment by API, test mode, and the workspace catalog
//! that validation checks names against.
//!
//! Handlers parse, ask the engine and map its answers: a lifecycle change is a command through the
//! input log; the engine refuses a transition the journey's status does not allow, which is answered
//! `409 journey_conflict` and changed nothing. A draft may be incomplete (it is stored with its
//! validation errors listed); publishing refuses a draft that does not validate against the
//! workspace catalog with `400 invalid_journey` and every error.

use crate::body::{read_document, read_json};
use crate::documents::{identity_errors, invalid, read_journey, validation_problems, DocumentKind};
use crate::error::ApiError;
use crate::management::read;
use crate::test_mode::{TestProfile, TestRequest};
use crate::views::{has_unpublished_changes, journey_detail, journey_summary, version_detail};
use crate::{commands, ApiState};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_engine::journeys::{Command, JourneyRecord, ProfileRef};
use cairn_journey::JourneyDocument;
use cairn_model::{ErrorCode, Identifier, IdentifierKind, ProfileId, WorkspaceId};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/journeys", get(list).post(create))
        .route("/api/v1/journeys/validate", post(validate_document))
        .route("/api/v1/journeys/{id}", get(get_journey).put(replace))
        .route("/api/v1/journeys/{id}/versions/{version}", get(get_version))
        .route("/api/v1/journeys/{id}/validate", post(validate_draft))
        .route("/api/v1/journeys/{id}/publish", post(publish))
        .route("/api/v1/journeys/{id}/pause", post(pause))
        .route("/api/v1/journeys/{id}/resume", post(resume))
        .route("/api/v1/journeys/{id}/stop", post(stop))
        .route("/api/v1/journeys/{id}/archive", post(archive))
        .route("/api/v1/journeys/{id}/stats", get(stats))
        .route("/api/v1/journeys/{id}/enroll", post(enroll))
        .route("/api/v1/journeys/{id}/test", post(test))
        .route("/api/v1/catalog", get(catalog))
}

/// A journey id that names the ad-hoc validation route, so it cannot name a journey.
const RESERVED_IDS: &[&str] = &["validate"];

pub(crate) fn journey_not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::JourneyNotFound,
        format!("no journey {id:?} in this workspace"),
    )
}

fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::JourneyConflict, message)
}

/// A journey of the workspace, or `journey_not_found`.
pub(crate) async fn load_journey(
    state: &ApiState,
    workspace: &WorkspaceId,
    id: &str,
) -> Result<JourneyRecord, ApiError> {
    find_journey(state, workspace, id)
        .await?
        .ok_or_else(|| journey_not_found(id))
}

/// A journey of the workspace, if there is one.
async fn find_journey(
    state: &ApiState,
    workspace: &WorkspaceId,
    id: &str,
) -> Result<Option<JourneyRecord>, ApiError> {
    let (workspace, key) = (workspace.clone(), id.to_string());
    read(state, move |reader| Ok(reader.journey(&workspace, &key))).await
}

/// The workspace catalog's verdict on a document (empty: valid).
async fn check(
    state: &ApiState,
    workspace: &WorkspaceId,
    document: JourneyDocument,
) -> Result<(JourneyDocument, Vec<cairn_journey::ValidationError>), ApiError> {
    let workspace = workspace.clone();
    read(state, move |reader| {
        let errors = reader.check_journey(&workspace, &document);
        Ok((document, errors))
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    include_archived: bool,
}

async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let query = crate::paging::query(query)?;
    let journeys = read(&state, move |reader| Ok(reader.journeys(&workspace))).await?;
    let journeys: Vec<Value> = journeys
        .iter()
        .filter(|record| {
            query.include_archived
                || record.status != cairn_engine::journeys::JourneyStatus::Archived
        })
        .map(journey_summary)
        .collect();
    Ok(Json(json!({ "journeys": journeys })))
}

async fn get_journey(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    Ok(Json(journey_detail(
        &load_journey(&state, &workspace, &id).await?,
    )))
}

async fn get_version(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((id, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let record = load_journey(&state, &workspace, &id).await?;
    let found = version
        .parse::<u32>()
        .ok()
        .and_then(|number| record.versions.iter().find(|v| v.version == number));
    match found {
        Some(found) => Ok(Json(version_detail(&record, found))),
        None => Err(ApiError::new(
            ErrorCode::JourneyNotFound,
            format!("journey {id:?} has no version {version:?}"),
        )),
    }
}

/// Creates a journey from its first draft; `409` if the id exists.
async fn create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let (text, format) = read_document(&headers, body).await?;
    let document = read_journey(&text, format)?;
    if let Some(existing) = find_journey(&state, &workspace, &document.id).await? {
        return Err(conflict(format!(
            "journey {:?} exists (status {}); PUT /api/v1/journeys/{} replaces its draft",
            existing.id,
            crate::views::status_name(existing.status),
            existing.id
        )));
    }
    save_draft(&state, workspace, document, true).await
}

/// Creates a journey or replaces its draft (the document's id must be the URL's).
async fn replace(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let (text, format) = read_document(&headers, body).await?;
    let document = read_journey(&text, format)?;
    if document.id != id {
        return Err(crate::documents::id_mismatch(
            DocumentKind::Journey,
            &id,
            &document.id,
        ));
    }
    let created = find_journey(&state, &workspace, &id).await?.is_none();
    save_draft(&state, workspace, document, created).await
}

async fn save_draft(
    state: &ApiState,
    workspace: WorkspaceId,
    document: JourneyDocument,
    created: bool,
) -> Result<Response, ApiError> {
    if RESERVED_IDS.contains(&document.id.as_str()) {
        return Err(ApiError::new(
            ErrorCode::InvalidJourney,
            format!("{:?} is reserved and cannot be a journey id", document.id),
        ));
    }
    let (document, errors) = check(state, &workspace, document).await?;
    let unfit = identity_errors(&errors);
    if !unfit.is_empty() {
        return Err(invalid(DocumentKind::Journey, &unfit));
    }
    let id = document.id.clone();
    let outcome = commands::run(
        state,
        workspace.clone(),
        Command::SaveDraft {
            document: Box::new(document),
        },
    )
    .await?;
    if !outcome.ok {
        return Err(conflict(outcome.message));
    }
    let record = load_journey(state, &workspace, &id).await?;
    let mut body = journey_detail(&record);
    body["validation"] = json!({
        "valid": errors.is_empty(),
        "errors": validation_problems(&errors),
    });
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        [(header::LOCATION, format!("/api/v1/journeys/{id}"))],
        Json(body),
    )
        .into_response())
}

/// The answer of a validation: `200 {"valid": true}` or `400 invalid_journey` with every error.
fn verdict(
    journey: &str,
    errors: &[cairn_journey::ValidationError],
) -> Result<Json<Value>, ApiError> {
    if errors.is_empty() {
        Ok(Json(
            json!({"journey": journey, "valid": true, "errors": []}),
        ))
    } else {
        Err(invalid(DocumentKind::Journey, errors))
    }
}

/// Validates a document against the workspace catalog without storing anything.
async fn validate_document(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let (text, format) = read_document(&headers, body).await?;
    let document = read_journey(&text, format)?;
    let (document, errors) = check(&state, &workspace, document).await?;
    verdict(&document.id, &errors)
}

/// Validates a journey's draft.
async fn validate_draft(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let record = load_journey(&state, &workspace, &id).await?;
    let draft = record
        .draft
        .ok_or_else(|| conflict(format!("journey {id:?} has no draft")))?;
    let (_, errors) = check(&state, &workspace, draft).await?;
    verdict(&id, &errors)
}

/// Whether the draft can become a new version: it exists and differs from the latest version.
pub fn publishable(record: &JourneyRecord) -> Result<&JourneyDocument, ApiError> {
    let draft = record
        .draft
        .as_ref()
        .ok_or_else(|| conflict(format!("journey {:?} has no draft to publish", record.id)))?;
    if !has_unpublished_changes(record) {
        let version = record.latest().map_or(0, |latest| latest.version);
        return Err(conflict(format!(
            "the draft of {:?} is version {version} unchanged: nothing to publish",
            record.id
        )));
    }
    Ok(draft)
}

async fn publish(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let record = load_journey(&state, &workspace, &id).await?;
    let draft = publishable(&record)?.clone();
    let (_, errors) = check(&state, &workspace, draft).await?;
    if !errors.is_empty() {
        return Err(invalid(DocumentKind::Journey, &errors));
    }
    let outcome = commands::run(
        &state,
        workspace.clone(),
        Command::Publish {
            journey: id.clone(),
        },
    )
    .await?;
    if !outcome.ok {
        return Err(conflict(outcome.message));
    }
    let record = load_journey(&state, &workspace, &id).await?;
    let mut body = journey_detail(&record);
    body["published_version"] = json!(outcome.version);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Runs a lifecycle command on an existing journey and answers with the journey after it.
async fn transition(
    state: &ApiState,
    workspace: WorkspaceId,
    id: &str,
    command: Command,
) -> Result<Json<Value>, ApiError> {
    load_journey(state, &workspace, id).await?;
    let outcome = commands::run(state, workspace.clone(), command).await?;
    if !outcome.ok {
        return Err(conflict(outcome.message));
    }
    Ok(Json(journey_detail(
        &load_journey(state, &workspace, id).await?,
    )))
}

async fn pause(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let command = Command::Pause {
        journey: id.clone(),
    };
    transition(&state, workspace, &id, command).await
}

async fn resume(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let command = Command::Resume {
        journey: id.clone(),
    };
    transition(&state, workspace, &id, command).await
}

async fn archive(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let command = Command::Archive {
        journey: id.clone(),
    };
    transition(&state, workspace, &id, command).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StopRequest {
    reason: Option<String>,
}

async fn stop(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let request: StopRequest = read_json(&headers, body).await?;
    let reason = request
        .reason
        .map(|reason| reason.trim().to_string())
        .filter(|reason| !reason.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidBody,
                "give the reason for stopping: {\"reason\": \"...\"}",
            )
        })?;
    let command = Command::Stop {
        journey: id.clone(),
        reason,
    };
    transition(&state, workspace, &id, command).await
}

async fn stats(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let key = id.clone();
    read(&state, move |reader| {
        Ok(reader.journey_stats(&workspace, &key))
    })
    .await?
    .map(Json)
    .ok_or_else(|| journey_not_found(&id))
}

/// The body of `POST /api/v1/journeys/{id}/enroll`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub profile_id: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub email: Option<String>,
    /// The enrollment's data, `journey.trigger` in conditions and templates.
    pub data: Option<Value>,
}

/// How an enrollment request names its profile.
#[derive(Debug, Clone, PartialEq)]
pub enum ProfileKey {
    Id(String),
    Identifier(Identifier),
}

/// Exactly one of `profile_id`, `user_id`, `anonymous_id`, `email`.
pub fn profile_key(request: &EnrollRequest) -> Result<ProfileKey, ApiError> {
    let keys = [
        request.profile_id.clone().map(ProfileKey::Id),
        request
            .user_id
            .clone()
            .map(|value| ProfileKey::Identifier(Identifier::new(IdentifierKind::UserId, value))),
        request.anonymous_id.clone().map(|value| {
            ProfileKey::Identifier(Identifier::new(IdentifierKind::AnonymousId, value))
        }),
        request
            .email
            .as_deref()
            .map(|value| ProfileKey::Identifier(Identifier::email(value))),
    ];
    let mut given = keys.into_iter().flatten();
    match (given.next(), given.next()) {
        (Some(key), None) => Ok(key),
        _ => Err(ApiError::new(
            ErrorCode::InvalidBody,
            "give exactly one of profile_id, user_id, anonymous_id or email",
        )),
    }
}

/// Resolves a profile key to the profile's current id, or `profile_not_found`.
pub(crate) async fn resolve_profile(
    state: &ApiState,
    workspace: &WorkspaceId,
    key: ProfileKey,
) -> Result<cairn_model::Profile, ApiError> {
    let workspace = workspace.clone();
    read(state, move |reader| {
        Ok(match key {
            ProfileKey::Id(id) => {
                ProfileId::parse(&id).and_then(|id| reader.profile(&workspace, &id))
            }
            ProfileKey::Identifier(identifier) => {
                reader.profile_by_identifier(&workspace, &identifier)
            }
        })
    })
    .await?
    .ok_or_else(crate::management::not_found)
}

async fn enroll(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let request: EnrollRequest = read_json(&headers, body).await?;
    let key = profile_key(&request)?;
    let record = load_journey(&state, &workspace, &id).await?;
    let profile = resolve_profile(&state, &workspace, key).await?;
    let command = Command::Enroll {
        journey: id.clone(),
        profile: ProfileRef::Id(profile.id),
        data: request.data,
    };
    let outcome = commands::run(&state, workspace, command).await?;
    if !outcome.ok {
        return Err(ApiError::new(
            ErrorCode::EnrollmentRefused,
            format!(
                "{} was not enrolled in {id:?}: {}",
                profile.id, outcome.message
            ),
        ));
    }
    let body = json!({
        "journey": id,
        "version": record.latest().map(|version| version.version),
        "profile_id": profile.id,
        "enrollment": outcome.enrollment,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn test(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let request: TestRequest = read_json(&headers, body).await?;
    let record = load_journey(&state, &workspace, &id).await?;
    let document = match request.version {
        Some(number) => record
            .versions
            .iter()
            .find(|version| version.version == number)
            .map(|version| version.document.clone())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::JourneyNotFound,
                    format!("journey {id:?} has no version {number}"),
                )
            })?,
        None => record
            .draft
            .clone()
            .ok_or_else(|| conflict(format!("journey {id:?} has no draft to test")))?,
    };
    let profile = match &request.profile_id {
        Some(profile_id) => {
            let profile =
                resolve_profile(&state, &workspace, ProfileKey::Id(profile_id.clone())).await?;
            TestProfile {
                id: profile.id.to_string(),
                attributes: profile.traits,
            }
        }
        None => TestProfile {
            id: "prof_test".to_string(),
            attributes: Map::new(),
        },
    };
    let now_ms = state.clock.now().timestamp_millis();
    tokio::task::spawn_blocking(move || crate::test_mode::run(&document, request, profile, now_ms))
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "the simulation failed"))?
        .map(Json)
}

/// What validation checks names against: events and profile attributes seen, audiences.
async fn catalog(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let (events, attributes, audiences) = read(&state, move |reader| {
        let (events, attributes) = reader.catalog(&workspace);
        let audiences: Vec<String> = reader
            .audiences(&workspace)
            .into_iter()
            .map(|record| record.document.id)
            .collect();
        Ok((events, attributes, audiences))
    })
    .await?;
    Ok(Json(json!({
        "events": events,
        "profile_attributes": attributes,
        "audiences": audiences,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enrollment_names_exactly_one_profile_key() {
        let request =
            |json: Value| -> EnrollRequest { serde_json::from_value(json).expect("request") };
        assert_eq!(
            profile_key(&request(json!({"user_id": "u1"}))).ok(),
            Some(ProfileKey::Identifier(Identifier::new(
                IdentifierKind::UserId,
                "u1"
            )))
        );
        assert_eq!(
            profile_key(&request(json!({"email": " Ann@Example.COM "}))).ok(),
            Some(ProfileKey::Identifier(Identifier::email("ann@example.com")))
        );
        assert_eq!(
            profile_key(&request(json!({"profile_id": "prof_1", "data": {"a": 1}}))).ok(),
            Some(ProfileKey::Id("prof_1".into()))
        );
        for bad in [json!({}), json!({"user_id": "u", "email": "e@x.io"})] {
            assert_eq!(
                profile_key(&request(bad)).err().map(|error| error.code),
                Some(ErrorCode::InvalidBody)
            );
        }
    }

    #[test]
    fn only_a_changed_draft_is_publishable() {
        let document: JourneyDocument = cairn_journey::parse_journey(
            "id: j\nname: J\nentry: {api: {}}\nstart: x\nsteps: [{id: x, type: exit}]",
            cairn_journey::Format::Yaml,
        )
        .expect("document");
        let mut record = JourneyRecord {
            id: "j".into(),
            status: cairn_engine::journeys::JourneyStatus::Draft,
            draft: Some(document.clone()),
            created_at_ms: 0,
            updated_at_ms: 0,
            versions: Vec::new(),
            stop_reason: None,
        };
        assert!(publishable(&record).is_ok());
        record.versions.push(cairn_engine::journeys::VersionRecord {
            version: 1,
            key: 0,
            document: document.clone(),
            published_at_ms: 0,
            next_fire_ms: None,
        });
        let refused = publishable(&record).expect_err("unchanged");
        assert_eq!(refused.code, ErrorCode::JourneyConflict);
        record.draft.as_mut().expect("draft").name = "J2".into();
        assert!(publishable(&record).is_ok());
        record.draft = None;
        assert!(publishable(&record).is_err());
    }
}
