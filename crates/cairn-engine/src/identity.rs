//! The identity step of the write path: the seam where Customer 360 plugs in.
//!
//! An [`IdentityResolver`] looks up the profiles a message's identifiers point to and returns a
//! [`Plan`]. [`ExactIdentity`] matches `userId`, `email` and `anonymousId` exactly and treats an alias's
//! `previousId` as a user id if one is known, else as an anonymous id.

use cairn_core::identity::{plan, Found, Plan};
use cairn_model::{Identifier, IdentifierKind, MessageKind, NormalizedMessage, WorkspaceId};
use cairn_storage::StorageResult;

/// Decides which profile a message belongs to.
pub trait IdentityResolver: Send {
    /// `lookup` answers which profile an identifier points to right now (inside the transaction).
    fn resolve(
        &mut self,
        workspace: &WorkspaceId,
        message: &NormalizedMessage,
        lookup: &mut dyn FnMut(
            &Identifier,
        ) -> StorageResult<Option<cairn_core::identity::ProfileHead>>,
    ) -> StorageResult<Option<Plan>>;
}

/// Exact matching on the message's identifiers.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExactIdentity;

impl IdentityResolver for ExactIdentity {
    fn resolve(
        &mut self,
        workspace: &WorkspaceId,
        message: &NormalizedMessage,
        lookup: &mut dyn FnMut(
            &Identifier,
        ) -> StorageResult<Option<cairn_core::identity::ProfileHead>>,
    ) -> StorageResult<Option<Plan>> {
        let mut found = Vec::with_capacity(message.identifiers.len() + 1);
        for identifier in &message.identifiers {
            found.push(Found {
                identifier: identifier.clone(),
                profile: lookup(identifier)?,
            });
        }
        let mut aliased = None;
        if let (MessageKind::Alias, Some(previous)) = (message.kind, &message.previous_id) {
            let as_user = Identifier::new(IdentifierKind::UserId, previous.clone());
            let as_anonymous = Identifier::new(IdentifierKind::AnonymousId, previous.clone());
            let previous_found = match lookup(&as_user)? {
                Some(profile) => Found {
                    identifier: as_user,
                    profile: Some(profile),
                },
                None => Found {
                    profile: lookup(&as_anonymous)?,
                    identifier: as_anonymous,
                },
            };
            aliased = Some(previous_found.identifier.clone());
            if !found
                .iter()
                .any(|f| f.identifier == previous_found.identifier)
            {
                found.push(previous_found);
            }
        }
        Ok(plan(workspace, aliased.as_ref(), &found))
    }
}
