//! Workspace ids, profile ids and the identifiers that attach events to profiles.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

/// A workspace (a business unit): every record belongs to exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkspaceId(pub String);

impl WorkspaceId {
    pub fn new(id: impl Into<String>) -> Self {
        WorkspaceId(id.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The stable id of a unified profile, `prof_` followed by 32 hex digits.
///
/// It is derived deterministically from the workspace and the identifier that created the profile, so
/// replaying the same input produces the same ids (a requirement for deterministic apply).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProfileId(pub String);

impl ProfileId {
    /// The id of a profile created by `first` in `workspace`.
    pub fn derive(workspace: &WorkspaceId, first: &Identifier) -> Self {
        let key = format!(
            "{}\u{1f}{}\u{1f}{}",
            workspace.0,
            first.kind.as_str(),
            first.value
        );
        ProfileId(format!("prof_{:032x}", xxh3_128(key.as_bytes())))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ProfileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kinds of exact identifier this release resolves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierKind {
    UserId,
    Email,
    AnonymousId,
}

impl IdentifierKind {
    pub const ALL: [IdentifierKind; 3] = [
        IdentifierKind::UserId,
        IdentifierKind::Email,
        IdentifierKind::AnonymousId,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierKind::UserId => "user_id",
            IdentifierKind::Email => "email",
            IdentifierKind::AnonymousId => "anonymous_id",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        IdentifierKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// One identifier value of one kind, already normalized (emails are trimmed and lower-cased).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: IdentifierKind,
    pub value: String,
}

impl Identifier {
    pub fn new(kind: IdentifierKind, value: impl Into<String>) -> Self {
        Identifier {
            kind,
            value: value.into(),
        }
    }

    /// An email identifier, normalized: surrounding whitespace removed and lower-cased.
    pub fn email(raw: &str) -> Self {
        Identifier::new(IdentifierKind::Email, raw.trim().to_lowercase())
    }
}
