//! Cairn's pure logic: no I/O, no clock reads.
//!
//! Everything here is a function of its arguments, so it is tested without a store or a network:
//! - [`segment`] turns a Segment tracking-API message into a [`cairn_model::NormalizedMessage`] or a
//!   [`segment::Rejection`] with a stable error code;
//! - [`timestamps`] parses ISO-8601 and applies Segment's clock-skew correction;
//! - [`traits`] merges traits onto a profile, per field, latest event time wins;
//! - [`identity`] plans how a message's identifiers attach to existing profiles (links and merges).

pub mod identity;
pub mod records;
pub mod segment;
pub mod timestamps;
pub mod traits;
