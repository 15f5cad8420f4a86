//! The crate's one error type. Every variant names where the problem is (file, line, column) so a user
//! can fix bad configuration or input without guessing.

/// Errors of identity resolution: bad configuration, bad input files, unknown records.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A rules or mapping document is malformed; nothing from it was applied.
    #[error("{origin}: line {line}, column {column}: {message}")]
    Config {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// An input file (CSV, JSONL, Parquet) holds a row that cannot be read; nothing was resolved.
    #[error("{origin}: line {line}: {message}")]
    Input {
        origin: String,
        line: u64,
        message: String,
    },
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A record names a source the configuration does not declare.
    #[error("unknown source `{0}` (declare it with a [[source]] section)")]
    UnknownSource(String),
    /// A command named a record that is not loaded.
    #[error("no record {source_name}/{source_id}")]
    RecordNotFound {
        source_name: String,
        source_id: String,
    },
    /// A record is unusable as given (for example an empty source id).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// A resolver snapshot cannot be restored.
    #[error("snapshot: {0}")]
    Snapshot(String),
}

impl IdentityError {
    /// The stable error code this error maps to in `cairn_model::ErrorCode`'s table (by name, so this
    /// crate stays free of the model crate): `invalid_config`, `invalid_input`, `profile_not_found` or
    /// `internal`.
    pub fn error_code_name(&self) -> &'static str {
        match self {
            IdentityError::Config { .. } => "invalid_config",
            IdentityError::Input { .. }
            | IdentityError::UnknownSource(_)
            | IdentityError::InvalidRecord(_) => "invalid_input",
            IdentityError::RecordNotFound { .. } => "profile_not_found",
            IdentityError::Io { .. } | IdentityError::Snapshot(_) => "internal",
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = IdentityError> = std::result::Result<T, E>;
