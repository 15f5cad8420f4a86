//! Cairn journeys: documents, validation, the pure runtime, per-profile orchestration and test mode.
//!
//! ```text
//! JSON/YAML ─parse─► JourneyDocument ─validate(Catalog)─► CompiledJourney (steps by index, conditions
//!   compiled, event index) ─► apply(journey, enrollment, input, context) ─► Effects
//!                             handle(journeys, profile's enrollments, input) ─► Effects   (engine and simulator)
//! ```
//!
//! The crate is pure: no I/O and no clock reads; time always comes with the input.

pub mod cached_json;
pub mod catalog;
pub mod compiled;
pub mod cron_schedule;
pub mod document;
pub mod duration;
pub mod effects;
pub mod engagement;
pub mod enrollment;
pub mod event;
pub mod explain;
pub mod ids;
pub mod journey_name;
pub mod json_text;
pub mod local_time;
pub mod merge;
pub mod orchestrate;
pub mod parse;
pub mod profile_journeys;
pub mod profile_path;
pub mod random_split;
pub mod runtime;
pub mod simulate;
pub mod validate;

pub use catalog::{Catalog, CatalogDocument};
pub use compiled::{CompiledJourney, JourneyIndex};
pub use cron_schedule::{next_fire_after, CronSchedule};
pub use document::{AudienceDocument, JourneyDocument};
pub use effects::Effects;
pub use enrollment::{EndReason, Enrollment, Status};
pub use event::{DeliveryResult, Event};
pub use ids::{EnrollmentId, JourneyKey, MessageId, StepIndex};
pub use journey_name::JourneyName;
pub use merge::merge_profiles;
pub use orchestrate::{handle, JourneySet, ProfileInput, ProfileJourneys, SequentialIds};
pub use parse::{parse_audience, parse_journey, Format, ParseError};
pub use runtime::{apply, Context, EventHistory, Input, LiveJourney, NoHistory};
pub use simulate::{parse_script, simulate, ScriptItem, Simulation, SimulationReport};
pub use validate::{validate, ValidationError};
