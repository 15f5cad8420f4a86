//! Workspace access: write keys for ingestion, API tokens for the management API.
//!
//! Each key or token belongs to exactly one workspace; a request can only read or write that
//! workspace's data.

use crate::error::ApiError;
use axum::http::{header, HeaderMap};
use base64::Engine as _;
use cairn_model::{ErrorCode, WorkspaceId};
use std::collections::HashMap;

/// The credentials of one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceAccess {
    pub workspace: WorkspaceId,
    pub write_keys: Vec<String>,
    pub api_tokens: Vec<String>,
}

/// Every workspace's credentials, indexed for lookup.
#[derive(Debug, Default)]
pub struct Access {
    write_keys: HashMap<String, WorkspaceId>,
    api_tokens: HashMap<String, WorkspaceId>,
}

impl Access {
    /// Indexes the credentials. Fails if a key or token is empty or given to two workspaces.
    pub fn new(workspaces: &[WorkspaceAccess]) -> Result<Access, String> {
        let mut access = Access::default();
        for entry in workspaces {
            for (secrets, index, what) in [
                (&entry.write_keys, &mut access.write_keys, "write key"),
                (&entry.api_tokens, &mut access.api_tokens, "API token"),
            ] {
                for secret in secrets {
                    if secret.is_empty() {
                        return Err(format!("workspace {}: an empty {what}", entry.workspace));
                    }
                    if let Some(other) = index.insert(secret.clone(), entry.workspace.clone()) {
                        return Err(format!(
                            "a {what} is shared by workspaces {other} and {}",
                            entry.workspace
                        ));
                    }
                }
            }
        }
        Ok(access)
    }

    /// The workspace of a write key given as HTTP Basic user name, or else in the body.
    pub fn workspace_for_write_key(
        &self,
        headers: &HeaderMap,
        body_key: Option<&str>,
    ) -> Result<WorkspaceId, ApiError> {
        let key = match basic_user(headers)? {
            Some(user) => user,
            None => body_key.map(str::to_string).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::MissingWriteKey,
                    "send the write key as the Basic auth user name or as `writeKey`",
                )
            })?,
        };
        self.write_keys
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidWriteKey, "unknown write key"))
    }

    /// The workspace of the `Authorization: Bearer` API token.
    pub fn workspace_for_token(&self, headers: &HeaderMap) -> Result<WorkspaceId, ApiError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::MissingApiToken,
                    "send `Authorization: Bearer <token>`",
                )
            })?;
        let token = value.strip_prefix("Bearer ").ok_or_else(|| {
            ApiError::new(
                ErrorCode::MissingApiToken,
                "send `Authorization: Bearer <token>`",
            )
        })?;
        self.api_tokens
            .get(token.trim())
            .cloned()
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidApiToken, "unknown API token"))
    }
}

/// The user name of an `Authorization: Basic` header, if there is one.
fn basic_user(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::new(
            ErrorCode::InvalidWriteKey,
            "the Authorization header is not valid Basic auth",
        )
    };
    let text = value.to_str().map_err(|_| invalid())?;
    let Some(encoded) = text.strip_prefix("Basic ") else {
        return Err(invalid());
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| invalid())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
    let user = decoded.split(':').next().unwrap_or_default();
    Ok((!user.is_empty()).then(|| user.to_string()))
}
