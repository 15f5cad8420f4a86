//! Consent and subscription groups: what a customer agreed to receive, per channel and per group,
//! and the check made at send time.
//!
//! A profile's [`ConsentState`] holds a status per channel, per subscription group, and a global
//! unsubscribe. Changes carry their time and the latest change wins, so a late-arriving old opt-in
//! never overrides a newer opt-out. [`ConsentRules`] (workspace configuration) says, per channel and
//! per group, whether a message needs an explicit opt-in or goes out unless the customer opted out.
//! Transactional messages are checked too: consent is never bypassed.

use serde::{Deserialize, Serialize};

use crate::signing::{b64url, b64url_decode};
use crate::{Channel, DeliveryError, MessageCategory, SigningKey};

/// A subscription group's id (stable, workspace-scoped).
pub type SubscriptionGroupId = u32;

/// One consent status with the time it was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ConsentStatus {
    /// The customer never said.
    #[default]
    Unknown,
    /// Opted in (for a double opt-in group: confirmed).
    OptedIn { at_ms: i64 },
    /// Opted out.
    OptedOut { at_ms: i64 },
    /// Asked to join a double opt-in group; the confirmation link was not followed yet.
    PendingConfirmation { at_ms: i64 },
}

impl ConsentStatus {
    fn at_ms(self) -> Option<i64> {
        match self {
            ConsentStatus::Unknown => None,
            ConsentStatus::OptedIn { at_ms }
            | ConsentStatus::OptedOut { at_ms }
            | ConsentStatus::PendingConfirmation { at_ms } => Some(at_ms),
        }
    }

    /// Replaces `self` with `new` unless `self` was set later than `new`.
    fn update(&mut self, new: ConsentStatus) -> bool {
        match (self.at_ms(), new.at_ms()) {
            (Some(current), Some(incoming)) if current > incoming => false,
            _ => {
                *self = new;
                true
            }
        }
    }
}

/// What a message needs before it may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentRequirement {
    /// Only to customers who opted in.
    OptIn,
    /// To everyone who did not opt out.
    NotOptedOut,
}

/// A subscription group ("Newsletter", "Product updates", "Order SMS").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionGroup {
    pub id: SubscriptionGroupId,
    pub name: String,
    pub channel: Channel,
    pub requirement: ConsentRequirement,
    /// Email groups only: joining needs a confirmed link ([`DoubleOptInSigner`]).
    #[serde(default)]
    pub double_opt_in: bool,
}

/// The workspace's consent rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentRules {
    /// Per channel ([`Channel::index`]), what marketing messages need.
    pub marketing: [ConsentRequirement; 4],
    /// Per channel, what transactional messages need.
    pub transactional: [ConsentRequirement; 4],
    /// The subscription groups, sorted by id.
    pub groups: Vec<SubscriptionGroup>,
}

impl Default for ConsentRules {
    /// Email and push go out unless opted out; marketing SMS needs an opt-in (as carriers and TCPA
    /// require); webhooks go out unless opted out; transactional messages go out unless opted out.
    fn default() -> Self {
        use ConsentRequirement::{NotOptedOut, OptIn};
        ConsentRules {
            marketing: [NotOptedOut, OptIn, NotOptedOut, NotOptedOut],
            transactional: [NotOptedOut; 4],
            groups: Vec::new(),
        }
    }
}

impl ConsentRules {
    /// Checks ids are unique and double opt-in is only on email groups; sorts the groups.
    pub fn validated(mut self) -> Result<ConsentRules, DeliveryError> {
        self.groups.sort_by_key(|group| group.id);
        if let Some(pair) = self.groups.windows(2).find(|pair| pair[0].id == pair[1].id) {
            return Err(DeliveryError::InvalidSetting {
                setting: "consent.groups",
                reason: format!("subscription group id {} is used twice", pair[0].id),
            });
        }
        if let Some(group) = self
            .groups
            .iter()
            .find(|g| g.double_opt_in && g.channel != Channel::Email)
        {
            return Err(DeliveryError::InvalidSetting {
                setting: "consent.groups",
                reason: format!(
                    "group {} uses double opt-in, which only email groups support",
                    group.id
                ),
            });
        }
        Ok(self)
    }

