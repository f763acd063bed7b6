//! The `ecoshard` command line: argument parsing and dispatch.
//!
//! Bad arguments print one line on stderr and exit with code 2; failures while
//! running print one line and exit with code 1. Nothing panics at the user.

mod offline;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ecoshard_core::{
    DEFAULT_LOAD_FACTOR, DEFAULT_TABLE_SIZE, DEFAULT_VNODES, Layout, StrategyKind,
};

/// Exit code for bad arguments or an invalid layout.
pub const EXIT_USAGE: u8 = 2;
/// Exit code for a failure while running.
pub const EXIT_FAILURE: u8 = 1;

/// Most keys `ecoshard plan` takes (about 160 MB of working memory).
pub const MAX_PLAN_KEYS: u64 = 10_000_000;

#[derive(Debug, Parser)]
#[command(
    name = "ecoshard",
    version,
    about = "See and do database sharding: plan layouts, locate keys, run the bridge to a replicated PostgreSQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Which shard owns each key.
    Locate(LocateArgs),
    /// What-if: keys moved going from one shard count to another.
    Plan(PlanArgs),
}

/// Output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Aligned text for people.
    #[default]
    Table,
    /// JSON for scripts.
    Json,
}

/// Strategy parameters shared by `locate` and `plan`.
#[derive(Debug, Args)]
pub(crate) struct LayoutArgs {
    /// Placement strategy: modulo, jump, ring, rendezvous, maglev, bounded-load.
    #[arg(long, short = 's', value_parser = parse_strategy)]
    pub(crate) strategy: StrategyKind,
    /// Seed of the key hash.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Virtual nodes per shard (ring, bounded-load).
    #[arg(long, default_value_t = DEFAULT_VNODES)]
    pub(crate) vnodes: u32,
    /// Lookup table size, a prime (maglev).
    #[arg(long, default_value_t = DEFAULT_TABLE_SIZE)]
    pub(crate) table_size: u32,
    /// Load bound factor c (bounded-load).
    #[arg(long, default_value_t = DEFAULT_LOAD_FACTOR)]
    pub(crate) load_factor: f64,
}

impl LayoutArgs {
    /// A layout over `shards` shards named `s0`… with these parameters, validated.
    pub(crate) fn layout(
        &self,
        strategy: StrategyKind,
        shards: u64,
    ) -> Result<Layout, ecoshard_core::Error> {
        let layout = Layout::with_count(strategy, shards)?
            .with_seed(self.seed)
            .with_vnodes(self.vnodes)
            .with_table_size(self.table_size)
            .with_load_factor(self.load_factor);
        layout.validate()?;
        Ok(layout)
    }
}

/// `ecoshard locate`.
#[derive(Debug, Args)]
pub(crate) struct LocateArgs {
    #[command(flatten)]
    pub(crate) layout: LayoutArgs,
    /// Number of shards (named s0, s1, …).
    #[arg(long, short = 'n')]
    pub(crate) shards: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
    /// Keys to locate (text). With bounded-load they are placed as one set, in order.
    #[arg(required = true, num_args = 1..)]
    pub(crate) keys: Vec<OsString>,
}

/// `ecoshard plan`.
#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub(crate) layout: LayoutArgs,
    /// Shard count before.
    #[arg(long)]
    pub(crate) from: u64,
    /// Shard count after.
    #[arg(long)]
    pub(crate) to: u64,
    /// Strategy after, when it changes too (default: the same).
    #[arg(long, value_parser = parse_strategy)]
    pub(crate) to_strategy: Option<StrategyKind>,
    /// Number of keys: <prefix>0 … <prefix>{K-1}.
    #[arg(long, default_value_t = 300)]
    pub(crate) keys: u64,
    /// Prefix of the generated keys.
    #[arg(long, default_value = ecoshard_core::DEFAULT_KEY_PREFIX)]
    pub(crate) key_prefix: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

fn parse_strategy(name: &str) -> Result<StrategyKind, String> {
    name.parse()
        .map_err(|error: ecoshard_core::Error| error.to_string())
}

/// An error that ends the command: its exit code and its one line.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl Failure {
    /// Bad input: exit code 2.
    pub(crate) fn usage(message: impl std::fmt::Display) -> Self {
        Failure {
            code: EXIT_USAGE,
            message: message.to_string(),
        }
    }
}

impl From<ecoshard_core::Error> for Failure {
    fn from(error: ecoshard_core::Error) -> Self {
        Failure::usage(error)
    }
}

/// Runs the command line with the process's arguments.
pub fn main() -> ExitCode {
    run(std::env::args_os())
}

/// Runs the command line with the given arguments (the first is the program name).
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            // --help and --version.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let rendered = error.render().to_string();
            let line = rendered
                .lines()
                .find(|line| !line.trim().is_empty())
                .unwrap_or("error: bad arguments");
            eprintln!("{line} (see ecoshard --help)");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let outcome = match cli.command {
        Some(Command::Locate(args)) => offline::locate(&args),
        Some(Command::Plan(args)) => offline::plan(&args),
        None => Err(Failure::usage(
            "no command given: try ecoshard plan, ecoshard locate or ecoshard --help",
        )),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
