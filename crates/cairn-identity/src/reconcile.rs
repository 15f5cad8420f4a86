//! Reconciliation: one golden record per profile from its source records, field by field, by source
//! priority, most recent or most frequent value (empty values ignored). Contact points (emails,
//! phones, addresses, ids, devices) are kept as lists, de-duplicated by their normalized form.
//! Every value carries its provenance: the source, the source id and the record's update time.

use crate::normalize::{
    normalize_address_line, normalize_email, normalize_phone, NormalizationOptions,
};
use crate::record::CanonicalRecord;
use crate::ruleset::{ReconciliationConfig, ReconciliationStrategy};
use crate::source::SourceCatalog;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub source: String,
    pub source_id: String,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A reconciled scalar value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconciledValue {
    pub value: String,
    pub strategy: ReconciliationStrategy,
    pub provenance: Provenance,
}

/// A contact point with every record that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactPoint {
    /// As first given (by the most trusted, most recent record).
    pub value: String,
    pub normalized: String,
    pub provenance: Vec<Provenance>,
}

/// The golden record of a profile.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GoldenRecord {
    /// `first_name`, `last_name`, `full_name`, `date_of_birth`, `consent.CHANNEL`, `trait.NAME`.
    pub fields: BTreeMap<String, ReconciledValue>,
    pub emails: Vec<ContactPoint>,
    pub phones: Vec<ContactPoint>,
    pub addresses: Vec<ContactPoint>,
    pub external_ids: BTreeMap<String, Vec<ContactPoint>>,
    pub device_ids: Vec<ContactPoint>,
}

struct Candidate<'a> {
    value: String,
    record: &'a CanonicalRecord,
    priority: u32,
}

/// Reconciles the records of one profile.
pub fn reconcile(
    records: &[&CanonicalRecord],
    catalog: &SourceCatalog,
    config: &ReconciliationConfig,
    normalization: &NormalizationOptions,
) -> GoldenRecord {
    // Most trusted, then most recent first: the order contact points are listed in.
    let mut ordered: Vec<&CanonicalRecord> = records.to_vec();
    ordered.sort_by(|left, right| {
        catalog
            .priority(&left.key.source)
            .cmp(&catalog.priority(&right.key.source))
            .then(right.updated_at.cmp(&left.updated_at))
            .then(left.key.cmp(&right.key))
    });
    let mut scalar: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
    for record in &ordered {
        let priority = catalog.priority(&record.key.source);
        let mut push = |field: &str, value: Option<String>| {
            if let Some(value) = value.filter(|value| !value.trim().is_empty()) {
                scalar
                    .entry(field.to_string())
                    .or_default()
                    .push(Candidate {
                        value: value.trim().to_string(),
                        record,
                        priority,
                    });
            }
        };
        push("first_name", record.first_name.clone());
        push("last_name", record.last_name.clone());
        push("full_name", record.full_name.clone());
        push(
            "date_of_birth",
            record.date_of_birth.map(|date| date.to_string()),
        );
        for (channel, consent) in &record.consents {
            push(&format!("consent.{channel}"), Some(consent.to_string()));
        }
        for (name, value) in &record.traits {
            push(&format!("trait.{name}"), Some(value.clone()));
        }
    }
    let fields = scalar
        .into_iter()
        .filter_map(|(field, candidates)| {
            let strategy = config.fields.get(&field).copied().unwrap_or(config.default);
            pick(&candidates, strategy).map(|value| (field, value))
        })
        .collect();
    let region = |record: &CanonicalRecord| catalog.phone_region(&record.key.source);
    let mut golden = GoldenRecord {
        fields,
        emails: contact_points(&ordered, |record| {
            record
                .emails
                .iter()
                .map(|email| (email.clone(), normalize_email(email, normalization)))
                .collect()
        }),
        phones: contact_points(&ordered, |record| {
            record
                .phones
                .iter()
                .map(|phone| (phone.clone(), normalize_phone(phone, region(record))))
                .collect()
        }),
        addresses: contact_points(&ordered, |record| {
            record
                .addresses
                .iter()
                .map(|address| {
                    let text = [
                        &address.line,
                        &address.city,
                        &address.region,
                        &address.postcode,
                        &address.country,
                    ]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ");
                    let normalized = normalize_address_line(&text);
                    (text, normalized)
                })
                .collect()
        }),
        external_ids: BTreeMap::new(),
        device_ids: contact_points(&ordered, |record| {
            record
                .device_ids
                .iter()
                .map(|id| (id.clone(), id.trim().to_lowercase()))
                .collect()
        }),
    };
    let kinds: std::collections::BTreeSet<&String> = ordered
        .iter()
        .flat_map(|record| record.external_ids.keys())
        .collect();
    for kind in kinds {
        golden.external_ids.insert(
            kind.clone(),
            contact_points(&ordered, |record| {
                record
                    .external_ids
                    .get(kind)
                    .into_iter()
                    .flatten()
                    .map(|id| (id.clone(), id.trim().to_string()))
                    .collect()
            }),
        );
    }
    golden
}