    /// The group with this id.
    pub fn group(&self, id: SubscriptionGroupId) -> Option<&SubscriptionGroup> {
        self.groups
            .binary_search_by_key(&id, |group| group.id)
            .ok()
            .map(|index| &self.groups[index])
    }
}

/// What a consent change applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum ConsentTarget {
    Channel(Channel),
    Group(SubscriptionGroupId),
}

/// A change to a profile's consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum ConsentChange {
    OptIn {
        target: ConsentTarget,
    },
    OptOut {
        target: ConsentTarget,
    },
    /// A double opt-in was requested (the confirmation email is on its way).
    RequestConfirmation {
        target: ConsentTarget,
    },
    /// Unsubscribe from everything.
    GlobalUnsubscribe,
    /// Undo a global unsubscribe (channel and group opt-outs stay).
    GlobalResubscribe,
}

/// Why consent refuses a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum ConsentRefusal {
    GlobalUnsubscribe,
    ChannelOptedOut {
        channel: Channel,
    },
    ChannelNotOptedIn {
        channel: Channel,
    },
    GroupOptedOut {
        group: SubscriptionGroupId,
    },
    GroupNotOptedIn {
        group: SubscriptionGroupId,
    },
    GroupPendingConfirmation {
        group: SubscriptionGroupId,
    },
    /// The message names a group the rules do not know, or a group of another channel.
    UnknownGroup {
        group: SubscriptionGroupId,
    },
}

/// A profile's consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConsentState {
    /// When the customer unsubscribed from everything (`None` when subscribed).
    #[serde(default)]
    pub global_unsubscribe: Option<ConsentStatus>,
    /// Per channel ([`Channel::index`]).
    #[serde(default)]
    pub channels: [ConsentStatus; 4],
    /// Per subscription group, sorted by id.
    #[serde(default)]
    pub groups: Vec<(SubscriptionGroupId, ConsentStatus)>,
}

impl ConsentState {
    /// Applies a change made at `at_ms`. Returns false when a later change already decided (the
    /// change is then ignored).
    pub fn apply(&mut self, change: ConsentChange, at_ms: i64) -> bool {
        match change {
            ConsentChange::OptIn { target } => self.set(target, ConsentStatus::OptedIn { at_ms }),
            ConsentChange::OptOut { target } => self.set(target, ConsentStatus::OptedOut { at_ms }),
            ConsentChange::RequestConfirmation { target } => {
                if matches!(self.status(target), ConsentStatus::OptedIn { .. }) {
                    return false;
                }
                self.set(target, ConsentStatus::PendingConfirmation { at_ms })
            }
            ConsentChange::GlobalUnsubscribe => {
                let global = self
                    .global_unsubscribe
                    .get_or_insert(ConsentStatus::Unknown);
                global.update(ConsentStatus::OptedOut { at_ms })
            }
            ConsentChange::GlobalResubscribe => {
                let global = self
                    .global_unsubscribe
                    .get_or_insert(ConsentStatus::Unknown);
                global.update(ConsentStatus::OptedIn { at_ms })
            }
        }
    }

    /// The status of a channel or group.
    pub fn status(&self, target: ConsentTarget) -> ConsentStatus {
        match target {
            ConsentTarget::Channel(channel) => self.channels[channel.index()],
            ConsentTarget::Group(id) => self
                .groups
                .binary_search_by_key(&id, |(group, _)| *group)
                .map_or(ConsentStatus::Unknown, |index| self.groups[index].1),
        }
    }

    fn set(&mut self, target: ConsentTarget, status: ConsentStatus) -> bool {
        match target {
            ConsentTarget::Channel(channel) => self.channels[channel.index()].update(status),
            ConsentTarget::Group(id) => {
                match self.groups.binary_search_by_key(&id, |(group, _)| *group) {
                    Ok(index) => self.groups[index].1.update(status),
                    Err(index) => {
                        self.groups.insert(index, (id, status));
                        true
                    }
                }
            }
        }
    }

