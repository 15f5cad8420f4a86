//! Journeys in the engine: the operator commands, each workspace's registry of journeys and audiences,
//! the timer index, and the event history conditions count. The runtime itself is pure and lives in
//! `cairn-journey`; [`crate::state`] feeds it and keeps its effects.

pub mod command;
pub(crate) mod history;
pub(crate) mod registry;
pub(crate) mod timers;

pub use command::{Command, CommandOutcome, ProfileRef};
pub use registry::{
    AudienceRecord, JourneyRecord, JourneyStatus, StepCounter, VersionCounters, VersionRecord,
};