fn provenance(record: &CanonicalRecord) -> Provenance {
    Provenance {
        source: record.key.source.clone(),
        source_id: record.key.source_id.clone(),
        updated_at: record.updated_at,
    }
}

/// Picks one value; candidates come most trusted and most recent first.
fn pick(candidates: &[Candidate], strategy: ReconciliationStrategy) -> Option<ReconciledValue> {
    let chosen = match strategy {
        ReconciliationStrategy::SourcePriority => candidates.first(),
        ReconciliationStrategy::MostRecent => candidates.iter().min_by(|left, right| {
            right
                .record
                .updated_at
                .cmp(&left.record.updated_at)
                .then(left.priority.cmp(&right.priority))
        }),
        ReconciliationStrategy::MostFrequent => {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for candidate in candidates {
                *counts.entry(candidate.value.to_lowercase()).or_default() += 1;
            }
            let best = counts.values().copied().max().unwrap_or(0);
            candidates
                .iter()
                .find(|candidate| counts.get(&candidate.value.to_lowercase()) == Some(&best))
        }
    }?;
    Some(ReconciledValue {
        value: chosen.value.clone(),
        strategy,
        provenance: provenance(chosen.record),
    })
}

fn contact_points(
    ordered: &[&CanonicalRecord],
    values_of: impl Fn(&CanonicalRecord) -> Vec<(String, String)>,
) -> Vec<ContactPoint> {
    let mut points: Vec<ContactPoint> = Vec::new();
    for record in ordered {
        for (value, normalized) in values_of(record) {
            if normalized.is_empty() {
                continue;
            }
            match points
                .iter_mut()
                .find(|point| point.normalized == normalized)
            {
                Some(point) => point.provenance.push(provenance(record)),
                None => points.push(ContactPoint {
                    value,
                    normalized,
                    provenance: vec![provenance(record)],
                }),
            }
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{parse_document, DocumentFormat};
    use crate::source::SourceConfig;
    use chrono::TimeZone;

    fn catalog() -> SourceCatalog {
        let crm: SourceConfig = parse_document(
            "name = \"crm\"\npriority = 1\nid = \"id\"\n[fields]\n",
            DocumentFormat::Toml,
            "t",
        )
        .expect("crm");
        let shop: SourceConfig = parse_document(
            "name = \"shop\"\npriority = 2\nid = \"id\"\nalso = [\"web\"]\n[fields]\n",
            DocumentFormat::Toml,
            "t",
        )
        .expect("shop");
        SourceCatalog::new(&[crm, shop]).expect("catalog")
    }

    fn record(
        source: &str,
        id: &str,
        day: u32,
        first: Option<&str>,
        email: &str,
    ) -> CanonicalRecord {
        let mut record = CanonicalRecord::new(source, id);
        record.updated_at = Some(
            Utc.with_ymd_and_hms(2024, 1, day, 0, 0, 0)
                .single()
                .expect("date"),
        );
        record.first_name = first.map(str::to_string);
        record.emails.push(email.to_string());
        record
    }

    #[test]
    fn each_strategy_picks_its_value_with_provenance() {
        let records = [
            record("crm", "1", 1, Some("Robert"), "bob@x.org"),
            record("shop", "2", 3, Some("Bob"), "BOB@x.org"),
            record("web", "3", 2, Some("Bob"), "r@x.org"),
            record("web", "4", 4, Some("  "), "r@x.org"),
        ];
        let refs: Vec<&CanonicalRecord> = records.iter().collect();
        let options = NormalizationOptions::default();
        let mut config = ReconciliationConfig::default();
        let golden = reconcile(&refs, &catalog(), &config, &options);
        let first = &golden.fields["first_name"];
        assert_eq!(first.value, "Robert");
        assert_eq!(first.provenance.source, "crm");
        config.default = ReconciliationStrategy::MostRecent;
        let golden = reconcile(&refs, &catalog(), &config, &options);
        assert_eq!(
            golden.fields["first_name"].value, "Bob",
            "blank values are ignored"
        );
        assert_eq!(golden.fields["first_name"].provenance.source_id, "2");
        config.default = ReconciliationStrategy::MostFrequent;
        config.fields.insert(
            "first_name".to_string(),
            ReconciliationStrategy::MostFrequent,
        );
        let golden = reconcile(&refs, &catalog(), &config, &options);
        assert_eq!(golden.fields["first_name"].value, "Bob");
        // Contact points: one per normalized value, with every holder.
        assert_eq!(golden.emails.len(), 2);
        assert_eq!(golden.emails[0].value, "bob@x.org");
        assert_eq!(golden.emails[0].provenance.len(), 2);
    }
}
