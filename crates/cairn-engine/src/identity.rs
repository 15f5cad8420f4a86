//! The identity step of the apply path: the seam where Customer 360 plugs in.
//!
//! An [`IdentityResolver`] looks up the profiles a message's identifiers point to and returns a
//! [`Plan`]. [`ExactIdentity`] matches `userId`, `email` and `anonymousId` exactly and treats an alias's
//! `previousId` as a user id if one is known, else as an anonymous id.

use cairn_core::identity::{plan, Found, Plan, ProfileHead};
use cairn_model::{Identifier, IdentifierKind, MessageKind, WorkspaceId};

/// What identity resolution sees of a message.
#[derive(Debug, Clone, Copy)]
pub struct IdentityInput<'a> {
    pub kind: MessageKind,
    /// The message's identifiers in priority order (user id, email, anonymous id).
    pub identifiers: &'a [Identifier],
    /// For `alias`: the id the user was known by before.
    pub previous_id: Option<&'a str>,
}

/// Decides which profile a message belongs to. Must be deterministic: the same inputs in the same
/// order give the same plans (the state is rebuilt by replaying the log).
pub trait IdentityResolver: Send {
    /// `lookup` answers which (surviving) profile an identifier points to right now.
    fn resolve(
        &mut self,
        workspace: &WorkspaceId,
        input: &IdentityInput<'_>,
        lookup: &mut dyn FnMut(&Identifier) -> Option<ProfileHead>,
    ) -> Option<Plan>;
}

/// Exact matching on the message's identifiers.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExactIdentity;

impl IdentityResolver for ExactIdentity {
    fn resolve(
        &mut self,
        workspace: &WorkspaceId,
        input: &IdentityInput<'_>,
        lookup: &mut dyn FnMut(&Identifier) -> Option<ProfileHead>,
    ) -> Option<Plan> {
        let mut found: Vec<Found> = input
            .identifiers
            .iter()
            .map(|identifier| Found {
                identifier: identifier.clone(),
                profile: lookup(identifier),
            })
            .collect();
        let mut aliased = None;
        if let (MessageKind::Alias, Some(previous)) = (input.kind, input.previous_id) {
            let as_user = Identifier::new(IdentifierKind::UserId, previous);
            let previous_found = match lookup(&as_user) {
                Some(profile) => Found {
                    identifier: as_user,
                    profile: Some(profile),
                },
                None => {
                    let as_anonymous = Identifier::new(IdentifierKind::AnonymousId, previous);
                    Found {
                        profile: lookup(&as_anonymous),
                        identifier: as_anonymous,
                    }
                }
            };
            aliased = Some(previous_found.identifier.clone());
            if !found
                .iter()
                .any(|f| f.identifier == previous_found.identifier)
            {
                found.push(previous_found);
            }
        }
        plan(workspace, aliased.as_ref(), &found)
    }
}
