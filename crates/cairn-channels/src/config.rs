//! One typed configuration per provider, and [`ProviderConfig::build`] which validates it and
//! returns the client (bad settings → [`crate::ChannelError::InvalidConfig`] at startup).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::fcm::{FcmChannel, FcmConfig};
use crate::smtp::{SmtpChannel, SmtpConfig};
use crate::twilio::{TwilioChannel, TwilioConfig};
use crate::webhook::{WebhookChannel, WebhookConfig};
use crate::{ChannelError, ChannelProvider, WallClock};

/// A provider's settings, tagged by `provider` in config files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "snake_case")]
pub enum ProviderConfig {
    Smtp(SmtpConfig),
    Twilio(TwilioConfig),
    Fcm(FcmConfig),
    Webhook(WebhookConfig),
}

impl ProviderConfig {
    /// Validates the settings and builds the client (no connection is opened until the first send).
    pub fn build(
        &self,
        clock: Arc<dyn WallClock>,
    ) -> Result<Arc<dyn ChannelProvider>, ChannelError> {
        Ok(match self {
            ProviderConfig::Smtp(config) => Arc::new(SmtpChannel::new(config)?),
            ProviderConfig::Twilio(config) => Arc::new(TwilioChannel::new(config.clone(), clock)?),
            ProviderConfig::Fcm(config) => Arc::new(FcmChannel::new(config, clock)?),
            ProviderConfig::Webhook(config) => Arc::new(WebhookChannel::new(config, clock)?),
        })
    }
}
