//! Declarations of federated attribute sets (TOML or JSON), validated while parsed: URLs, JSON
//! pointers and statements are checked and errors carry their line.
//!
//! ```toml
//! [[attribute]]
//! name = "loyalty"
//! source = "commerce"           # whose record ids parameterize the query
//! timeout_ms = 500
//! cache_ttl_seconds = 300
//! on_failure = "use_stale"      # "fail" | "use_stale" | { use_default = { points = 0 } }
//! [attribute.connector]
//! kind = "postgres"             # "postgres" | "mysql" | "http"
//! url = "host=127.0.0.1 user=postgres dbname=shop"
//! query = "select points, tier from loyalty where customer_id = $1::int"
//! write = "update loyalty set {field} = $1::int where customer_id = $2::int"
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// All federated attribute sets of a workspace.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederatedConfig {
    #[serde(default, rename = "attribute")]
    pub attributes: Vec<AttributeConfig>,
}

impl FederatedConfig {
    /// Parses TOML (`json = false`) or JSON; `origin` names the document in errors.
    pub fn parse(
        text: &str,
        json: bool,
        origin: &str,
    ) -> Result<FederatedConfig, crate::FederatedError> {
        let config: FederatedConfig = if json {
            serde_json::from_str(text).map_err(|error| crate::FederatedError::Config {
                origin: origin.to_string(),
                line: error.line(),
                column: error.column(),
                message: error.to_string(),
            })?
        } else {
            toml::from_str(text).map_err(|error| {
                let offset = error.span().map_or(0, |span| span.start).min(text.len());
                let before = &text[..offset];
                crate::FederatedError::Config {
                    origin: origin.to_string(),
                    line: before.matches('\n').count() + 1,
                    column: before.len() - before.rfind('\n').map_or(0, |newline| newline + 1) + 1,
                    message: error.message().to_string(),
                }
            })?
        };
        let mut names = std::collections::BTreeSet::new();
        for attribute in &config.attributes {
            if !names.insert(attribute.name.as_str()) {
                return Err(crate::FederatedError::Config {
                    origin: origin.to_string(),
                    line: 1,
                    column: 1,
                    message: format!("attribute `{}` is declared twice", attribute.name),
                });
            }
        }
        Ok(config)
    }
}

fn default_timeout_ms() -> u64 {
    1_000
}

fn default_ttl() -> u64 {
    60
}

/// One attribute set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeConfig {
    pub name: String,
    /// The source whose record ids the connector takes.
    pub source: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_ttl")]
    pub cache_ttl_seconds: u64,
    #[serde(default)]
    pub on_failure: FailurePolicy,
    pub connector: ConnectorConfig,
}

/// What a fetch does when the source system fails or times out.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Return the error.
    #[default]
    Fail,
    /// Return the last cached values even if expired (the error if there are none).
    UseStale,
    /// Return these values.
    UseDefault(BTreeMap<String, serde_json::Value>),
}

/// How the values are fetched and written back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConnectorConfig {
    /// PostgreSQL: `query` takes the record id as `$1` (text; cast it in SQL); its first row's
    /// columns are the values. `write` takes the new value as `$1` and the id as `$2` (text);
    /// `{field}` in it is replaced by the field's name (checked against the query's columns).
    Postgres {
        url: String,
        query: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        write: Option<String>,
    },
    /// MySQL / MariaDB: like PostgreSQL with `?` placeholders (`write`: value, then id).
    Mysql {
        url: String,
        query: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        write: Option<String>,
    },
    /// HTTP: GET `url` (`{id}` replaced by the URL-encoded record id); `fields` maps each value to
    /// a JSON pointer into the response. A 404 means "no values". `write` sends the new value
    /// placed at the field's pointer as a JSON body.
    Http {
        url: String,
        fields: BTreeMap<String, JsonPointer>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        write: Option<HttpWrite>,
    },
}

/// An HTTP write-back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpWrite {
    /// `PATCH`, `PUT` or `POST`.
    pub method: HttpMethod,
    /// URL template with `{id}`.
    pub url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Patch,
    Put,
    Post,
}

/// An RFC 6901 JSON pointer, checked while parsing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JsonPointer(pub String);

impl<'de> Deserialize<'de> for JsonPointer {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pointer = String::deserialize(deserializer)?;
        if !(pointer.is_empty() || pointer.starts_with('/')) {
            return Err(serde::de::Error::custom(format!(
                "`{pointer}` is not a JSON pointer (it must be empty or start with `/`)"
            )));
        }
        Ok(JsonPointer(pointer))
    }
}

impl JsonPointer {
    /// The pointer's tokens, unescaped (`~1` → `/`, `~0` → `~`).
    pub fn tokens(&self) -> Vec<String> {
        self.0
            .split('/')
            .skip(1)
            .map(|token| token.replace("~1", "/").replace("~0", "~"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_parse_and_errors_carry_lines() {
        let config = FederatedConfig::parse(
            r#"
[[attribute]]
name = "loyalty"
source = "shop"
on_failure = { use_default = { points = 0 } }
[attribute.connector]
kind = "http"
url = "http://127.0.0.1:9/c/{id}"
fields = { points = "/loyalty/points" }
"#,
            false,
            "federated.toml",
        )
        .expect("valid");
        assert_eq!(config.attributes[0].timeout_ms, 1_000);
        assert!(matches!(
            config.attributes[0].on_failure,
            FailurePolicy::UseDefault(_)
        ));
        let error = FederatedConfig::parse(
            "[[attribute]]\nname = \"a\"\nsource = \"s\"\n[attribute.connector]\nkind = \"http\"\nurl = \"u\"\nfields = { x = \"nope\" }\n",
            false,
            "f.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("line 4"), "{error}"); // the connector table (tagged enums report their table)
        assert!(error.contains("not a JSON pointer"), "{error}");
        let error = FederatedConfig::parse(
            "[[attribute]]\nname = \"a\"\nsource = \"s\"\n[attribute.connector]\nkind = \"oracle\"\n",
            false,
            "f.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("oracle"), "{error}");
    }

    #[test]
    fn pointers_unescape() {
        assert_eq!(
            JsonPointer("/a~1b/c~0d".to_string()).tokens(),
            vec!["a/b".to_string(), "c~d".to_string()]
        );
    }
}
