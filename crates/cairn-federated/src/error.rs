//! The crate's one error type.

use crate::service::AuditRecord;

/// Errors of federated attributes.
#[derive(Debug, thiserror::Error)]
pub enum FederatedError {
    /// The declaration is invalid.
    #[error("{origin}: line {line}, column {column}: {message}")]
    Config {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// No attribute set with that name is declared.
    #[error("unknown federated attribute `{0}`")]
    UnknownAttribute(String),
    /// The source system did not answer within the timeout.
    #[error("`{attribute}`: the source system did not answer within {timeout_ms} ms")]
    Timeout { attribute: String, timeout_ms: u64 },
    /// The source system could not be reached or refused the request.
    #[error("`{attribute}`: the source system failed: {message}")]
    Source { attribute: String, message: String },
    /// The attribute set has no write-back, or the field is not one of its fields.
    #[error("`{attribute}`: {message}")]
    WriteBackUnsupported { attribute: String, message: String },
    /// A write-back failed; the audit record says what was attempted.
    #[error("`{}`: write-back of `{}` failed: {message}", audit.attribute, audit.field)]
    WriteBack {
        message: String,
        audit: Box<AuditRecord>,
    },
}

impl FederatedError {
    /// The stable error code (by name, as in `cairn_model::ErrorCode`'s table).
    pub fn error_code_name(&self) -> &'static str {
        match self {
            FederatedError::Config { .. } => "invalid_config",
            FederatedError::UnknownAttribute(_) | FederatedError::WriteBackUnsupported { .. } => {
                "invalid_input"
            }
            FederatedError::Timeout { .. } => "federated_timeout",
            FederatedError::Source { .. } | FederatedError::WriteBack { .. } => {
                "federated_source_failed"
            }
        }
    }
}
