//! Identity planning: how a message's identifiers attach to profiles.
//!
//! This is the seam that the Customer 360 work replaces with match rules; here it is exact matching on
//! `userId`, `email` and `anonymousId` with one rule of merge protection: a profile holds at most one
//! `userId`. Given the identifiers of a message and the profile (if any) each already points to, [`plan`]
//! decides the target profile, which profiles merge into it and which identifiers get linked.
//!
//! Rules (documented in ARCHITECTURE.md):
//! - A message with a `userId` belongs to that user's profile (created if new). Other profiles found
//!   through the message's other identifiers merge into it unless they hold a different `userId`; such
//!   a conflicting identifier is left where it is (a shared device must not fuse two users).
//! - A message without a `userId` belongs to the oldest profile its identifiers point to; the others
//!   merge into it under the same `userId` rule.
//! - An explicit `alias` is the exception: the profile its `previousId` points to merges even if it holds
//!   another `userId` (that is how a user id is changed); the alias's `userId` becomes the profile's
//!   primary user id and both user ids keep resolving to it.
//! - When profiles merge, the oldest (lowest rank) keeps its id: ids are stable through merges.
//! - A new profile's id is derived from the first identifier in priority order (user id, email,
//!   anonymous id), so replaying the same input yields the same ids.

use cairn_model::{Identifier, IdentifierKind, ProfileId, WorkspaceId};

/// What the store knows about a profile that an identifier points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileHead {
    pub id: ProfileId,
    /// Creation order: lower is older.
    pub rank: i64,
    pub user_id: Option<String>,
}

/// One identifier of the message and the profile it currently points to, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub identifier: Identifier,
    pub profile: Option<ProfileHead>,
}

/// Where the message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Existing(ProfileHead),
    New {
        id: ProfileId,
        user_id: Option<String>,
    },
}

impl Target {
    pub fn id(&self) -> &ProfileId {
        match self {
            Target::Existing(head) => &head.id,
            Target::New { id, .. } => id,
        }
    }
}

/// The decision for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub target: Target,
    /// Profiles to merge into the target, oldest first.
    pub merge: Vec<ProfileHead>,
    /// Identifiers that pointed nowhere and now point to the target.
    pub link: Vec<Identifier>,
    /// Identifiers left on another profile because merging it would give a profile two user ids.
    pub refused: Vec<Identifier>,
    /// The primary user id of the resulting profile.
    pub user_id: Option<String>,
}

