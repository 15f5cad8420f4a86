//! Reading source files (CSV, JSONL, Parquet) with positioned errors, and batch resolution:
//! nothing partially applied, batch equal to real time, any input order gives the same profiles.

use cairn_identity::batch::{resolve_batch, Progress};
use cairn_identity::compiled::CompiledRuleset;
use cairn_identity::files::{read_source, read_sources, write_assignments, SourceInput};
use cairn_identity::{CanonicalRecord, DocumentFormat, IdentityError, Resolver, Ruleset};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

const RULES: &str = r#"
[[source]]
name = "crm"
also = ["shop"]
id = "id"
default_region = "GB"
[source.fields]
first_name = "first"
last_name = "last"
emails = "email"
phones = "phone"
date_of_birth = "dob"

[[rule]]
name = "email"
criteria = [{ field = "email", method = "exact_normalized" }]

[[rule]]
name = "phone and name"
criteria = [
  { field = "phone", method = "exact_normalized" },
  { field = "first_name", method = "jaro_winkler", threshold = 0.85 },
]

[[rule]]
name = "names and birth date"
criteria = [
  { field = "first_name", method = "jaro_winkler", threshold = 0.9 },
  { field = "last_name", method = "phonetic" },
  { field = "date_of_birth", method = "date", transposed = true },
]

[candidates]
sorted_neighbourhood = [{ key = "last_name+first_name", window = 3 }]
"#;

fn compiled() -> Arc<CompiledRuleset> {
    Arc::new(
        CompiledRuleset::new(Ruleset::parse(RULES, DocumentFormat::Toml, "rules").expect("rules"))
            .expect("compiled"),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> SourceInput {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    SourceInput {
        source: name.split('.').next().unwrap_or(name).to_string(),
        path,
    }
}

fn read(input: &SourceInput) -> Result<Vec<CanonicalRecord>, IdentityError> {
    read_source(&compiled().sources, input, &mut |_| {})
}

#[test]
fn csv_errors_name_the_line() {
    let dir = tempfile::tempdir().expect("dir");
    let broken = write(
        dir.path(),
        "crm.csv",
        "id,first,last,email,phone,dob\n1,Ann,Lee,a@x.org,,\n2,Bob,Ray,b@x.org\n",
    );
    let error = read(&broken).unwrap_err().to_string();
    assert!(error.contains("line 3"), "{error}");
    assert!(error.contains("4 fields, the header has 6"), "{error}");

    let missing_column = write(
        dir.path(),
        "crm.csv",
        "id,first,email,phone,dob\n1,Ann,a@x.org,,\n",
    );
    let error = read(&missing_column).unwrap_err().to_string();
    assert!(
        error.contains("line 1") && error.contains("`last`"),
        "{error}"
    );

    let empty_id = write(
        dir.path(),
        "crm.csv",
        "id,first,last,email,phone,dob\n1,A,B,,,\n ,C,D,,,\n",
    );
    let error = read(&empty_id).unwrap_err().to_string();
    assert!(
        error.contains("line 3") && error.contains("id field"),
        "{error}"
    );

    let duplicate = write(
        dir.path(),
        "crm.csv",
        "id,first,last,email,phone,dob\n1,A,B,,,\n1,C,D,,,\n",
    );
    let error = read(&duplicate).unwrap_err().to_string();
    assert!(
        error.contains("line 3") && error.contains("first on line 2"),
        "{error}"
    );

    let unknown = SourceInput {
        source: "billing".to_string(),
        path: dir.path().join("crm.csv"),
    };
    assert!(matches!(
        read(&unknown),
        Err(IdentityError::UnknownSource(_))
    ));
}

#[test]
fn jsonl_flattens_objects_and_names_bad_lines() {
    let dir = tempfile::tempdir().expect("dir");
    let good = write(
        dir.path(),
        "crm.jsonl",
        "{\"id\": 7, \"first\": \"Ann\", \"email\": [\"a@x.org\", \"b@x.org\"]}\n\n{\"id\": \"8\"}\n",
    );
    let records = read(&good).expect("reads");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].key.source_id, "7");
    assert_eq!(records[0].emails, vec!["a@x.org", "b@x.org"]);
    let bad = write(dir.path(), "crm.jsonl", "{\"id\": 1}\n{\"id\": 2,}\n");
    let error = read(&bad).unwrap_err().to_string();
    assert!(
        error.contains("line 2") && error.contains("invalid JSON"),
        "{error}"
    );
    let not_object = write(dir.path(), "crm.jsonl", "[1]\n");
    assert!(read(&not_object)
        .unwrap_err()
        .to_string()
        .contains("line 1"));
}

