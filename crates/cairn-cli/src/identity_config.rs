//! Reading the workspaces' Customer 360 files named by the configuration: the ruleset
//! (`identity_rules`), extra source mappings (`sources`) and federated attributes (`attributes`).
//! Paths are as given (relative to the working directory); every problem is an `invalid
//! configuration` error naming the workspace and the file.

use crate::config::Config;
use anyhow::{bail, Context};
use cairn_api::customer360::FederatedByWorkspace;
use cairn_engine::customer360::IdentityConfigs;
use cairn_federated::{FederatedAttributes, FederatedConfig};
use cairn_identity::compiled::CompiledRuleset;
use cairn_identity::document::parse_document;
use cairn_identity::{DocumentFormat, Ruleset, SourceCatalog, SourceConfig};
use cairn_model::WorkspaceId;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// A document holding only `[[source]]` mappings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourcesDocument {
    #[serde(default, rename = "source")]
    sources: Vec<SourceConfig>,
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| {
        format!(
            "invalid configuration: cannot read {}",
            path.to_string_lossy()
        )
    })
}

/// Every workspace's compiled ruleset, with the mappings of its `sources` document added.
pub fn load_identity(config: &Config) -> anyhow::Result<IdentityConfigs> {
    let mut configs = BTreeMap::new();
    for workspace in &config.workspaces {
        let Some(rules) = &workspace.identity_rules else {
            if workspace.sources.is_some() {
                bail!(
                    "invalid configuration: workspace `{}` has `sources` but no `identity_rules`",
                    workspace.id
                );
            }
            continue;
        };
        let mut ruleset = Ruleset::from_file(rules)
            .map_err(|error| anyhow::anyhow!("invalid configuration: {error}"))?;
        if let Some(path) = &workspace.sources {
            let origin = path.to_string_lossy().to_string();
            let document: SourcesDocument =
                parse_document(&read(path)?, DocumentFormat::from_path(path), &origin)
                    .map_err(|error| anyhow::anyhow!("invalid configuration: {error}"))?;
            ruleset.sources.extend(document.sources);
            SourceCatalog::new(&ruleset.sources)
                .map_err(|error| anyhow::anyhow!("invalid configuration: {origin}: {error}"))?;
        }
        if ruleset.sources.is_empty() {
            bail!(
                "invalid configuration: workspace `{}` declares no [[source]] in {}",
                workspace.id,
                rules.to_string_lossy()
            );
        }
        let compiled = CompiledRuleset::new(ruleset)
            .map_err(|error| anyhow::anyhow!("invalid configuration: {error}"))?;
        configs.insert(WorkspaceId::new(workspace.id.clone()), Arc::new(compiled));
    }
    Ok(IdentityConfigs::new(configs))
}

/// Every workspace's federated attribute sets; each attribute's `source` must be one of the
/// workspace's sources in `identity` (what [`load_identity`] read).
pub fn load_federated(
    config: &Config,
    identity: &IdentityConfigs,
) -> anyhow::Result<FederatedByWorkspace> {
    let mut federated = BTreeMap::new();
    for workspace in &config.workspaces {
        let Some(path) = &workspace.attributes else {
            continue;
        };
        let id = WorkspaceId::new(workspace.id.clone());
        let origin = path.to_string_lossy().to_string();
        let json = path
            .extension()
            .is_some_and(|extension| extension == "json");
        let attributes = FederatedConfig::parse(&read(path)?, json, &origin)
            .map_err(|error| anyhow::anyhow!("invalid configuration: {error}"))?;
        let Some(compiled) = identity.get(&id) else {
            bail!(
                "invalid configuration: workspace `{}` has `attributes` but no `identity_rules`",
                workspace.id
            );
        };
        for attribute in &attributes.attributes {
            if compiled.sources.get(&attribute.source).is_none() {
                bail!(
                    "invalid configuration: {origin}: attribute `{}` reads source `{}`, which workspace `{}` does not declare",
                    attribute.name,
                    attribute.source,
                    workspace.id
                );
            }
        }
        let service =
            FederatedAttributes::new(attributes, Arc::new(cairn_federated::clock::SystemClock))
                .map_err(|error| anyhow::anyhow!("invalid configuration: {error}"))?;
        federated.insert(id, Arc::new(service));
    }
    Ok(federated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WorkspaceConfig;

    const RULES: &str = include_str!("../../../tests/identity/crm-shop.toml");

    fn workspace(dir: &Path, attributes: &str) -> WorkspaceConfig {
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write");
            path
        };
        WorkspaceConfig {
            id: "acme".into(),
            identity_rules: Some(write("rules.toml", RULES)),
            sources: Some(write(
                "sources.toml",
                "[[source]]\nname = \"desk\"\nid = \"case\"\n[source.fields]\nemails = \"requester\"\n",
            )),
            attributes: Some(write("attributes.toml", attributes)),
            ..WorkspaceConfig::default()
        }
    }

    fn config(workspaces: Vec<WorkspaceConfig>) -> Config {
        Config {
            workspaces,
            ..Config::default()
        }
    }

    const LOYALTY: &str = "[[attribute]]\nname = \"loyalty\"\nsource = \"shop\"\n[attribute.connector]\n\
        kind = \"postgres\"\nurl = \"host=127.0.0.1 user=postgres dbname=test\"\nquery = \"select 1\"\n";

    #[test]
    fn a_workspace_reads_its_rules_extra_sources_and_attributes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(vec![workspace(dir.path(), LOYALTY)]);
        let identity = load_identity(&config).expect("identity");
        let compiled = identity.get(&WorkspaceId::new("acme")).expect("acme");
        for source in ["crm", "shop", "web", "desk"] {
            assert!(compiled.sources.get(source).is_some(), "{source}");
        }
        let federated = load_federated(&config, &identity).expect("federated");
        assert_eq!(
            federated[&WorkspaceId::new("acme")].names(),
            vec!["loyalty"]
        );
    }

    #[test]
    fn bad_identity_settings_are_configuration_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let undeclared = LOYALTY.replace("source = \"shop\"", "source = \"erp\"");
        let undeclared = config(vec![workspace(dir.path(), &undeclared)]);
        let identity = load_identity(&undeclared).expect("identity");
        let Err(error) = load_federated(&undeclared, &identity) else {
            panic!("an attribute of an undeclared source is refused");
        };
        assert!(error.to_string().contains("source `erp`"), "{error}");

        let mut orphan = workspace(dir.path(), LOYALTY);
        orphan.identity_rules = None;
        let error = load_identity(&config(vec![orphan])).expect_err("sources without rules");
        assert!(error.to_string().contains("no `identity_rules`"), "{error}");

        let mut missing = workspace(dir.path(), LOYALTY);
        missing.identity_rules = Some(dir.path().join("nope.toml"));
        let error = load_identity(&config(vec![missing])).expect_err("a missing file");
        assert!(
            error.to_string().starts_with("invalid configuration"),
            "{error}"
        );

        let typo: Result<WorkspaceConfig, _> =
            toml::from_str("id = \"a\"\nidentity_rule = \"x\"\n");
        assert!(typo.is_err(), "unknown keys are rejected");
    }
}
