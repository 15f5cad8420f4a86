//! CLI errors: every failure is reported as `error[code]: message` with a code from the shared table,
//! and the exit status says whose fault it was (2: bad input or configuration, 1: anything else).

use cairn_model::ErrorCode;
use cairn_storage::StorageError;
use std::process::ExitCode;

/// An error with a stable code, raised by a command.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    pub code: ErrorCode,
    pub message: String,
}

impl CliError {
    /// An `anyhow::Error` carrying a stable code.
    pub fn raise(code: ErrorCode, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(CliError {
            code,
            message: message.into(),
        })
    }
}

pub fn invalid_config(error: anyhow::Error) -> anyhow::Error {
    CliError::raise(ErrorCode::InvalidConfig, format!("{error:#}"))
}

fn code_of(error: &anyhow::Error) -> ErrorCode {
    for cause in error.chain() {
        if let Some(cli) = cause.downcast_ref::<CliError>() {
            return cli.code;
        }
        if let Some(storage) = cause.downcast_ref::<StorageError>() {
            return match storage {
                StorageError::Locked(_) => ErrorCode::DataDirLocked,
                _ => ErrorCode::StorageError,
            };
        }
    }
    ErrorCode::Internal
}

/// Prints the error to stderr and returns the exit status.
pub fn report(error: &anyhow::Error) -> ExitCode {
    let code = code_of(error);
    eprintln!("error[{code}]: {error:#}");
    if (400..500).contains(&code.http_status()) && code != ErrorCode::DataDirLocked {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}
