//! `ecoshard apply`: `PUT /api/layout` on a running bridge from a terminal
//! (with the bridge's token when it has one), then its progress
//! (`GET /api/rebalance/{id}`, which also brings the plan when the PUT
//! answered before it) as a bar on stderr until the job ends, and the job on
//! stdout (a table, or JSON for scripts). The layout in force already:
//! "nothing to move" (or the layout as JSON), exit code 0.

use axum::http::{Method, StatusCode};
use clap::Args;
use ecoshard_core::wire::{JobState, LayoutView, RebalanceJob};
use ecoshard_core::{
    DEFAULT_LOAD_FACTOR, DEFAULT_TABLE_SIZE, DEFAULT_VNODES, Layout, StrategyKind,
};

use super::client::{Bridge, json_text, parse, refused, write_stdout};
use super::job::{ended_well, follow, print_job};
use super::{Exit, Format};

/// Largest `--layout-json @FILE` read.
const MAX_LAYOUT_FILE: u64 = 64 * 1024;

/// `ecoshard apply`.
#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    /// The bridge (`ecoshard serve`) to apply the layout through.
    #[arg(long, env = "ECOSHARD_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The bridge's token, when it has one (a bridge listening beyond loopback does).
    #[arg(long, env = "ECOSHARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Placement strategy: modulo, jump, ring, rendezvous, maglev.
    #[arg(long, short = 's', value_parser = super::parse_strategy,
          required_unless_present = "layout_json", requires = "shards")]
    strategy: Option<StrategyKind>,
    /// Number of shards (named s0, s1, …).
    #[arg(long, short = 'n', requires = "strategy")]
    shards: Option<u64>,
    /// Seed of the key hash.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Virtual nodes per shard (ring).
    #[arg(long, default_value_t = DEFAULT_VNODES)]
    vnodes: u32,
    /// Lookup table size, a prime (maglev).
    #[arg(long, default_value_t = DEFAULT_TABLE_SIZE)]
    table_size: u32,
    /// The whole layout as JSON (`{"strategy":"ring","shards":[{"name":"eu","weight":2}]}`),
    /// or @FILE to read it from a file; instead of --strategy and --shards.
    #[arg(long, conflicts_with_all = ["strategy", "shards"])]
    layout_json: Option<String>,
    /// Print the job as soon as it started instead of waiting for its end.
    #[arg(long)]
    no_wait: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

impl ApplyArgs {
    fn layout(&self) -> Result<Layout, Exit> {
        let layout = match (&self.layout_json, self.strategy, self.shards) {
            (Some(json), _, _) => {
                let text = match json.strip_prefix('@') {
                    Some(path) => read_layout_file(path)?,
                    None => json.clone(),
                };
                serde_json::from_str::<Layout>(&text)
                    .map_err(|error| Exit::usage(format!("--layout-json: {error}")))?
            }
            (None, Some(strategy), Some(shards)) => {
                let layout = Layout::with_count(strategy, shards)?
                    .with_seed(self.seed)
                    .with_vnodes(self.vnodes)
                    .with_table_size(self.table_size)
                    .with_load_factor(DEFAULT_LOAD_FACTOR);
                layout.validate()?;
                layout
            }
            _ => {
                return Err(Exit::usage(
                    "give --strategy and --shards, or --layout-json",
                ));
            }
        };
        ecoshard_bridge::check_database_layout(&layout).map_err(Exit::usage)?;
        Ok(layout)
    }
}

pub(super) fn run(args: &ApplyArgs) -> Result<(), Exit> {
    let layout = args.layout()?;
    let bridge = Bridge::parse(&args.url)?.with_token(args.token.clone());
    let body = serde_json::to_string(&layout).map_err(Exit::runtime)?;
    super::client::runtime()?.block_on(async {
        let (status, bytes) = bridge
            .request(Method::PUT, "/api/layout", Some(body))
            .await
            .map_err(Exit::runtime)?;
        let job: RebalanceJob = match status {
            StatusCode::ACCEPTED => parse(&bytes)?,
            StatusCode::OK => return print_in_force(&parse(&bytes)?, args.format),
            StatusCode::CONFLICT => return Err(super::job::conflict(&bridge, &bytes).await),
            status => return Err(refused(status, &bytes)),
        };
        let job = if args.no_wait || job.state != JobState::Running {
            job
        } else {
            follow(&bridge, job).await?
        };
        print_job(&job, args.format)?;
        ended_well(&job)
    })
}

/// The answer to a layout equal to the one in force: nothing moved.
fn print_in_force(view: &LayoutView, format: Format) -> Result<(), Exit> {
    let text = match format {
        Format::Json => json_text(view)?,
        Format::Table => format!(
            "the layout is already version {}; nothing to move\n",
            view.version
        ),
    };
    write_stdout(&text)
}

fn read_layout_file(path: &str) -> Result<String, Exit> {
    let metadata = std::fs::metadata(path)
        .map_err(|error| Exit::usage(format!("cannot read {path}: {error}")))?;
    if metadata.len() > MAX_LAYOUT_FILE {
        return Err(Exit::usage(format!(
            "{path} is over {MAX_LAYOUT_FILE} bytes: not a layout"
        )));
    }
    std::fs::read_to_string(path)
        .map_err(|error| Exit::usage(format!("cannot read {path}: {error}")))
}
