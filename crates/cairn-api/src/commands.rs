//! Submitting journey and audience commands: through the input log like events, then waiting until the
//! applier has applied the command and reading what it did.

use crate::error::ApiError;
use crate::ApiState;
use cairn_engine::journeys::{Command, CommandOutcome};
use cairn_model::{ErrorCode, WorkspaceId};

/// Appends `command` to the log (durable when this returns) and waits for its outcome. A refused
/// command changed nothing; the caller decides which error that is.
pub(crate) async fn run(
    state: &ApiState,
    workspace: WorkspaceId,
    command: Command,
) -> Result<CommandOutcome, ApiError> {
    let receipt = state
        .ingestor
        .submit_command(workspace, &command, state.clock.now())
        .await?;
    let reader = state.reader.clone();
    tokio::task::spawn_blocking(move || reader.command_outcome(receipt.seq))
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "waiting for a command failed"))?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Internal,
                "the command is durable but was not applied in time; read the journey again",
            )
        })
}