#[test]
fn parquet_files_are_read_like_csv() {
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("crm.parquet");
    let schema = Arc::new(
        parse_message_type(
            "message crm { required binary id (UTF8); optional binary first (UTF8); \
             optional binary last (UTF8); optional binary email (UTF8); \
             optional binary phone (UTF8); optional binary dob (UTF8); }",
        )
        .expect("schema"),
    );
    let file = std::fs::File::create(&path).expect("file");
    let mut writer =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))
            .expect("writer");
    let columns: [(&[&str], &[i16]); 6] = [
        (&["1", "2"], &[1, 1]),
        (&["Ann", "Bob"], &[1, 1]),
        (&["Lee"], &[1, 0]),
        (&["a@x.org", "A@X.ORG"], &[1, 1]),
        (&[], &[0, 0]),
        (&["1990-01-02"], &[0, 1]),
    ];
    let mut row_group = writer.next_row_group().expect("row group");
    for (index, (values, definitions)) in columns.iter().enumerate() {
        let mut column = row_group.next_column().expect("column").expect("exists");
        let values: Vec<ByteArray> = values.iter().map(|value| ByteArray::from(*value)).collect();
        let definitions = if index == 0 { None } else { Some(*definitions) };
        column
            .typed::<ByteArrayType>()
            .write_batch(&values, definitions, None)
            .expect("write");
        column.close().expect("close");
    }
    row_group.close().expect("row group");
    writer.close().expect("close");
    let input = SourceInput {
        source: "crm".to_string(),
        path,
    };
    let records = read(&input).expect("reads");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].last_name.as_deref(), Some("Lee"));
    assert_eq!(records[1].last_name, None);
    assert_eq!(records[1].date_of_birth.map(|date| date.day), Some(2));
    let outcome = resolve_batch(compiled(), records, &|_| {}).expect("batch");
    let ids: BTreeSet<_> = outcome
        .resolver
        .assignments()
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert_eq!(ids.len(), 1, "the two records share an email");
    let garbage = write(dir.path(), "crm.parquet", "not parquet");
    assert!(read(&garbage).unwrap_err().to_string().contains("Parquet"));
}

#[test]
fn a_broken_second_file_stops_everything_before_any_resolution() {
    let dir = tempfile::tempdir().expect("dir");
    let good = write(
        dir.path(),
        "crm.csv",
        "id,first,last,email,phone,dob\n1,A,B,a@x.org,,\n",
    );
    let bad = write(
        dir.path(),
        "shop.csv",
        "id,first,last,email,phone,dob\n1,A,B,a@x.org\n",
    );
    let error = read_sources(&compiled().sources, &[good, bad], &mut |_| {}).unwrap_err();
    assert!(error.to_string().contains("shop.csv: line 2"), "{error}");
}

fn people(count: usize) -> Vec<CanonicalRecord> {
    (0..count)
        .map(|index| {
            let mut record = CanonicalRecord::new(
                if index % 2 == 0 { "crm" } else { "shop" },
                index.to_string(),
            );
            let person = index / 3;
            record.first_name = Some(["Ann", "Anne", "ANN"][index % 3].to_string());
            record.last_name = Some(format!("Lee{}", person % 40));
            if index % 4 != 0 {
                record.emails.push(format!("p{}@x.org", person % 50));
            }
            if index % 5 == 0 {
                record.phones.push(format!("020 7946 {:04}", person % 30));
            }
            record.date_of_birth = cairn_identity::BirthDate::parse(
                &format!("1980-0{}-1{}", 1 + person % 9, person % 10),
                true,
            );
            record
        })
        .collect()
}

fn partition(
    assignments: Vec<(cairn_identity::RecordKey, cairn_identity::UnifiedId)>,
) -> BTreeSet<BTreeSet<cairn_identity::RecordKey>> {
    let mut groups: BTreeMap<cairn_identity::UnifiedId, BTreeSet<cairn_identity::RecordKey>> =
        BTreeMap::new();
    for (key, id) in assignments {
        groups.entry(id).or_default().insert(key);
    }
    groups.into_values().collect()
}

#[test]
fn batch_agrees_with_real_time_and_with_any_input_order() {
    let mut ruleset = Ruleset::parse(RULES, DocumentFormat::Toml, "rules").expect("rules");
    ruleset.candidates.sorted_neighbourhood.clear();
    let compiled = Arc::new(CompiledRuleset::new(ruleset).expect("compiled"));
    let records = people(300);
    let progress_calls = std::cell::Cell::new(0);
    let batch = resolve_batch(Arc::clone(&compiled), records.clone(), &|_: Progress| {
        progress_calls.set(progress_calls.get() + 1)
    })
    .expect("batch");
    assert!(progress_calls.get() >= 2);
    let mut realtime = Resolver::with_compiled(Arc::clone(&compiled));
    for record in records.clone() {
        realtime.upsert(record).expect("upsert");
    }
    assert_eq!(
        batch.resolver.assignments(),
        realtime.assignments(),
        "same profiles and ids"
    );
    let mut reversed = records;
    reversed.reverse();
    let other = resolve_batch(compiled, reversed, &|_| {}).expect("batch");
    assert_eq!(
        partition(other.resolver.assignments()),
        partition(batch.resolver.assignments())
    );
}

#[test]
fn assignments_are_written_as_csv_rows() {
    let dir = tempfile::tempdir().expect("dir");
    let outcome = resolve_batch(compiled(), people(9), &|_| {}).expect("batch");
    let path = dir.path().join("out.csv");
    write_assignments(&path, &outcome.resolver.assignments()).expect("write");
    let text = std::fs::read_to_string(&path).expect("read");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("source,source_id,unified_id"));
    assert_eq!(lines.count(), 9);
}
