//! Cairn journeys: documents, validation, the pure runtime and test mode.

pub mod cron_schedule;
pub mod document;
pub mod duration;
pub mod local_time;
pub mod parse;
