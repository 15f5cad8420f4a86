//! The crate's one error type.

use cairn_model::ErrorCode;
use thiserror::Error;

/// Everything that can go wrong in the delivery policy: bad configuration, bad signatures, malformed
/// provider callbacks, invalid recipients.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DeliveryError {
    /// A policy or signer setting is invalid (caught at startup or validation).
    #[error("invalid delivery setting `{setting}`: {reason}")]
    InvalidSetting {
        setting: &'static str,
        reason: String,
    },
    /// A signed token or signature header does not verify (tampered, wrong key, malformed, expired).
    #[error("invalid signature: {0}")]
    InvalidSignature(&'static str),
    /// A provider callback body is not in the expected format.
    #[error("invalid {format} callback: {reason}")]
    InvalidCallback {
        format: &'static str,
        reason: String,
    },
    /// A recipient (phone number, email address) is invalid.
    #[error("invalid recipient `{value}`: {reason}")]
    InvalidRecipient { value: String, reason: &'static str },
    /// A stored send history could not be decoded.
    #[error("corrupt send history: {0}")]
    CorruptHistory(&'static str),
    /// HTML could not be rewritten for tracking.
    #[error("cannot rewrite html for tracking: {0}")]
    HtmlRewrite(String),
}

impl DeliveryError {
    /// The stable error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            DeliveryError::InvalidSetting { .. } => ErrorCode::InvalidChannelConfig,
            DeliveryError::InvalidSignature(_) => ErrorCode::InvalidSignature,
            DeliveryError::InvalidCallback { .. } => ErrorCode::InvalidProviderCallback,
            DeliveryError::InvalidRecipient { .. } => ErrorCode::InvalidRecipient,
            DeliveryError::CorruptHistory(_) => ErrorCode::StorageError,
            DeliveryError::HtmlRewrite(_) => ErrorCode::TemplateRenderFailed,
        }
    }

    pub(crate) fn callback(format: &'static str, reason: impl Into<String>) -> Self {
        DeliveryError::InvalidCallback {
            format,
            reason: reason.into(),
        }
    }
}
