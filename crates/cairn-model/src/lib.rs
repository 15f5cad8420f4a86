//! Cairn's shared vocabulary.
//!
//! Every other crate depends on this one and it depends on no other Cairn crate. It holds plain data:
//! workspace and profile ids, identifiers, the virtual partition function, the shape of stored events
//! and profiles, and the single table of stable error codes ([`ErrorCode`]) shared by the API, the CLI
//! and the docs.

pub mod error_code;
pub mod event;
pub mod ids;
pub mod partition;
pub mod profile;

pub use error_code::ErrorCode;
pub use event::{MessageKind, NormalizedMessage, StoredEvent};
pub use ids::{Identifier, IdentifierKind, ProfileId, WorkspaceId};
pub use partition::{PartitionId, PARTITION_COUNT};
pub use profile::{Profile, TraitSet};
