//! Message templates in the management API: drafts, publishing, and previews for one profile.
//!
//! - `GET /api/v1/templates`, `GET /api/v1/templates/{id}`: the templates and their versions;
//! - `PUT /api/v1/templates/{id}`: creates a template or replaces its draft (a JSON
//!   [`TemplateDocument`]; the answer lists the draft's validation problems, if any);
//! - `POST /api/v1/templates/{id}/publish`: freezes the draft as the next version, or answers
//!   `400 invalid_template` with every problem (syntax with line and column, unknown variables);
//! - `POST /api/v1/templates/{id}/preview` `{"profile_id": "…", "version": 2, "event": {…}}`: renders
//!   the draft (or a version) for the profile as the dispatcher would (`422 template_render_failed`
//!   when the profile lacks a value the template prints).
//!
//! Changes are commands through the input log, like journeys.

use crate::body::read_json;
use crate::error::ApiError;
use crate::management::{load, read};
use crate::{commands, ApiState};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_dispatch::compose::ComposeError;
use cairn_engine::journeys::Command;
use cairn_model::{ErrorCode, WorkspaceId};
use cairn_template::{
    compile, RenderContext, TemplateDocument, TemplateError, TemplateHistory, TemplateIssue,
    VariableSchema,
};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/templates", get(list))
        .route("/api/v1/templates/{id}", get(get_template).put(save))
        .route("/api/v1/templates/{id}/publish", post(publish))
        .route("/api/v1/templates/{id}/preview", post(preview))
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::TemplateNotFound,
        format!("no template {id:?} in this workspace"),
    )
}

/// A template error with its code; validation problems listed in `errors`.
fn template_error(error: &TemplateError) -> ApiError {
    let api = ApiError::new(error.code(), error.to_string());
    match error.issues() {
        [] => api,
        issues => api.with_errors(issues.iter().map(issue_json).collect()),
    }
}

fn issue_json(issue: &TemplateIssue) -> Value {
    serde_json::to_value(issue).unwrap_or(Value::Null)
}

fn summary(history: &TemplateHistory) -> Value {
    json!({
        "id": history.draft.id,
        "name": history.draft.name,
        "channel": history.draft.channel,
        "latest_version": history.latest().map(|version| version.version),
        "versions": history.versions.iter().map(|version| version.version).collect::<Vec<_>>(),
    })
}

async fn find(
    state: &ApiState,
    workspace: WorkspaceId,
    id: &str,
) -> Result<TemplateHistory, ApiError> {
    let key = id.to_string();
    read(state, move |reader| Ok(reader.template(&workspace, &key)))
        .await?
        .ok_or_else(|| not_found(id))
}

/// The variables a template of the workspace may read: the engine's schema with `federated.*`
/// narrowed to the workspace's declared attribute sets (`federated.loyalty.*`), so a misspelled set
/// is an error at publish time.
async fn schema(state: &ApiState, workspace: &WorkspaceId) -> Result<VariableSchema, ApiError> {
    let id = workspace.clone();
    let mut schema = read(state, move |reader| Ok(reader.template_schema(&id))).await?;
    schema.close("federated");
    if let Some(attributes) = state.federated.get(workspace) {
        for name in attributes.names() {
            schema.declare(&format!("federated.{name}.*"));
        }
    }
    Ok(schema)
}

/// The draft's validation problems against the workspace's variables (empty: publishable).
async fn problems(
    state: &ApiState,
    workspace: WorkspaceId,
    draft: &TemplateDocument,
) -> Result<Vec<Value>, ApiError> {
    let schema = schema(state, &workspace).await?;
    Ok(match compile(draft, &schema) {
        Ok(_) => Vec::new(),
        Err(error) => match error.issues() {
            [] => vec![json!({"message": error.to_string()})],
            issues => issues.iter().map(issue_json).collect(),
        },
    })
}

async fn list(State(state): State<ApiState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let templates = read(&state, move |reader| Ok(reader.templates(&workspace))).await?;
    Ok(Json(
        json!({"templates": templates.iter().map(summary).collect::<Vec<_>>()}),
    ))
}

