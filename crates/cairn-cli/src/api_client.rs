//! A small client of the running server's management API for CLI commands (`cairn journey push`,
//! `cairn audience list`, `cairn profile get` beside a server, …).
//!
//! It talks to the configured `listen` address with an API token of the workspace: `--token` (or
//! `CAIRN_API_TOKEN`), else the first token the configuration gives the workspace (`--workspace`, or
//! the only configured one), else the demo workspace's token (what `cairn demo` serves). An error
//! answer becomes a [`CliError`] with the answer's stable code; a document's problems (`errors`) are
//! printed on stderr one a line, like `cairn journey validate` prints them.

use crate::cli_error::CliError;
use crate::config::{Config, WorkspaceConfig};
use anyhow::Context as _;
use cairn_model::ErrorCode;
use clap::Args;
use reqwest::Method;
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Which workspace to act on, and with which token.
#[derive(Debug, Clone, Default, Args)]
pub struct ServerArgs {
    /// Workspace id (default: the only workspace in the configuration, else the demo workspace).
    #[arg(long)]
    pub workspace: Option<String>,
    /// API token (default: the workspace's first token in the configuration).
    #[arg(long, env = "CAIRN_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// The token to use, or why there is none.
pub fn resolve_token(
    workspaces: &[WorkspaceConfig],
    workspace: Option<&str>,
    token: Option<&str>,
) -> Result<String, String> {
    if let Some(token) = token.filter(|token| !token.is_empty()) {
        return Ok(token.to_string());
    }
    let first_token = |config: &WorkspaceConfig| config.api_tokens.first().cloned();
    match workspace {
        Some(id) => match workspaces.iter().find(|config| config.id == id) {
            Some(config) => first_token(config).ok_or_else(|| {
                format!("the configuration gives workspace {id:?} no API token; pass --token")
            }),
            None if id == crate::demo::DEMO_WORKSPACE => {
                Ok(crate::demo::DEMO_API_TOKEN.to_string())
            }
            None => Err(format!(
                "workspace {id:?} is not in the configuration; pass --token"
            )),
        },
        None => match workspaces {
            [] => Ok(crate::demo::DEMO_API_TOKEN.to_string()),
            [only] => first_token(only).ok_or_else(|| {
                format!(
                    "the configuration gives workspace {:?} no API token; pass --token",
                    only.id
                )
            }),
            _ => Err("the configuration has several workspaces; pass --workspace".to_string()),
        },
    }
}

/// The base URL of the server listening on `listen` (an unspecified address is reached on loopback).
pub fn server_base(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

/// Percent-encodes a path segment or a query value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One line per problem of a refused document, like `cairn journey validate` prints them.
pub fn problem_line(problem: &Value) -> String {
    let text = |key: &str| problem.get(key).and_then(Value::as_str).unwrap_or_default();
    let mut line = format!("error[{}]", text("code"));
    if let Some(step) = problem.get("step").and_then(Value::as_str) {
        line.push_str(&format!(" step={step}"));
    }
    line.push_str(&format!(": {}", text("message")));
    match (
        problem.get("line").and_then(Value::as_u64),
        problem.get("column").and_then(Value::as_u64),
    ) {
        (Some(row), Some(column)) => {
            line.push_str(&format!(" (line {row}, column {column}"));
            if !text("path").is_empty() {
                line.push_str(&format!(" at {}", text("path")));
            }
            line.push(')');
        }
        _ if !text("path").is_empty() => line.push_str(&format!(" (at {})", text("path"))),
        _ => {}
    }
    line
}

/// The error an error answer stands for (its problems printed on stderr).
pub fn answer_error(body: &Value) -> anyhow::Error {
    for problem in body["errors"].as_array().into_iter().flatten() {
        eprintln!("{}", problem_line(problem));
    }
    let code = body["code"]
        .as_str()
        .and_then(ErrorCode::from_name)
        .unwrap_or(ErrorCode::Internal);
    CliError::raise(
        code,
        body["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// A blocking client of one workspace's management API.
pub struct ApiClient {
    base: String,
    token: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl ApiClient {
    pub fn new(config: &Config, args: &ServerArgs) -> anyhow::Result<ApiClient> {
        let token = resolve_token(
            &config.workspaces,
            args.workspace.as_deref(),
            args.token.as_deref(),
        )
        .map_err(|message| CliError::raise(ErrorCode::InvalidInput, message))?;
        Ok(ApiClient {
            base: server_base(config.listen),
            token,
            client: {
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::new()
            },
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(Method::GET, path, None).map(|(_, body)| body)
    }

    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(
            Method::POST,
            path,
            Some(("application/json", body.to_string())),
        )
        .map(|(_, body)| body)
    }

    /// Sends a document (`PUT`); answers the status (201 created, 200 replaced) and the body.
    pub fn put_document(
        &self,
        path: &str,
        content_type: &str,
        text: String,
    ) -> anyhow::Result<(u16, Value)> {
        self.send(Method::PUT, path, Some((content_type, text)))
    }

    fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, String)>,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let mut request = self.client.request(method, &url).bearer_auth(&self.token);
        if let Some((content_type, text)) = body {
            request = request.header("content-type", content_type).body(text);
        }
        self.runtime.block_on(async {
            let response = request.send().await.with_context(|| {
                format!(
                    "cannot reach the server at {}; is `cairn serve` running?",
                    self.base
                )
            })?;
            let status = response.status();
            let body: Value = response
                .json()
                .await
                .with_context(|| format!("the server's answer to {url} is not JSON"))?;
            if status.is_success() {
                Ok((status.as_u16(), body))
            } else {
                Err(answer_error(&body))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn workspace(id: &str, tokens: &[&str]) -> WorkspaceConfig {
        WorkspaceConfig {
            id: id.into(),
            write_keys: Vec::new(),
            api_tokens: tokens.iter().map(|token| token.to_string()).collect(),
            ..WorkspaceConfig::default()
        }
    }

    #[test]
    fn the_token_comes_from_the_flag_the_workspace_or_the_demo() {
        let one = [workspace("acme", &["tok_a", "tok_b"])];
        let two = [workspace("acme", &["tok_a"]), workspace("globex", &[])];
        assert_eq!(resolve_token(&one, None, Some("given")), Ok("given".into()));
        assert_eq!(resolve_token(&one, None, None), Ok("tok_a".into()));
        assert_eq!(resolve_token(&two, Some("acme"), None), Ok("tok_a".into()));
        assert!(
            resolve_token(&two, None, None).is_err_and(|message| message.contains("--workspace"))
        );
        assert!(resolve_token(&two, Some("globex"), None).is_err());
        assert!(resolve_token(&two, Some("initech"), None).is_err());
        assert_eq!(
            resolve_token(&[], None, None),
            Ok(crate::demo::DEMO_API_TOKEN.into())
        );
        assert_eq!(
            resolve_token(&one, Some("demo"), None),
            Ok(crate::demo::DEMO_API_TOKEN.into())
        );
    }

    #[test]
    fn an_unspecified_listen_address_is_reached_on_loopback() {
        let base = |text: &str| server_base(text.parse().expect("address"));
        assert_eq!(base("0.0.0.0:8080"), "http://127.0.0.1:8080");
        assert_eq!(base("[::]:8080"), "http://[::1]:8080");
        assert_eq!(base("10.1.2.3:9000"), "http://10.1.2.3:9000");
    }

    #[test]
    fn problems_print_like_validate_prints_them() {
        assert_eq!(
            problem_line(&json!({"code": "random_weights", "step": "ab", "path": "/steps/0/branches", "message": "the branch weights sum to 90, not 100"})),
            "error[random_weights] step=ab: the branch weights sum to 90, not 100 (at /steps/0/branches)"
        );
        assert_eq!(
            problem_line(
                &json!({"code": "malformed_document", "path": "/steps/0/type", "line": 6, "column": 3, "message": "unknown variant"})
            ),
            "error[malformed_document]: unknown variant (line 6, column 3 at /steps/0/type)"
        );
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode("cart-abandonment_2"), "cart-abandonment_2");
        assert_eq!(encode("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(encode("ann+x@example.com"), "ann%2Bx%40example.com");
    }
}
