//! The crate's one error type: bad provider settings, and the three classes of send failure.

use std::time::Duration;

use cairn_delivery::FailureClass;
use cairn_model::ErrorCode;
use thiserror::Error;

/// A provider could not be built, or a send failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ChannelError {
    /// A provider setting is missing or invalid (reported when the provider is built).
    #[error("invalid {provider} setting `{setting}`: {reason}")]
    InvalidConfig {
        provider: &'static str,
        setting: &'static str,
        reason: String,
    },
    /// Worth retrying (429, 5xx, connection refused, SMTP 4xx), not before `retry_after` if given.
    #[error("transient failure: {reason}")]
    Transient {
        retry_after: Option<Duration>,
        reason: String,
    },
    /// Never worth retrying. `invalid_recipient`: the address, number or device token is invalid or
    /// unregistered and should be removed from the profile.
    #[error("permanent failure {code}: {reason}")]
    Permanent {
        code: String,
        reason: String,
        invalid_recipient: bool,
    },
    /// The request may have been accepted (a timeout after it was sent).
    #[error("in doubt: {reason}")]
    InDoubt { reason: String },
}

impl ChannelError {
    /// The class the retry policy works with.
    pub fn failure_class(&self) -> FailureClass {
        match self {
            ChannelError::Transient { retry_after, .. } => FailureClass::Transient {
                retry_after_ms: retry_after
                    .map(|after| after.as_millis().min(u128::from(u64::MAX)) as u64),
            },
            ChannelError::InDoubt { .. } => FailureClass::InDoubt,
            ChannelError::InvalidConfig { .. } | ChannelError::Permanent { .. } => {
                FailureClass::Permanent
            }
        }
    }

    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ChannelError::InvalidConfig { .. } => ErrorCode::InvalidChannelConfig,
            ChannelError::Permanent {
                invalid_recipient: true,
                ..
            } => ErrorCode::InvalidRecipient,
            _ => ErrorCode::Internal,
        }
    }

    pub(crate) fn config(
        provider: &'static str,
        setting: &'static str,
        reason: impl Into<String>,
    ) -> ChannelError {
        ChannelError::InvalidConfig {
            provider,
            setting,
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_recipient(code: &str, reason: impl Into<String>) -> ChannelError {
        ChannelError::Permanent {
            code: code.to_owned(),
            reason: reason.into(),
            invalid_recipient: true,
        }
    }

    pub(crate) fn permanent(code: impl Into<String>, reason: impl Into<String>) -> ChannelError {
        ChannelError::Permanent {
            code: code.into(),
            reason: reason.into(),
            invalid_recipient: false,
        }
    }

    pub(crate) fn transient(reason: impl Into<String>) -> ChannelError {
        ChannelError::Transient {
            retry_after: None,
            reason: reason.into(),
        }
    }
}
