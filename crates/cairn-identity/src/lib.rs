//! Customer 360 identity resolution.
//!
//! Source records are mapped onto one canonical model ([`record`], [`source`]), normalized
//! ([`normalize`]) and compared by administrator-configured match rules ([`ruleset`], [`compare`],
//! [`matching`]). Candidates come from in-memory indexes on normalized and phonetic keys
//! ([`candidates`]); merge protection ([`protection`]) keeps shared values, limits and cluster sizes
//! from fusing different people; matched records form clusters with stable unified ids
//! ([`resolver`], the real-time API the engine calls, deterministic and incremental). Batch runs
//! ([`batch`]) add sorted-neighbourhood candidates and optional Fellegi-Sunter linkage
//! ([`probabilistic`]); [`diff`] previews a rule change; [`reconcile`] builds the golden record with
//! provenance. The only I/O is in [`files`] (reading CSV/JSONL/Parquet sources, writing results).

pub mod batch;
pub mod compare;
pub mod compiled;
pub mod diff;
pub mod document;
pub mod error;
pub mod features;
pub mod files;
pub mod matching;
pub mod metrics;
pub mod normalize;
mod prehashed;
pub mod probabilistic;
pub mod protection;
pub mod reconcile;
pub mod record;
pub mod resolver;
pub mod ruleset;
pub mod source;
pub mod union_find;

pub use document::DocumentFormat;
pub use error::{IdentityError, Result};
pub use record::{BirthDate, CanonicalRecord, PostalAddress, RecordKey, SourceRecord};
pub use resolver::{Explanation, Resolution, Resolver, UnifiedId};
pub use ruleset::Ruleset;
pub use source::{SourceCatalog, SourceConfig, SourceKind};
