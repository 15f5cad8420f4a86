//! The `cairn` binary: one program that serves, imports, inspects and benchmarks.
//!
//! Data goes to stdout, everything else (logs, progress, errors) to stderr. Errors carry a stable code
//! from the shared table: `error[code]: message`.

#![recursion_limit = "256"]

mod allocator;
mod api_client;
mod audience_cmd;
mod bench;
mod cli_error;
mod config;
mod demo;
mod demo_journeys;
mod identity_cmd;
mod identity_config;
mod import;
mod journey_cmd;
mod journey_remote;
mod profile_cmd;
mod server;

use clap::{Parser, Subcommand};
use cli_error::report;
use config::{Config, Overrides};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version,
    about = "Cairn: customer journeys, Customer 360 and journey analytics in one binary"
)]
struct Cli {
    /// TOML configuration file (also `CAIRN_CONFIG`).
    #[arg(long, global = true, env = "CAIRN_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides the configuration).
    #[arg(long, global = true)]
    listen: Option<SocketAddr>,
    /// Data directory (overrides the configuration).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long, global = true)]
    dump_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: tracking API, management API, metrics. No other server needed.
    Serve,
    /// Create a demo workspace with generated customers and events, then serve it.
    Demo(demo::DemoArgs),
    /// Import events or profiles from JSONL or CSV into the data directory (server stopped).
    Import(import::ImportArgs),
    /// Read profiles from the data directory.
    Profile {
        #[command(subcommand)]
        command: profile_cmd::ProfileCommand,
    },
    /// Identity resolution of source files (resolve, explain, diff) without a server.
    Identity {
        #[command(subcommand)]
        command: identity_cmd::IdentityCommand,
    },
    /// Benchmarks that print their figures.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Print the table of stable error codes (Markdown).
    ErrorCodes,
    /// Journeys: validate, test and print the schema offline; push, publish, pause, resume, stop,
    /// archive, list, stats, enroll and trace on the running server.
    Journey {
        #[command(subcommand)]
        command: journey_cmd::JourneyCommand,
    },
    /// Audiences on the running server: push, list, show, members.
    Audience {
        #[command(subcommand)]
        command: audience_cmd::AudienceCommand,
    },
}

fn main() -> ExitCode {
    allocator::configure();
    // One TLS crypto provider for every HTTP client in the process (reqwest is built without one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let overrides = Overrides {
        listen: cli.listen,
        data_dir: cli.data_dir.clone(),
    };
    let result = Config::load(cli.config.as_deref(), &overrides)
        .map_err(cli_error::invalid_config)
        .and_then(|config| run(cli, config));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(&error),
    }
}

fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    if cli.dump_config {
        print!("{}", config.to_toml()?);
        return Ok(());
    }
    server::init_logging(config.log_format);
    match cli.command {
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
            Ok(())
        }
        Some(Command::Serve) => server::serve(config, None),
        Some(Command::Demo(args)) => demo::run(config, args),
        Some(Command::Import(args)) => import::run(&config, args),
        Some(Command::Profile { command }) => profile_cmd::run(&config, command),
        Some(Command::Identity { command }) => identity_cmd::run(command),
        Some(Command::Bench { command }) => bench::run(command),
        Some(Command::Journey { command }) => journey_cmd::run(&config, command),
        Some(Command::Audience { command }) => audience_cmd::run(&config, command),
        Some(Command::ErrorCodes) => {
            print!("{}", cairn_model::error_code::markdown_table());
            Ok(())
        }
    }
}
