//! The stored template model: documents (drafts), immutable published versions, and a template's
//! history. These are boundary types (stored and sent through the API), hence serializable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{compile, CompiledTemplate, TemplateError, VariableSchema};

/// The channel a template renders for; it decides which parts a variant has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateChannel {
    /// `subject` and `html` or `mjml` required, `text` optional.
    Email,
    /// `body` required.
    Sms,
    /// `title` and `body` required, `json` (the data payload, a JSON object) optional.
    Push,
    /// `json` (the request body) required.
    Webhook,
}

/// One locale's content. Which parts are allowed depends on the [`TemplateChannel`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TemplateContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mjml: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<String>,
}

/// A template as edited (a draft) and as frozen in each version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateDocument {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub channel: TemplateChannel,
    /// The last locale of every fallback chain; must have a variant.
    pub default_locale: String,
    /// Variants by locale tag (`en`, `fr`, `fr-CA`).
    pub variants: BTreeMap<String, TemplateContent>,
}

/// An immutable published version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedTemplate {
    pub version: u32,
    pub published_at_ms: i64,
    pub document: TemplateDocument,
}

/// A template's draft and its published versions (oldest first). Journeys pin a version; in-flight
/// messages render with the version they were scheduled with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateHistory {
    pub draft: TemplateDocument,
    pub versions: Vec<PublishedTemplate>,
}

impl TemplateHistory {
    /// A new template with only a draft.
    pub fn new(draft: TemplateDocument) -> TemplateHistory {
        TemplateHistory {
            draft,
            versions: Vec::new(),
        }
    }

    /// Validates the draft against `schema` and, when it is valid, freezes it as the next version.
    /// Nothing changes when validation fails.
    pub fn publish(
        &mut self,
        schema: &VariableSchema,
        now_ms: i64,
    ) -> Result<(&PublishedTemplate, CompiledTemplate), TemplateError> {
        let compiled = compile(&self.draft, schema)?;
        let version = self.versions.last().map_or(1, |last| last.version + 1);
        self.versions.push(PublishedTemplate {
            version,
            published_at_ms: now_ms,
            document: self.draft.clone(),
        });
        let published = self
            .versions
            .last()
            .ok_or_else(|| TemplateError::NotFound("no version".into()))?;
        Ok((published, compiled))
    }

    /// A published version by number.
    pub fn version(&self, version: u32) -> Result<&PublishedTemplate, TemplateError> {
        self.versions
            .iter()
            .find(|published| published.version == version)
            .ok_or_else(|| {
                TemplateError::NotFound(format!(
                    "template `{}` has no version {version}",
                    self.draft.id
                ))
            })
    }

    /// The latest published version.
    pub fn latest(&self) -> Option<&PublishedTemplate> {
        self.versions.last()
    }
}