    /// Takes in another profile's consent (a merge): for every channel, group and the global
    /// setting, the later decision wins, exactly as if both profiles' changes had been applied here.
    pub fn absorb(&mut self, other: &ConsentState) {
        for (index, status) in other.channels.iter().enumerate() {
            self.channels[index].update(*status);
        }
        for (group, status) in &other.groups {
            self.set(ConsentTarget::Group(*group), *status);
        }
        if let Some(status) = other.global_unsubscribe {
            self.global_unsubscribe
                .get_or_insert(ConsentStatus::Unknown)
                .update(status);
        }
    }

    /// Whether a globally unsubscribed customer is currently unsubscribed.
    pub fn is_globally_unsubscribed(&self) -> bool {
        matches!(
            self.global_unsubscribe,
            Some(ConsentStatus::OptedOut { .. })
        )
    }

    /// The send-time check: may a message of this channel, category and group go out?
    pub fn check(
        &self,
        rules: &ConsentRules,
        channel: Channel,
        category: MessageCategory,
        group: Option<SubscriptionGroupId>,
    ) -> Result<(), ConsentRefusal> {
        if self.is_globally_unsubscribed() {
            return Err(ConsentRefusal::GlobalUnsubscribe);
        }
        let requirement = match category {
            MessageCategory::Marketing => rules.marketing[channel.index()],
            MessageCategory::Transactional => rules.transactional[channel.index()],
        };
        match (self.channels[channel.index()], requirement) {
            (ConsentStatus::OptedOut { .. }, _) => {
                return Err(ConsentRefusal::ChannelOptedOut { channel })
            }
            (ConsentStatus::OptedIn { .. }, _) | (_, ConsentRequirement::NotOptedOut) => {}
            (_, ConsentRequirement::OptIn) => {
                return Err(ConsentRefusal::ChannelNotOptedIn { channel })
            }
        }
        let Some(group_id) = group else { return Ok(()) };
        let Some(group) = rules
            .group(group_id)
            .filter(|group| group.channel == channel)
        else {
            return Err(ConsentRefusal::UnknownGroup { group: group_id });
        };
        match (
            self.status(ConsentTarget::Group(group_id)),
            group.requirement,
        ) {
            (ConsentStatus::OptedOut { .. }, _) => {
                Err(ConsentRefusal::GroupOptedOut { group: group_id })
            }
            (ConsentStatus::OptedIn { .. }, _) => Ok(()),
            (ConsentStatus::PendingConfirmation { .. }, _) => {
                Err(ConsentRefusal::GroupPendingConfirmation { group: group_id })
            }
            (ConsentStatus::Unknown, ConsentRequirement::NotOptedOut) if !group.double_opt_in => {
                Ok(())
            }
            (ConsentStatus::Unknown, _) => Err(ConsentRefusal::GroupNotOptedIn { group: group_id }),
        }
    }
}

/// What a double opt-in confirmation link proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoubleOptInClaims {
    pub profile_id: String,
    pub group: SubscriptionGroupId,
    pub email: String,
    pub issued_at_ms: i64,
}

/// Issues and verifies double opt-in confirmation tokens (HMAC-SHA256, expiring).
#[derive(Debug, Clone)]
pub struct DoubleOptInSigner {
    key: SigningKey,
    max_age_ms: i64,
}

impl DoubleOptInSigner {
    /// A signer whose tokens expire after `max_age_ms`.
    pub fn new(key: SigningKey, max_age_ms: i64) -> DoubleOptInSigner {
        DoubleOptInSigner { key, max_age_ms }
    }

    /// The token to put in the confirmation link. Fields must not contain `\n`.
    pub fn issue(&self, claims: &DoubleOptInClaims) -> Result<String, DeliveryError> {
        if claims.profile_id.contains('\n') || claims.email.contains('\n') {
            return Err(DeliveryError::InvalidRecipient {
                value: claims.email.clone(),
                reason: "contains a line break",
            });
        }
        let payload = format!(
            "doi1\n{}\n{}\n{}\n{}",
            claims.profile_id, claims.group, claims.email, claims.issued_at_ms
        );
        let tag = self.key.tag(&[payload.as_bytes()]);
        Ok(format!(
            "{}.{}",
            b64url(payload.as_bytes()),
            b64url(&tag[..16])
        ))
    }