/// Plans the resolution of one message. `found` lists the message's identifiers in priority order;
/// `aliased` (second argument) is the identifier an explicit `alias` names as the same person (its profile always merges).
/// Returns `None` when `found` is empty (validation guarantees it never is).
pub fn plan(
    workspace: &WorkspaceId,
    aliased: Option<&Identifier>,
    found: &[Found],
) -> Option<Plan> {
    let first = found.first()?;
    let message_user_id = found
        .iter()
        .find(|f| f.identifier.kind == IdentifierKind::UserId)
        .map(|f| f.identifier.value.clone());
    let anchor = found
        .iter()
        .find(|f| f.identifier.kind == IdentifierKind::UserId)
        .and_then(|f| f.profile.clone());

    let mut candidates: Vec<&ProfileHead> =
        found.iter().filter_map(|f| f.profile.as_ref()).collect();
    candidates.sort_by(|a, b| a.rank.cmp(&b.rank).then_with(|| a.id.cmp(&b.id)));
    candidates.dedup_by(|a, b| a.id == b.id);

    let aliased_profile = aliased.and_then(|aliased| {
        found
            .iter()
            .find(|f| &f.identifier == aliased)
            .and_then(|f| f.profile.as_ref())
            .map(|p| p.id)
    });
    let mut group_user_id = message_user_id.clone();
    let mut group: Vec<ProfileHead> = anchor.iter().cloned().collect();
    let mut refused_profiles = Vec::new();
    for candidate in candidates {
        if group.iter().any(|member| member.id == candidate.id) {
            continue;
        }
        let explicit = aliased_profile.as_ref() == Some(&candidate.id);
        match (&group_user_id, &candidate.user_id) {
            (Some(_), Some(_)) if explicit => group.push(candidate.clone()),
            (Some(ours), Some(theirs)) if ours != theirs => refused_profiles.push(candidate.id),
            (None, Some(theirs)) => {
                group_user_id = Some(theirs.clone());
                group.push(candidate.clone());
            }
            _ => group.push(candidate.clone()),
        }
    }
    group.sort_by(|a, b| a.rank.cmp(&b.rank).then_with(|| a.id.cmp(&b.id)));

    let refused = found
        .iter()
        .filter(|f| {
            f.profile
                .as_ref()
                .is_some_and(|p| refused_profiles.contains(&p.id))
        })
        .map(|f| f.identifier.clone())
        .collect();
    let link = found
        .iter()
        .filter(|f| f.profile.is_none())
        .map(|f| f.identifier.clone())
        .collect();
    let user_id = group_user_id;
    let mut members = group.into_iter();
    let target = match members.next() {
        Some(oldest) => Target::Existing(oldest),
        None => Target::New {
            id: ProfileId::derive(workspace, &first.identifier),
            user_id: message_user_id,
        },
    };
    let user_id = match &target {
        Target::New { user_id, .. } => user_id.clone(),
        Target::Existing(_) => user_id,
    };
    Some(Plan {
        target,
        merge: members.collect(),
        link,
        user_id,
        refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> WorkspaceId {
        WorkspaceId::new("acme")
    }
    fn head(id: &str, rank: i64, user_id: Option<&str>) -> ProfileHead {
        ProfileHead {
            id: ProfileId(xxhash_rust::xxh3::xxh3_128(id.as_bytes())),
            rank,
            user_id: user_id.map(String::from),
        }
    }
    fn user(value: &str) -> Identifier {
        Identifier::new(IdentifierKind::UserId, value)
    }
    fn anon(value: &str) -> Identifier {
        Identifier::new(IdentifierKind::AnonymousId, value)
    }
    fn found(identifier: Identifier, profile: Option<ProfileHead>) -> Found {
        Found {
            identifier,
            profile,
        }
    }

    #[test]
    fn unknown_identifiers_create_a_profile_with_a_derived_id() {
        let plan = plan(
            &ws(),
            None,
            &[found(user("u1"), None), found(anon("a1"), None)],
        )
        .expect("plan");
        assert_eq!(
            plan.target,
            Target::New {
                id: ProfileId::derive(&ws(), &user("u1")),
                user_id: Some("u1".into())
            }
        );
        assert_eq!(plan.link, vec![user("u1"), anon("a1")]);
        assert!(plan.merge.is_empty());
    }

    #[test]
    fn identifying_an_anonymous_visitor_links_the_user_id_to_their_profile() {
        let visitor = head("p_anon", 1, None);
        let plan = plan(
            &ws(),
            None,
            &[
                found(user("u1"), None),
                found(anon("a1"), Some(visitor.clone())),
            ],
        )
        .expect("plan");
        assert_eq!(plan.target, Target::Existing(visitor));
        assert_eq!(plan.link, vec![user("u1")]);
    }

    #[test]
    fn two_profiles_merge_into_the_oldest() {
        let older = head("p_old", 1, None);
        let newer = head("p_new", 7, Some("u1"));
        let plan = plan(
            &ws(),
            None,
            &[
                found(user("u1"), Some(newer.clone())),
                found(anon("a1"), Some(older.clone())),
            ],
        )
        .expect("plan");
        assert_eq!(plan.target, Target::Existing(older));
        assert_eq!(plan.merge, vec![newer]);
    }

    #[test]
    fn a_profile_never_gets_two_user_ids() {
        let shared_device = head("p_u1", 1, Some("u1"));
        let plan = plan(
            &ws(),
            None,
            &[
                found(user("u2"), None),
                found(anon("a1"), Some(shared_device)),
            ],
        )
        .expect("plan");
        assert_eq!(
            plan.target,
            Target::New {
                id: ProfileId::derive(&ws(), &user("u2")),
                user_id: Some("u2".into())
            }
        );
        assert_eq!(plan.refused, vec![anon("a1")]);
        assert_eq!(plan.link, vec![user("u2")]);
    }

    #[test]
    fn without_a_user_id_only_compatible_profiles_merge() {
        let p1 = head("p1", 1, Some("u1"));
        let p2 = head("p2", 2, Some("u2"));
        let p3 = head("p3", 3, None);
        let email = Identifier::email("a@b.c");
        let plan = plan(
            &ws(),
            None,
            &[
                found(email.clone(), Some(p2.clone())),
                found(anon("a1"), Some(p1.clone())),
                found(anon("a2"), Some(p3.clone())),
            ],
        );
        // The anonymous-id lookups are listed after the email here only to show ordering by rank.
        let plan = plan.expect("plan");
        assert_eq!(plan.target, Target::Existing(p1));
        assert_eq!(plan.merge, vec![p3]);
        assert_eq!(plan.refused, vec![email]);
    }

    #[test]
    fn an_explicit_alias_merges_even_across_user_ids() {
        let old = head("p_old", 1, Some("old-1"));
        let new = head("p_new", 2, Some("new-1"));
        let previous = user("old-1");
        let found = [
            found(user("new-1"), Some(new.clone())),
            found(previous.clone(), Some(old.clone())),
        ];
        let plan = plan(&ws(), Some(&previous), &found).expect("plan");
        assert_eq!(plan.target, Target::Existing(old));
        assert_eq!(plan.merge, vec![new]);
        assert_eq!(
            plan.user_id.as_deref(),
            Some("new-1"),
            "the alias's user id becomes primary"
        );
        assert!(plan.refused.is_empty());
    }
}
