//! `cairn demo`: placeholder replaced below.
use crate::config::Config;
use clap::Args;
#[derive(Debug, Args)]
pub struct DemoArgs {}
pub fn run(config: Config, _args: DemoArgs) -> anyhow::Result<()> {
    crate::server::serve(config, None)
}
