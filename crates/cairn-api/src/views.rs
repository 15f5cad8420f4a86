//! How journeys and audiences look in API answers: the engine's records rendered as JSON with
//! RFC 3339 times. Pure functions of the records.

use cairn_engine::journeys::{AudienceRecord, JourneyRecord, JourneyStatus, VersionRecord};
use cairn_journey::document::Entry;
use cairn_journey::JourneyDocument;
use chrono::DateTime;
use serde_json::{json, Value};

/// An instant in milliseconds as RFC 3339 (UTC, milliseconds).
pub fn time(ms: i64) -> Value {
    DateTime::from_timestamp_millis(ms)
        .map(|at| Value::String(cairn_core::timestamps::format(at)))
        .unwrap_or(Value::Null)
}

/// `event`, `audience`, `schedule` or `api`.
pub fn entry_kind(document: &JourneyDocument) -> &'static str {
    match document.entry {
        Entry::Event(_) => "event",
        Entry::Audience(_) => "audience",
        Entry::Schedule(_) => "schedule",
        Entry::Api(_) => "api",
    }
}

/// The status as its API string.
pub fn status_name(status: JourneyStatus) -> &'static str {
    match status {
        JourneyStatus::Draft => "draft",
        JourneyStatus::Published => "published",
        JourneyStatus::Paused => "paused",
        JourneyStatus::Stopped => "stopped",
        JourneyStatus::Archived => "archived",
    }
}

/// Whether the draft holds changes not yet published (a never-published draft does).
pub fn has_unpublished_changes(record: &JourneyRecord) -> bool {
    match (&record.draft, record.latest()) {
        (Some(draft), Some(latest)) => *draft != latest.document,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The document that describes the journey now: the draft, else the latest version.
fn current_document(record: &JourneyRecord) -> Option<&JourneyDocument> {
    record
        .draft
        .as_ref()
        .or_else(|| record.latest().map(|version| &version.document))
}

/// One line of the journey list.
pub fn journey_summary(record: &JourneyRecord) -> Value {
    let document = current_document(record);
    let mut summary = json!({
        "id": record.id,
        "name": document.map(|document| document.name.as_str()),
        "description": document.map(|document| document.description.as_str()),
        "status": status_name(record.status),
        "entry": document.map(entry_kind),
        "latest_version": record.latest().map(|version| version.version),
        "unpublished_changes": has_unpublished_changes(record),
        "created_at": time(record.created_at_ms),
        "updated_at": time(record.updated_at_ms),
    });
    if let Some(reason) = &record.stop_reason {
        summary["stop_reason"] = json!(reason);
    }
    summary
}

/// One version without its document.
pub fn version_summary(version: &VersionRecord) -> Value {
    let mut summary = json!({
        "version": version.version,
        "published_at": time(version.published_at_ms),
    });
    if let Some(at) = version.next_fire_ms {
        summary["next_fire_at"] = time(at);
    }
    summary
}

/// A journey with its draft document and its versions.
pub fn journey_detail(record: &JourneyRecord) -> Value {
    let mut detail = journey_summary(record);
    detail["draft"] = serde_json::to_value(&record.draft).unwrap_or_default();
    detail["versions"] = record.versions.iter().map(version_summary).collect();
    detail
}

/// One version with its document.
pub fn version_detail(record: &JourneyRecord, version: &VersionRecord) -> Value {
    let mut detail = version_summary(version);
    detail["journey"] = json!(record.id);
    detail["latest"] = json!(record.latest().map(|latest| latest.version) == Some(version.version));
    detail["document"] = serde_json::to_value(&version.document).unwrap_or_default();
    detail
}

/// An audience with its member count.
pub fn audience_view(record: &AudienceRecord) -> Value {
    json!({
        "id": record.document.id,
        "name": record.document.name,
        "description": record.document.description,
        "condition": record.document.condition,
        "members": record.members,
        "created_at": time(record.created_at_ms),
        "updated_at": time(record.updated_at_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_journey::{parse_journey, Format};

    fn document(name: &str) -> JourneyDocument {
        parse_journey(
            &format!("id: j\nname: {name}\nentry: {{api: {{}}}}\nstart: x\nsteps: [{{id: x, type: exit}}]"),
            Format::Yaml,
        )
        .expect("document")
    }

    fn record(draft: &str, versions: &[&str]) -> JourneyRecord {
        JourneyRecord {
            id: "j".into(),
            status: if versions.is_empty() {
                JourneyStatus::Draft
            } else {
                JourneyStatus::Published
            },
            draft: Some(document(draft)),
            created_at_ms: 0,
            updated_at_ms: 1_000,
            versions: versions
                .iter()
                .enumerate()
                .map(|(index, name)| VersionRecord {
                    version: index as u32 + 1,
                    key: index as u32,
                    document: document(name),
                    published_at_ms: 500,
                    next_fire_ms: None,
                })
                .collect(),
            stop_reason: None,
        }
    }

    #[test]
    fn unpublished_changes_compare_the_draft_with_the_latest_version() {
        assert!(has_unpublished_changes(&record("A", &[])));
        assert!(!has_unpublished_changes(&record("B", &["A", "B"])));
        assert!(has_unpublished_changes(&record("C", &["A", "B"])));
    }

    #[test]
    fn a_summary_names_the_status_entry_and_latest_version() {
        let summary = journey_summary(&record("B", &["A", "B"]));
        assert_eq!(summary["status"], "published");
        assert_eq!(summary["entry"], "api");
        assert_eq!(summary["latest_version"], 2);
        assert_eq!(summary["name"], "B");
        assert_eq!(summary["updated_at"], "1970-01-01T00:00:01.000Z");
        let detail = journey_detail(&record("B", &["A", "B"]));
        assert_eq!(detail["versions"].as_array().map(Vec::len), Some(2));
        assert_eq!(detail["draft"]["name"], "B");
    }
}
