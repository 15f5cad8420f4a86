//! `cairn bench`: benchmarks that run Cairn for real on this machine and print their figures.
//!
//! - `cairn bench ingest [--quick] [--json] [--duration SECS]`: sustained ingest over the HTTP API
//!   (batches and single events), acknowledgement latency, CPU and peak memory, and the ratio to the
//!   raw limit of the engine's writer and the store (see `BENCHMARKS.md`).
//! - `cairn bench stores [--quick] [--json] [--events N] [--group N]`: the same ingest workload on
//!   SQLite, redb and fjall, with the same durability and transaction size.
//! - `cairn bench identity [--quick] [--json]`: identity resolution accuracy and speed on FEBRL
//!   beside Splink, batch scale and real-time latency (see `bench/identity.rs`).
//!
//! Figures go to stdout (a table; with `--json` one JSON object as the last line), progress to stderr.

mod harness;
mod http_load;
mod identity;
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
    /// Identity resolution: FEBRL accuracy and speed beside Splink, 1M-record scale, real-time latency.
    Identity(identity::IdentityArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest(args) => ingest::run(args),
        BenchCommand::Stores(args) => stores::run(args),
        BenchCommand::Identity(args) => identity::run(args),
    }
}
