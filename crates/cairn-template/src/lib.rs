//! Cairn's message templates.
//!
//! A template ([`TemplateDocument`]) belongs to one channel and has one variant per locale (subject,
//! HTML or MJML, text for email; body for SMS; title and body for push; a JSON body for webhooks).
//! Publishing ([`TemplateHistory::publish`]) validates every variant against a [`VariableSchema`] —
//! syntax errors with line and column, unknown variables, invalid MJML — and freezes an immutable,
//! numbered version. A [`CompiledTemplate`] renders strictly: a value a template prints but the profile
//! lacks is an error, never an empty string (use the `fallback` filter for optional values).
//!
//! Rendering is pure: the profile, event, journey and federated data, the locale and the customer's
//! time zone come in a [`RenderContext`]. HTML parts are auto-escaped, text parts are not, JSON parts
//! escape values as JSON. See `docs/channels.md` for the variables and filters.

pub mod compile;
pub mod error;
pub mod filters;
pub mod locale;
pub mod mjml;
pub mod model;
pub mod schema;

pub use compile::{
    compile, preview, CompiledTemplate, FederatedReads, RenderContext, RenderedMessage,
};
pub use error::{TemplateError, TemplateIssue};
pub use model::{
    PublishedTemplate, TemplateChannel, TemplateContent, TemplateDocument, TemplateHistory,
};
pub use schema::VariableSchema;
