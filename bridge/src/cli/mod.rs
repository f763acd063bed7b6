//! The `ecoshard` command line: argument parsing and dispatch.
//!
//! Bad arguments print one line on stderr and exit with code 2; failures while
//! running print one line and exit with code 1. Nothing panics at the user.

mod apply;
mod client;
mod cluster;
mod colour;
mod job;
mod load;
mod offline;
mod serve;
mod status;
mod usage;
mod verify;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory as _, Parser, Subcommand, ValueEnum};
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
    about = "See and do database sharding: plan layouts, locate keys, run the bridge to a replicated PostgreSQL",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// `ecoshard` alone is `ecoshard serve`.
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the bridge: HTTP API, live stream and web page (the default command).
    Serve(Box<ServeArgs>),
    /// Start, stop or inspect the local PostgreSQL cluster on its own.
    Cluster(ClusterArgs),
    /// Which shard owns each key.
    Locate(LocateArgs),
    /// What-if: keys moved going from one shard count to another.
    Plan(PlanArgs),
    /// Apply a layout to the database of a running bridge (a rebalance), with a progress bar.
    Apply(apply::ApplyArgs),
    /// A running bridge's nodes, lag, layout, rows per shard and rebalance job.
    Status(status::StatusArgs),
    /// A rebalance job of a running bridge (default: the running or last one).
    Job(job::JobArgs),
    /// Load a generated data set into a running bridge's database fast (COPY).
    Load(load::LoadArgs),
    /// Check a running bridge's database against its layout and placement; exit 1 on any difference.
    Verify(verify::VerifyArgs),
}

/// Where the local cluster lives and how its servers run.
#[derive(Debug, Clone, Args)]
pub(crate) struct LocalClusterArgs {
    /// Data directory of the local cluster (reused between runs).
    #[arg(long, env = "ECOSHARD_DATA_DIR", default_value_os_t = default_data_dir())]
    pub(crate) data_dir: PathBuf,
    /// Port of the local primary; the standbys take the next ports.
    #[arg(long, env = "ECOSHARD_PG_PORT", default_value_t = ecoshard_postgres::DEFAULT_PG_PORT)]
    pub(crate) pg_port: u16,
    /// Directory of PostgreSQL's binaries (default: pg_config --bindir, /usr/lib/postgresql/*/bin).
    #[arg(long, env = "ECOSHARD_PG_BIN")]
    pub(crate) pg_bin: Option<PathBuf>,
    /// User that runs the servers when ecoshard runs as root.
    #[arg(long, env = "ECOSHARD_PG_USER", default_value = "postgres")]
    pub(crate) pg_user: String,
}

impl LocalClusterArgs {
    pub(crate) fn options(&self) -> ecoshard_postgres::ClusterOptions {
        let mut options = ecoshard_postgres::ClusterOptions::new(&self.data_dir, self.pg_port);
        options.pg_bin = self.pg_bin.clone();
        options.pg_user = Some(self.pg_user.clone());
        options
    }
}

