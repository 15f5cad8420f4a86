//! The one table of stable error codes.
//!
//! Every error that leaves Cairn (an HTTP response, a CLI failure, a rejected import line) carries one of
//! these codes. The code string never changes once released; the HTTP status is part of the contract.

use serde::Serialize;

macro_rules! error_codes {
    ($( $variant:ident => ($code:literal, $status:literal, $meaning:literal), )*) => {
        /// A stable, documented error code with its HTTP status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode { $( $variant, )* }

        impl ErrorCode {
            /// Every code, in table order (used to render docs and to pre-register metrics).
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The stable snake_case string sent to clients.
            pub fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $code, )* }
            }

            /// The code whose string is `name` (how a code crosses a crate that keeps to strings).
            pub fn from_name(name: &str) -> Option<ErrorCode> {
                match name { $( $code => Some(ErrorCode::$variant), )* _ => None }
            }

            /// The HTTP status that goes with this code.
            pub fn http_status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status, )* }
            }

            /// One line saying when the code is returned.
            pub fn meaning(self) -> &'static str {
                match self { $( ErrorCode::$variant => $meaning, )* }
            }
        }
    };
}

error_codes! {
    InvalidJson => ("invalid_json", 400, "the body is not valid JSON, or nests deeper than 128 levels"),
    InvalidUtf8 => ("invalid_utf8", 400, "the body is not valid UTF-8"),
    InvalidBody => ("invalid_body", 400, "the JSON is valid but does not have the expected shape"),
    InvalidField => ("invalid_field", 400, "a field has the wrong type (for example `properties` is not an object)"),
    InvalidType => ("invalid_type", 400, "a batch item has a missing or unknown `type`"),
    MissingIdentity => ("missing_identity", 400, "the message has neither `userId` nor `anonymousId`"),
    MissingEvent => ("missing_event", 400, "a track message has no `event` name"),
    MissingPreviousId => ("missing_previous_id", 400, "an alias message has no `previousId`"),
    MissingGroupId => ("missing_group_id", 400, "a group message has no `groupId`"),
    InvalidTimestamp => ("invalid_timestamp", 400, "a timestamp is not ISO-8601 / RFC 3339"),
    EmptyBatch => ("empty_batch", 400, "a batch holds no messages"),
    InvalidQuery => ("invalid_query", 400, "a query parameter is missing, unknown or malformed"),
    InvalidConfig => ("invalid_config", 400, "the configuration file or environment is invalid"),
    InvalidInput => ("invalid_input", 400, "an import file or command-line argument is invalid"),
    InvalidJourney => ("invalid_journey", 400, "a journey document is malformed or fails validation (every error is listed with its code, step and path)"),
    InvalidAudience => ("invalid_audience", 400, "an audience document is malformed or fails validation (every error is listed with its code and path)"),
    MissingWriteKey => ("missing_write_key", 401, "no write key in HTTP Basic auth or in the body's `writeKey`"),
    InvalidWriteKey => ("invalid_write_key", 401, "the write key belongs to no workspace"),
    MissingApiToken => ("missing_api_token", 401, "no `Authorization: Bearer` token"),
    InvalidApiToken => ("invalid_api_token", 401, "the API token belongs to no workspace"),
    ProfileNotFound => ("profile_not_found", 404, "no profile with that id or identifier in this workspace"),
    JourneyNotFound => ("journey_not_found", 404, "no journey (or no such version of it) with that id in this workspace"),
    AudienceNotFound => ("audience_not_found", 404, "no audience with that id in this workspace"),
    TemplateNotFound => ("template_not_found", 404, "no message template with that id (or no published version of it) in this workspace"),
    InvalidTrackingLink => ("invalid_tracking_link", 404, "an open-pixel, click or unsubscribe link's token is malformed, forged or signed by an unknown key; nothing was recorded"),
    DeliveryNotConfigured => ("delivery_not_configured", 404, "the server has no `[delivery]` settings for this route (tracking links, provider callback secrets)"),
    RouteNotFound => ("route_not_found", 404, "no such route"),
    MethodNotAllowed => ("method_not_allowed", 405, "the route exists but not with this HTTP method"),
    JourneyConflict => ("journey_conflict", 409, "the journey's status does not allow the change (pausing a draft, archiving a published journey, editing an archived one, creating one that exists); nothing changed"),
    EnrollmentRefused => ("enrollment_refused", 409, "the profile was not enrolled: the journey takes no entries (not published, paused, stopped) or its re-entry rule or entry filter refused the profile"),
    MessageTooLarge => ("message_too_large", 413, "one message is larger than 32 KB"),
    BatchTooLarge => ("batch_too_large", 413, "the request body is larger than 500 KB (after decompression)"),
    DocumentTooLarge => ("document_too_large", 413, "a journey or audience document is larger than 1 MiB"),
    UnsupportedMediaType => ("unsupported_media_type", 415, "the route does not accept the Content-Type (tracking: JSON or text/plain; journey and audience documents: JSON or YAML; other bodies: JSON)"),
    UnsupportedEncoding => ("unsupported_encoding", 415, "the Content-Encoding is neither gzip nor identity, or the gzip stream is corrupt"),
    Overloaded => ("overloaded", 429, "the ingest queue is full; retry after the `Retry-After` seconds"),
    DataDirLocked => ("data_dir_locked", 409, "another Cairn process is using the data directory"),
    StorageError => ("storage_error", 500, "the store failed; nothing from the request was committed"),
    Internal => ("internal", 500, "an unexpected internal error"),
    ShuttingDown => ("shutting_down", 503, "the server is shutting down; nothing from the request was committed"),
    NotReady => ("not_ready", 503, "the server is starting: its state is still catching up with the log"),
    InvalidTemplate => ("invalid_template", 400, "a message template has a syntax error, an unknown variable, invalid MJML or no variant for its default locale"),
    TemplateRenderFailed => ("template_render_failed", 422, "a template could not be rendered for this profile (a value it needs is missing or has the wrong type)"),
    InvalidRecipient => ("invalid_recipient", 400, "an email address, phone number (E.164) or device token is not valid"),
    InvalidChannelConfig => ("invalid_channel_config", 400, "a channel provider setting is missing or invalid"),
    InvalidSignature => ("invalid_signature", 403, "a tracking, unsubscribe, opt-in or webhook signature does not verify"),
    InvalidProviderCallback => ("invalid_provider_callback", 400, "a provider callback (bounce, complaint, status, inbound SMS) is not in a supported format"),
    FederatedSourceFailed => ("federated_source_failed", 502, "a federated attribute's source system could not be reached or rejected the request (no fallback applied)"),
    FederatedTimeout => ("federated_timeout", 504, "a federated attribute's source system did not answer within the attribute's timeout"),
    IdentityNotConfigured => ("identity_not_configured", 404, "the workspace has no Customer 360 configuration (`identity_rules` in its `[[workspaces]]` entry)"),
    SourceNotFound => ("source_not_found", 404, "no source with that name in the workspace's identity configuration"),
    RecordNotFound => ("record_not_found", 404, "no source record with that source and id in this workspace"),
    InvalidRecord => ("invalid_record", 400, "a source record is not a JSON object, has fields the source's mapping does not read, or has a value that does not read (id, time stamp, consent)"),
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Renders the error-code table as Markdown (used by `cairn error-codes` and kept in docs).
pub fn markdown_table() -> String {
    let mut out = String::from("| code | HTTP status | meaning |\n| --- | --- | --- |\n");
    for code in ErrorCode::ALL {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            code.as_str(),
            code.http_status(),
            code.meaning()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn an_unknown_name_is_no_code() {
        assert_eq!(ErrorCode::from_name("no_such_code"), None);
    }

    #[test]
    fn codes_are_unique_snake_case_and_statuses_are_errors() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate code {code}");
            assert!(code
                .as_str()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
            assert!((400..600).contains(&code.http_status()));
            assert_eq!(ErrorCode::from_name(code.as_str()), Some(*code));
        }
    }
}

#[cfg(test)]
mod docs_tests {
    #[test]
    fn the_documented_table_is_the_table_in_code() {
        let documented = include_str!("../../../docs/error-codes.md");
        assert!(
            documented.contains(&super::markdown_table()),
            "docs/error-codes.md is stale: regenerate it with `cairn error-codes`"
        );
    }
}
