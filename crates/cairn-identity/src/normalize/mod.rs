//! Normalization: the form in which values are compared.
//!
//! Each function is pure and idempotent (normalizing a normalized value changes nothing; property
//! tests check it). Options come from the ruleset's `[normalization]` section.

mod address;
mod email;
mod name;
mod nicknames;
mod phone;
mod text;

pub use address::{normalize_address_line, normalize_postcode};
pub use email::normalize_email;
pub use name::{normalize_name, NicknameTable};
pub use phone::normalize_phone;
pub use text::fold_text;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Normalization options of a ruleset.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizationOptions {
    /// Apply providers' address rules: Gmail ignores dots and `+tags` in the local part.
    #[serde(default)]
    pub email_provider_rules: bool,
    /// Drop `+tag` from the local part of every address (not only known providers').
    #[serde(default)]
    pub strip_plus_tags: bool,
    /// Replace nicknames by the formal first name (Bill → William) with the built-in table.
    #[serde(default)]
    pub nicknames: bool,
    /// Extra nickname → name pairs (used even when `nicknames` is off).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nickname_table: BTreeMap<String, String>,
}
