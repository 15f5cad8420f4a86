//! `cairn bench`: benchmarks that run Cairn for real on this machine and print their figures.
//!
//! - `cairn bench ingest [--quick] [--json] [--duration SECS]`: sustained ingest over the HTTP API
//!   (batches and single events), acknowledgement latency, CPU and peak memory, and the ratio to the
//!   raw limit of the engine's writer and the store (see `BENCHMARKS.md`).
//! - `cairn bench stores [--quick] [--json] [--events N] [--group N]`: the same ingest workload on
//!   SQLite, redb and fjall, with the same durability and transaction size.
//!
//! Figures go to stdout (a table; with `--json` one JSON object as the last line), progress to stderr.

mod harness;
mod http_load;
mod ingest;
mod payload;
mod raw;
mod report;
mod stores;
mod usage;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Ingest throughput and latency over HTTP, against the raw store limit.
    Ingest(ingest::IngestArgs),
    /// The same ingest workload on SQLite, redb and fjall: an embedded-engine comparison.
    Stores(stores::StoresArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest(args) => ingest::run(args),
        BenchCommand::Stores(args) => stores::run(args),
    }
}