async fn get_template(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<TemplateHistory>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    Ok(Json(find(&state, workspace, &id).await?))
}

async fn save(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let document: TemplateDocument = read_json(&headers, body).await?;
    if document.id != id {
        return Err(ApiError::new(
            ErrorCode::InvalidTemplate,
            format!(
                "the document's id {:?} is not the URL's {id:?}",
                document.id
            ),
        ));
    }
    let errors = problems(&state, workspace.clone(), &document).await?;
    let outcome = commands::run(
        &state,
        workspace.clone(),
        Command::SaveTemplate {
            document: Box::new(document),
        },
    )
    .await?;
    if !outcome.ok {
        return Err(ApiError::new(ErrorCode::InvalidTemplate, outcome.message));
    }
    let history = find(&state, workspace, &id).await?;
    Ok(Json(json!({"template": history, "errors": errors})).into_response())
}

async fn publish(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let history = find(&state, workspace.clone(), &id).await?;
    let errors = problems(&state, workspace.clone(), &history.draft).await?;
    if !errors.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidTemplate,
            format!("template {id:?} does not validate"),
        )
        .with_errors(errors));
    }
    let outcome = commands::run(
        &state,
        workspace.clone(),
        Command::PublishTemplate {
            template: id.clone(),
        },
    )
    .await?;
    if !outcome.ok {
        return Err(ApiError::new(ErrorCode::InvalidTemplate, outcome.message));
    }
    let history = find(&state, workspace, &id).await?;
    let mut body = summary(&history);
    body["published_version"] = json!(outcome.version);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewRequest {
    profile_id: String,
    /// A published version; the draft when absent.
    #[serde(default)]
    version: Option<u32>,
    /// The triggering event (`event.*`).
    #[serde(default)]
    event: Option<Value>,
    /// The journey's data (`journey.*`).
    #[serde(default)]
    journey: Option<Value>,
}

/// The unsubscribe URL a preview shows (no real token is signed for a preview).
const PREVIEW_UNSUBSCRIBE_URL: &str = "https://unsubscribe.invalid/preview";

async fn preview(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let request: PreviewRequest = read_json(&headers, body).await?;
    let history = find(&state, workspace.clone(), &id).await?;
    let document = match request.version {
        Some(version) => history
            .version(version)
            .map_err(|error| template_error(&error))?
            .document
            .clone(),
        None => history.draft.clone(),
    };
    let profile = load(&state, workspace.clone(), request.profile_id).await?;
    let schema = schema(&state, &workspace).await?;
    let compiled = compile(&document, &schema).map_err(|error| template_error(&error))?;
    let records = {
        let (workspace, id) = (workspace.clone(), profile.id);
        read(&state, move |reader| {
            Ok(reader.source_record_ids_now(&workspace, &id))
        })
        .await?
    };
    let attributes = state.federated.get(&workspace).map(AsRef::as_ref);
    let federated = cairn_dispatch::federated::values_for_template(attributes, &compiled, &records)
        .await
        .map_err(|error| match error {
            ComposeError::Federated { code, message } => ApiError::new(code, message),
            other => ApiError::new(ErrorCode::Internal, other.to_string()),
        })?;
    let mut profile_value = Value::Object(profile.traits.clone());
    profile_value["id"] = Value::String(profile.id.to_string());
    let trait_text = |name: &str| profile.traits.get(name).and_then(Value::as_str);
    let rendered = compiled
        .render(&RenderContext {
            profile: &profile_value,
            event: request.event.as_ref(),
            journey: request.journey.as_ref(),
            federated: federated.as_ref(),
            message_id: "preview",
            unsubscribe_url: Some(PREVIEW_UNSUBSCRIBE_URL),
            locale: trait_text("locale"),
            time_zone: trait_text("timezone").and_then(|zone| zone.parse().ok()),
        })
        .map_err(|error| template_error(&error))?;
    Ok(Json(json!({
        "template": id,
        "version": request.version,
        "profile_id": profile.id,
        "rendered": rendered,
    })))
}
