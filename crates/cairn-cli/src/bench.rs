//! `cairn bench`: benchmarks that run Cairn for real on this machine and print their figures.
//!
//! - `cairn bench ingest [--quick] [--json] [--duration SECS]`: sustained ingest over the HTTP API
//!   (batches and single events), acknowledgement latency, CPU and peak memory, and the ratio to the
//!   raw limit of the engine's writer and the store (see `BENCHMARKS.md`).
//! - `cairn bench stores [--quick] [--json] [--events N] [--group N]`: the same ingest workload on
//!   SQLite, redb and fjall, with the same durability and transaction size.
//! - `cairn bench identity [--quick] [--json]`: identity resolution accuracy and speed on FEBRL
//!   beside Splink, batch scale and real-time latency (see `bench/identity.rs`).
//! - `cairn bench delivery [--quick] [--json]`: emails rendered, volume-checked and sent over SMTP,
//!   SMS over HTTP, to in-process sinks, beside the raw SMTP transport (see `docs/bench-delivery.md`).
//! - `cairn bench journeys [--quick] [--json]`: events through journey evaluation, event-to-outbox
//!   latency at a fixed load, timer firings and the cost of a waiting enrollment (see `BENCHMARKS.md`).
//!
//! Figures go to stdout (a table; with `--json` one JSON object as the last line), progress to stderr.

mod delivery;
mod harness;
mod http_load;
mod identity;
mod ingest;
mod journeys;
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
    /// Delivery: emails rendered, volume-checked and sent over SMTP, SMS over HTTP, to local sinks.
    Delivery(delivery::DeliveryArgs),
    /// Journeys: events through journey evaluation, event-to-outbox latency, timers, enrollment cost.
    Journeys(journeys::JourneysArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest(args) => ingest::run(args),
        BenchCommand::Stores(args) => stores::run(args),
        BenchCommand::Identity(args) => identity::run(args),
        BenchCommand::Delivery(args) => delivery::run(args),
        BenchCommand::Journeys(args) => journeys::run(args),
    }
}