    /// Verifies a token at `now_ms` (signature in constant time, then age).
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<DoubleOptInClaims, DeliveryError> {
        let (payload_b64, tag_b64) = token
            .split_once('.')
            .ok_or(DeliveryError::InvalidSignature("malformed token"))?;
        let payload =
            b64url_decode(payload_b64).ok_or(DeliveryError::InvalidSignature("malformed token"))?;
        let tag =
            b64url_decode(tag_b64).ok_or(DeliveryError::InvalidSignature("malformed token"))?;
        if !self.key.verify(&[&payload], &tag) {
            return Err(DeliveryError::InvalidSignature("signature does not match"));
        }
        let text = String::from_utf8(payload)
            .map_err(|_| DeliveryError::InvalidSignature("malformed token"))?;
        let fields: Vec<&str> = text.split('\n').collect();
        let [version, profile_id, group, email, issued_at] = fields.as_slice() else {
            return Err(DeliveryError::InvalidSignature("malformed token"));
        };
        if *version != "doi1" {
            return Err(DeliveryError::InvalidSignature("unknown token version"));
        }
        let group = group
            .parse()
            .map_err(|_| DeliveryError::InvalidSignature("malformed token"))?;
        let issued_at_ms: i64 = issued_at
            .parse()
            .map_err(|_| DeliveryError::InvalidSignature("malformed token"))?;
        if now_ms.saturating_sub(issued_at_ms) > self.max_age_ms {
            return Err(DeliveryError::InvalidSignature(
                "the confirmation link has expired",
            ));
        }
        Ok(DoubleOptInClaims {
            profile_id: (*profile_id).to_owned(),
            group,
            email: (*email).to_owned(),
            issued_at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rules() -> ConsentRules {
        ConsentRules {
            groups: vec![
                SubscriptionGroup {
                    id: 1,
                    name: "Newsletter".into(),
                    channel: Channel::Email,
                    requirement: ConsentRequirement::OptIn,
                    double_opt_in: true,
                },
                SubscriptionGroup {
                    id: 2,
                    name: "Product updates".into(),
                    channel: Channel::Email,
                    requirement: ConsentRequirement::NotOptedOut,
                    double_opt_in: false,
                },
            ],
            ..ConsentRules::default()
        }
        .validated()
        .unwrap()
    }

    #[test]
    fn the_latest_change_wins_whatever_the_arrival_order() {
        let mut state = ConsentState::default();
        let email = ConsentTarget::Channel(Channel::Email);
        assert!(state.apply(ConsentChange::OptOut { target: email }, 2_000));
        assert!(
            !state.apply(ConsentChange::OptIn { target: email }, 1_000),
            "an older opt-in is ignored"
        );
        assert_eq!(
            state.status(email),
            ConsentStatus::OptedOut { at_ms: 2_000 }
        );
        assert!(state.apply(ConsentChange::OptIn { target: email }, 3_000));
        assert_eq!(state.status(email), ConsentStatus::OptedIn { at_ms: 3_000 });
    }

    #[test]
    fn send_time_check_follows_the_rules() {
        let rules = rules();
        let mut state = ConsentState::default();
        let marketing = MessageCategory::Marketing;
        assert_eq!(state.check(&rules, Channel::Email, marketing, None), Ok(()));
        assert_eq!(
            state.check(&rules, Channel::Sms, marketing, None),
            Err(ConsentRefusal::ChannelNotOptedIn {
                channel: Channel::Sms
            }),
            "marketing SMS needs an opt-in"
        );
        assert_eq!(
            state.check(&rules, Channel::Sms, MessageCategory::Transactional, None),
            Ok(())
        );
        assert_eq!(
            state.check(&rules, Channel::Email, marketing, Some(2)),
            Ok(())
        );
        assert_eq!(
            state.check(&rules, Channel::Email, marketing, Some(1)),
            Err(ConsentRefusal::GroupNotOptedIn { group: 1 })
        );
        state.apply(
            ConsentChange::RequestConfirmation {
                target: ConsentTarget::Group(1),
            },
            10,
        );
        assert_eq!(
            state.check(&rules, Channel::Email, marketing, Some(1)),
            Err(ConsentRefusal::GroupPendingConfirmation { group: 1 })
        );
        state.apply(
            ConsentChange::OptIn {
                target: ConsentTarget::Group(1),
            },
            20,
        );
        assert_eq!(
            state.check(&rules, Channel::Email, marketing, Some(1)),
            Ok(())
        );
        assert_eq!(
            state.check(
                &rules,
                Channel::Sms,
                MessageCategory::Transactional,
                Some(1)
            ),
            Err(ConsentRefusal::UnknownGroup { group: 1 }),
            "an email group cannot carry an SMS"
        );
        state.apply(ConsentChange::GlobalUnsubscribe, 30);
        assert_eq!(
            state.check(&rules, Channel::Email, MessageCategory::Transactional, None),
            Err(ConsentRefusal::GlobalUnsubscribe),
            "transactional messages never bypass consent"
        );
        state.apply(ConsentChange::GlobalResubscribe, 40);
        assert_eq!(
            state.check(&rules, Channel::Email, marketing, Some(1)),
            Ok(())
        );
    }

    #[test]
    fn rules_are_validated() {
        let mut duplicated = rules();
        duplicated.groups.push(duplicated.groups[0].clone());
        assert!(duplicated.validated().is_err());
        let mut sms_double_opt_in = rules();
        sms_double_opt_in.groups[0].channel = Channel::Sms;
        assert!(sms_double_opt_in.validated().is_err());
    }

    #[test]
    fn double_opt_in_tokens_verify_expire_and_resist_tampering() {
        let signer = DoubleOptInSigner::new(SigningKey::new(vec![3; 32], "k").unwrap(), 86_400_000);
        let claims = DoubleOptInClaims {
            profile_id: "prof_1".into(),
            group: 1,
            email: "ann@example.com".into(),
            issued_at_ms: 1_000,
        };
        let token = signer.issue(&claims).unwrap();
        assert_eq!(signer.verify(&token, 2_000).unwrap(), claims);
        assert!(
            signer.verify(&token, 1_000 + 86_400_001).is_err(),
            "expired"
        );
        let other = DoubleOptInSigner::new(SigningKey::new(vec![4; 32], "k").unwrap(), 86_400_000);
        assert!(other.verify(&token, 2_000).is_err(), "another key");
        let mut tampered = token.clone().into_bytes();
        tampered[2] = if tampered[2] == b'A' { b'B' } else { b'A' };
        assert!(signer
            .verify(std::str::from_utf8(&tampered).unwrap(), 2_000)
            .is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_tokens_never_panic(token in ".{0,200}") {
            let signer = DoubleOptInSigner::new(SigningKey::new(vec![3; 32], "k").unwrap(), 1);
            prop_assert!(signer.verify(&token, 0).is_err());
        }
    }
}

#[cfg(test)]
mod absorb_tests {
    use super::*;

    #[test]
    fn a_merge_keeps_the_later_decision_per_channel_and_group() {
        let mut survivor = ConsentState::default();
        survivor.apply(
            ConsentChange::OptIn {
                target: ConsentTarget::Channel(Channel::Email),
            },
            10,
        );
        survivor.apply(
            ConsentChange::OptOut {
                target: ConsentTarget::Group(7),
            },
            50,
        );
        let mut absorbed = ConsentState::default();
        absorbed.apply(
            ConsentChange::OptOut {
                target: ConsentTarget::Channel(Channel::Email),
            },
            20,
        );
        absorbed.apply(
            ConsentChange::OptIn {
                target: ConsentTarget::Group(7),
            },
            40,
        );
        absorbed.apply(
            ConsentChange::OptIn {
                target: ConsentTarget::Channel(Channel::Sms),
            },
            5,
        );
        absorbed.apply(ConsentChange::GlobalUnsubscribe, 30);
        survivor.absorb(&absorbed);
        assert_eq!(
            survivor.status(ConsentTarget::Channel(Channel::Email)),
            ConsentStatus::OptedOut { at_ms: 20 }
        );
        assert_eq!(
            survivor.status(ConsentTarget::Group(7)),
            ConsentStatus::OptedOut { at_ms: 50 }
        );
        assert_eq!(
            survivor.status(ConsentTarget::Channel(Channel::Sms)),
            ConsentStatus::OptedIn { at_ms: 5 }
        );
        assert!(survivor.is_globally_unsubscribed());
    }
}