/// `ecoshard cluster`.
#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    #[command(subcommand)]
    pub(crate) command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// Start the primary and standbys of each cluster (creating or repairing
    /// them) and leave them running.
    Up(ClusterUpArgs),
    /// Stop every server of every local cluster in the data directory.
    Down(LocalClusterArgs),
    /// Show which nodes of every cluster in the data directory run; exit
    /// code 3 when a primary does not.
    Status {
        #[command(flatten)]
        local: LocalClusterArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// `ecoshard cluster up`.
#[derive(Debug, Args)]
pub(crate) struct ClusterUpArgs {
    #[command(flatten)]
    pub(crate) local: LocalClusterArgs,
    /// Clusters to run (c1 in the data directory, c2 in DATA_DIR/c2, …), each
    /// on ports 10 above the one before [default: as many as the data
    /// directory holds, else 1]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=ecoshard_postgres::MAX_CLUSTERS as u64))]
    pub(crate) clusters: Option<u64>,
    /// Standbys of each cluster.
    #[arg(long, default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(0..=ecoshard_postgres::MAX_STANDBYS as u64))]
    pub(crate) standbys: u64,
}

/// `ecoshard serve`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, env = "ECOSHARD_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// This bridge's name among the bridges of one database (default
    /// `<hostname>:<port>`).
    #[arg(long, env = "ECOSHARD_NAME")]
    pub(crate) name: Option<String>,
    /// The address other bridges and clients reach this one at (default
    /// the listen address).
    #[arg(long, env = "ECOSHARD_ADVERTISE")]
    pub(crate) advertise: Option<String>,
    /// Primary of an existing cluster (postgres://user@host:port/db); without
    /// it the bridge starts a local cluster.
    #[arg(long, env = "ECOSHARD_PRIMARY")]
    pub(crate) primary: Option<String>,
    /// The existing cluster in a JSON file: {"primary": URL, "replicas": [URL, …]}.
    #[arg(long, env = "ECOSHARD_CLUSTER_CONFIG", conflicts_with = "primary")]
    pub(crate) cluster_config: Option<PathBuf>,
    /// A standby of the existing cluster (repeat; named standby-1, standby-2, …).
    #[arg(
        long = "replica",
        env = "ECOSHARD_REPLICAS",
        value_delimiter = ',',
        requires = "primary"
    )]
    pub(crate) replicas: Vec<String>,
    /// Database holding the shards (local cluster; created when missing).
    #[arg(long, env = "ECOSHARD_DATABASE", default_value = "ecomarket")]
    pub(crate) database: String,
    #[command(flatten)]
    pub(crate) local: LocalClusterArgs,
    /// Local clusters to run and operate (c1 in the data directory, c2 in
    /// DATA_DIR/c2, …, each on ports 10 above the one before); every shard
    /// is on c1 [default: as many as the data directory holds, else 1]
    #[arg(long, conflicts_with_all = ["primary", "cluster_config"],
          value_parser = clap::value_parser!(u64).range(1..=ecoshard_postgres::MAX_CLUSTERS as u64))]
    pub(crate) clusters: Option<u64>,
    /// Standbys of each local cluster.
    #[arg(long, default_value_t = 2, conflicts_with_all = ["primary", "cluster_config"],
          value_parser = clap::value_parser!(u64).range(0..=ecoshard_postgres::MAX_STANDBYS as u64))]
    pub(crate) standbys: u64,
    /// Directory of the built web page (default: target/dist in the workspace).
    #[arg(long, env = "ECOSHARD_WEB_DIR")]
    pub(crate) web_dir: Option<PathBuf>,
    /// Strategy of the first layout, used only when the database has none.
    #[arg(long, value_parser = parse_strategy, default_value = "ring")]
    pub(crate) strategy: StrategyKind,
    /// Shard count of the first layout, used only when the database has none.
    #[arg(long, default_value_t = 3)]
    pub(crate) shards: u64,
    /// Standbys lagging more than this (ms) serve no eventual reads.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) max_lag_ms: u64,
    /// Longest one node may take to answer one read (ms): past it the read
    /// goes to another node, or a strong read answers 503 read_timed_out.
    #[arg(long, env = "ECOSHARD_READ_TIMEOUT_MS", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub(crate) read_timeout_ms: u64,
    /// Connections per node.
    #[arg(long, default_value_t = 16)]
    pub(crate) pool_size: usize,
    /// API requests handled at once; more are refused with 429.
    #[arg(long, default_value_t = 512)]
    pub(crate) max_in_flight: usize,
    /// Clients of the event stream at once; more are refused with 429.
    #[arg(long, default_value_t = 64)]
    pub(crate) max_event_clients: usize,
    /// Rows a rebalance moves per transaction.
    #[arg(long, env = "ECOSHARD_REBALANCE_BATCH", default_value_t = ecoshard_bridge::service::rebalance::DEFAULT_BATCH_ROWS as u64,
          value_parser = clap::value_parser!(u64).range(1..=ecoshard_bridge::service::rebalance::MAX_BATCH_ROWS as u64))]
    pub(crate) rebalance_batch: u64,
    /// When the local primary's server is gone, promote the most advanced
    /// standby and send writes to it (local cluster only).
    #[arg(long, env = "ECOSHARD_AUTO_FAILOVER")]
    pub(crate) auto_failover: bool,
    /// Each commit waits until a standby has it (synchronous_standby_names =
    /// ANY 1 (…)), so a failover loses no acknowledged write (local cluster only).
    #[arg(long, env = "ECOSHARD_SYNC_REPLICATION")]
    pub(crate) sync_replication: bool,
    /// A host name the bridge answers to besides localhost and IP addresses
    /// (repeat, or comma-separated); requests naming any other host get 421.
    #[arg(long = "allowed-host", env = "ECOSHARD_ALLOWED_HOSTS", value_name = "NAME",
          value_delimiter = ',', value_parser = parse_host_name)]
    pub(crate) allowed_hosts: Vec<String>,
    /// The token changes (POST, PUT…) must carry as `Authorization: Bearer`;
    /// generated and printed once when listening beyond loopback without one.
    #[arg(long, env = "ECOSHARD_TOKEN", hide_env_values = true,
          value_parser = ecoshard_bridge::http::Token::parse)]
    pub(crate) token: Option<ecoshard_bridge::http::Token>,
    /// Connections open at once; more are closed at once (after a 503).
    #[arg(long, env = "ECOSHARD_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) max_connections: u64,
}

