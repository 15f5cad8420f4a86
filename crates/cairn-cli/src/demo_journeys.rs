//! The journeys and the audience `cairn demo` runs on its data: four shipped templates (cart
//! abandonment, welcome series, loyalty onboarding, post-purchase cross-sell) and the "browsed, did
//! not buy" audience.
//!
//! The audience is saved before the history is loaded, so the history's views and orders count
//! toward it; the journeys are published after, so the history does not flood them and the live
//! stream drives them. Both are idempotent: a second run on the same data directory publishes
//! nothing new.

use cairn_engine::journeys::{Command, CommandOutcome, JourneyRecord, JourneyStatus};
use cairn_engine::Engine;
use cairn_journey::{parse_audience, parse_journey, AudienceDocument, Format, JourneyDocument};
use cairn_model::WorkspaceId;

/// The journey templates the demo publishes.
pub const DEMO_JOURNEYS: &[&str] = &[
    include_str!("../../../journeys/templates/cart-abandonment.yaml"),
    include_str!("../../../journeys/templates/welcome-series.yaml"),
    include_str!("../../../journeys/templates/loyalty-onboarding.yaml"),
    include_str!("../../../journeys/templates/post-purchase-cross-sell.yaml"),
];

/// The audience the demo keeps current.
pub const DEMO_AUDIENCE: &str = include_str!("../../../journeys/audiences/browsed-not-bought.yaml");

/// What to do with a template given the journey as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// New, or its draft or latest version differs: save the draft and publish it.
    Publish,
    /// The latest version is this document already.
    UpToDate,
    /// Stopped or archived by someone: leave it alone.
    Leave(JourneyStatus),
}

/// Decides what installing `document` means for the journey `record`.
pub fn plan(record: Option<&JourneyRecord>, document: &JourneyDocument) -> Plan {
    let Some(record) = record else {
        return Plan::Publish;
    };
    match record.status {
        JourneyStatus::Stopped | JourneyStatus::Archived => Plan::Leave(record.status),
        _ if record
            .latest()
            .is_some_and(|latest| latest.document == *document) =>
        {
            Plan::UpToDate
        }
        _ => Plan::Publish,
    }
}

fn command(
    engine: &Engine,
    workspace: &WorkspaceId,
    command: Command,
) -> anyhow::Result<CommandOutcome> {
    let receipt = engine.ingestor().submit_command_blocking(
        workspace.clone(),
        &command,
        engine.clock().now(),
    )?;
    engine
        .reader()
        .command_outcome(receipt.seq)
        .ok_or_else(|| anyhow::anyhow!("the demo's command was not applied in time"))
}

fn audience_document() -> anyhow::Result<AudienceDocument> {
    parse_audience(DEMO_AUDIENCE, Format::Yaml)
        .map_err(|error| anyhow::anyhow!("the demo audience does not parse: {error}"))
}

/// The demo's journey documents.
pub fn journey_documents() -> anyhow::Result<Vec<JourneyDocument>> {
    DEMO_JOURNEYS
        .iter()
        .map(|text| {
            parse_journey(text, Format::Yaml)
                .map_err(|error| anyhow::anyhow!("a demo journey does not parse: {error}"))
        })
        .collect()
}

/// Saves the demo audience unless it is there already; returns its id.
pub fn install_audience(engine: &Engine, workspace: &WorkspaceId) -> anyhow::Result<String> {
    let document = audience_document()?;
    let id = document.id.clone();
    let current = engine
        .reader()
        .audiences(workspace)
        .into_iter()
        .find(|record| record.document.id == id);
    if current.is_none_or(|record| record.document != document) {
        let outcome = command(
            engine,
            workspace,
            Command::SaveAudience {
                document: Box::new(document),
            },
        )?;
        anyhow::ensure!(
            outcome.ok,
            "the demo audience was refused: {}",
            outcome.message
        );
    }
    Ok(id)
}

/// Publishes each demo journey that is not published as this document yet; returns the ids of the
/// journeys that run (published now or before).
pub fn install_journeys(engine: &Engine, workspace: &WorkspaceId) -> anyhow::Result<Vec<String>> {
    let mut running = Vec::new();
    for document in journey_documents()? {
        let id = document.id.clone();
        match plan(engine.reader().journey(workspace, &id).as_ref(), &document) {
            Plan::UpToDate => running.push(id),
            Plan::Leave(status) => {
                eprintln!("demo journey {id:?} is {status:?}; left as it is");
            }
            Plan::Publish => {
                let saved = command(
                    engine,
                    workspace,
                    Command::SaveDraft {
                        document: Box::new(document),
                    },
                )?;
                let published = if saved.ok {
                    command(
                        engine,
                        workspace,
                        Command::Publish {
                            journey: id.clone(),
                        },
                    )?
                } else {
                    saved
                };
                anyhow::ensure!(
                    published.ok,
                    "demo journey {id:?} was refused: {}",
                    published.message
                );
                running.push(id);
            }
        }
    }
    Ok(running)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_engine::journeys::VersionRecord;

    fn record(status: JourneyStatus, versions: Vec<JourneyDocument>) -> JourneyRecord {
        JourneyRecord {
            id: "j".into(),
            status,
            draft: versions.last().cloned(),
            created_at_ms: 0,
            updated_at_ms: 0,
            versions: versions
                .into_iter()
                .enumerate()
                .map(|(index, document)| VersionRecord {
                    version: index as u32 + 1,
                    key: index as u32,
                    document,
                    published_at_ms: 0,
                    next_fire_ms: None,
                })
                .collect(),
            stop_reason: None,
        }
    }

    #[test]
    fn a_template_is_published_once_and_left_alone_when_stopped() {
        let documents = journey_documents().expect("templates");
        let (cart, welcome) = (&documents[0], &documents[1]);
        assert_eq!(plan(None, cart), Plan::Publish);
        let published = record(JourneyStatus::Published, vec![cart.clone()]);
        assert_eq!(plan(Some(&published), cart), Plan::UpToDate);
        assert_eq!(plan(Some(&published), welcome), Plan::Publish);
        let draft_only = record(JourneyStatus::Draft, Vec::new());
        assert_eq!(plan(Some(&draft_only), cart), Plan::Publish);
        let stopped = record(JourneyStatus::Stopped, vec![cart.clone()]);
        assert_eq!(
            plan(Some(&stopped), welcome),
            Plan::Leave(JourneyStatus::Stopped)
        );
        assert!(audience_document().is_ok());
    }
}
