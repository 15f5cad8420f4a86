//! `cairn bench`: placeholder replaced below.
use clap::Subcommand;
#[derive(Debug, Subcommand)]
pub enum BenchCommand { Ingest }
pub fn run(_command: BenchCommand) -> anyhow::Result<()> { Ok(()) }