/// `<workspace>/target/ecoshard-cluster` when run from a checkout, else
/// `/var/lib/ecoshard/cluster` for root, else `~/.local/share/ecoshard/cluster`.
fn default_data_dir() -> PathBuf {
    let workspace_target = workspace_dir().join("target");
    if workspace_target.is_dir() {
        return workspace_target.join("ecoshard-cluster");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match home {
        Some(home) if !home.starts_with("/root") => home.join(".local/share/ecoshard/cluster"),
        _ => PathBuf::from("/var/lib/ecoshard/cluster"),
    }
}

/// The default page directory: `target/dist` of the workspace the bridge was built in.
pub(crate) fn default_web_dir() -> PathBuf {
    workspace_dir().join("target").join("dist")
}

/// The workspace this binary was built in.
pub(crate) fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
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

/// `--allowed-host`: a DNS name, lowercase, without port or scheme.
fn parse_host_name(name: &str) -> Result<String, String> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "{name:?} is not a host name (letters, digits, - and dots; no port or scheme)"
        ));
    }
    Ok(name)
}

/// A strategy name in any ASCII case (`Ring`, as the page writes it). Only
/// the command line folds case: the JSON layout (`PUT /api/layout`, the
/// page's wire types) keeps the core's exact lowercase names.
fn parse_strategy(name: &str) -> Result<StrategyKind, String> {
    name.to_ascii_lowercase().parse().map_err(|_| {
        let names: Vec<&str> = StrategyKind::ALL.iter().map(|kind| kind.name()).collect();
        format!(
            "unknown strategy {name:?}: use one of {} (any case)",
            names.join(", ")
        )
    })
}

/// An error that ends the command: its exit code and its one line.
#[derive(Debug)]
pub(crate) struct Exit {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl Exit {
    /// Bad input: exit code 2.
    pub(crate) fn usage(message: impl std::fmt::Display) -> Self {
        Exit {
            code: EXIT_USAGE,
            message: message.to_string(),
        }
    }
}

impl Exit {
    /// A failure while running: exit code 1.
    pub(crate) fn runtime(message: impl std::fmt::Display) -> Self {
        Exit {
            code: EXIT_FAILURE,
            message: message.to_string(),
        }
    }
}

impl From<ecoshard_core::Error> for Exit {
    fn from(error: ecoshard_core::Error) -> Self {
        Exit::usage(error)
    }
}

/// Runs the command line with the process's arguments.
pub fn main() -> ExitCode {
    run(std::env::args_os())
}

/// Runs the command line with the given arguments (the first is the program name).
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            // --help and --version.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("{}", usage::one_line(&error, &Cli::command(), &args));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let outcome = match cli.command {
        Some(Command::Locate(args)) => offline::locate(&args),
        Some(Command::Plan(args)) => offline::plan(&args),
        Some(Command::Apply(args)) => apply::run(&args),
        Some(Command::Status(args)) => status::run(&args),
        Some(Command::Job(args)) => job::run(&args),
        Some(Command::Load(args)) => load::run(&args),
        Some(Command::Verify(args)) => verify::run(&args),
        Some(Command::Cluster(args)) => {
            init_logging();
            cluster::run(&args)
        }
        Some(Command::Serve(args)) => serve::run(&args),
        None => serve::run(&cli.serve),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// What is logged unless `RUST_LOG` says otherwise: info from ecoshard's
/// own crates (the binary, the bridge library, the local cluster's
/// launcher), warnings from the rest.
const DEFAULT_LOG_FILTER: &str = "warn,ecoshard=info,ecoshard_bridge=info,ecoshard_postgres=info";

/// Logs to stderr; `RUST_LOG` adjusts (default: [`DEFAULT_LOG_FILTER`]).
pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour::stderr_in_colour())
        .try_init();
}
