//! `ecoshard apply`: `PUT /api/layout` on a running bridge from a terminal
//! (with the bridge's token when it has one), then its progress
//! (`GET /api/rebalance/{id}`, which also brings the plan when the PUT
//! answered before it) as a bar on stderr until the job ends, and the job on
//! stdout (a table, or JSON for scripts). The layout in force already:
//! "nothing to move" (or the layout as JSON), exit code 0.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode, Uri, header};
use clap::Args;
use ecoshard_core::wire::{ApiErrorBody, JobState, LayoutView, RebalanceJob};
use ecoshard_core::{
    DEFAULT_LOAD_FACTOR, DEFAULT_TABLE_SIZE, DEFAULT_VNODES, Layout, StrategyKind, thousands,
};
use http_body_util::{BodyExt as _, Full};

use super::{Failure, Format};

/// Longest one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);
/// Time between progress polls.
const POLL: Duration = Duration::from_millis(200);
/// How long the bridge may stay unreachable while a job runs (e.g. a restart).
const UNREACHABLE_LIMIT: Duration = Duration::from_secs(60);
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
    fn layout(&self) -> Result<Layout, Failure> {
        let layout = match (&self.layout_json, self.strategy, self.shards) {
            (Some(json), _, _) => {
                let text = match json.strip_prefix('@') {
                    Some(path) => read_layout_file(path)?,
                    None => json.clone(),
                };
                serde_json::from_str::<Layout>(&text)
                    .map_err(|error| Failure::usage(format!("--layout-json: {error}")))?
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
                return Err(Failure::usage(
                    "give --strategy and --shards, or --layout-json",
                ));
            }
        };
        if layout.strategy == StrategyKind::BoundedLoad {
            return Err(Failure::usage(crate::rebalance::BOUNDED_LOAD_REFUSAL));
        }
        Ok(layout)
    }
}

pub(super) fn run(args: &ApplyArgs) -> Result<(), Failure> {
    let layout = args.layout()?;
    let bridge = Bridge::parse(&args.url)?.with_token(args.token.clone());
    let body = serde_json::to_string(&layout).map_err(Failure::runtime)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| Failure::runtime(format!("starting the runtime: {error}")))?;
    runtime.block_on(async {
        let (status, bytes) = bridge
            .request(Method::PUT, "/api/layout", Some(body))
            .await
            .map_err(Failure::runtime)?;
        let job: RebalanceJob = match status {
            StatusCode::ACCEPTED => parse(&bytes)?,
            StatusCode::OK => return print_in_force(&parse(&bytes)?, args.format),
            status => return Err(refused(status, &bytes)),
        };
        let job = if args.no_wait || job.state != JobState::Running {
            job
        } else {
            follow(&bridge, job).await?
        };
        print_job(&job, args.format)?;
        match job.state {
            JobState::Failed => Err(Failure::runtime(format!(
                "rebalance job {} failed: {}",
                job.id,
                job.error.as_deref().unwrap_or("no reason given")
            ))),
            JobState::Running | JobState::Done => Ok(()),
        }
    })
}

/// Polls the job until it ends, drawing a progress bar when stderr is a terminal.
async fn follow(bridge: &Bridge, mut job: RebalanceJob) -> Result<RebalanceJob, Failure> {
    let draw = std::io::stderr().is_terminal();
    let path = format!("/api/rebalance/{}", job.id);
    let mut unreachable_since: Option<Instant> = None;
    loop {
        if draw {
            eprint!("\r{}", progress_line(&job));
            let _ = std::io::stderr().flush();
        }
        if job.state != JobState::Running {
            break;
        }
        tokio::time::sleep(POLL).await;
        match bridge.request(Method::GET, &path, None).await {
            Ok((StatusCode::OK, bytes)) => {
                job = parse(&bytes)?;
                unreachable_since = None;
            }
            Ok((status, bytes)) => {
                if draw {
                    eprintln!();
                }
                return Err(refused(status, &bytes));
            }
            Err(why) => {
                // A restarted bridge resumes the job: keep asking a while.
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() > UNREACHABLE_LIMIT {
                    if draw {
                        eprintln!();
                    }
                    return Err(Failure::runtime(format!(
                        "{why} (for {} s; job {} was at {} of {} rows)",
                        UNREACHABLE_LIMIT.as_secs(),
                        job.id,
                        job.moved,
                        job.total
                    )));
                }
            }
        }
    }
    if draw {
        eprintln!();
    }
    Ok(job)
}

/// `[#########...........]  45,000 / 100,000 rows  45 %  23,120 rows/s`, or
/// that the rows are being counted while the job plans.
fn progress_line(job: &RebalanceJob) -> String {
    const WIDTH: usize = 30;
    if is_planning(job) {
        return format!(
            "[{}] job {} is planning: reading every user_id  ",
            ".".repeat(WIDTH),
            job.id
        );
    }
    let fraction = if job.total == 0 {
        1.0
    } else {
        (job.moved as f64 / job.total as f64).clamp(0.0, 1.0)
    };
    let filled = (fraction * WIDTH as f64).round() as usize;
    format!(
        "[{}{}] {:>11} / {} rows {:>3.0} % {:>9} rows/s  ",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        thousands(job.moved),
        thousands(job.total),
        fraction * 100.0,
        thousands(job.rows_per_sec.round() as u64)
    )
}

/// A running job whose plan is not made yet (the PUT answered before it).
fn is_planning(job: &RebalanceJob) -> bool {
    job.state == JobState::Running && job.plan.is_none() && job.total == 0
}

/// The answer to a layout equal to the one in force: nothing moved.
fn print_in_force(view: &LayoutView, format: Format) -> Result<(), Failure> {
    let text = match format {
        Format::Json => json_text(view)?,
        Format::Table => format!(
            "the layout is already version {}; nothing to move\n",
            view.version
        ),
    };
    write_stdout(&text)
}

fn print_job(job: &RebalanceJob, format: Format) -> Result<(), Failure> {
    let text = match format {
        Format::Json => json_text(job)?,
        Format::Table => job_table(job),
    };
    write_stdout(&text)
}

fn json_text(value: &impl serde::Serialize) -> Result<String, Failure> {
    let mut json = serde_json::to_string_pretty(value).map_err(Failure::runtime)?;
    json.push('\n');
    Ok(json)
}

fn write_stdout(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::runtime(format!("cannot write to stdout: {error}")))
        }
        _ => Ok(()),
    }
}

fn job_table(job: &RebalanceJob) -> String {
    use std::fmt::Write as _;
    let state = match job.state {
        JobState::Running => "running",
        JobState::Done => "done",
        JobState::Failed => "failed",
    };
    let mut out = String::new();
    if is_planning(job) {
        let _ = writeln!(
            out,
            "job {}: layout {} → {}, {state}; planning (GET /api/rebalance/{} for the plan)",
            job.id, job.from_version, job.to_version, job.id
        );
    } else {
        let _ = writeln!(
            out,
            "job {}: layout {} → {}, {state}",
            job.id, job.from_version, job.to_version
        );
        let _ = writeln!(
            out,
            "moved {} of {} rows ({} rows/s)",
            thousands(job.moved),
            thousands(job.total),
            thousands(job.rows_per_sec.round() as u64)
        );
    }
    if let Some(plan) = &job.plan {
        let _ = writeln!(
            out,
            "plan: {} of {} keys change shard: {:.1} % (ideal minimum {:.1} %)",
            thousands(plan.moved),
            thousands(plan.total),
            plan.moved_fraction * 100.0,
            plan.ideal_fraction * 100.0
        );
        for transfer in &plan.transfers {
            let _ = writeln!(
                out,
                "  {} → {}: {}",
                transfer.from,
                transfer.to,
                thousands(transfer.keys)
            );
        }
    }
    if let Some(error) = &job.error {
        let _ = writeln!(out, "error: {error}");
    }
    out
}

/// A 4xx (other than 409 and 429) is the input's fault: exit code 2.
fn refused(status: StatusCode, bytes: &[u8]) -> Failure {
    let message = match serde_json::from_slice::<ApiErrorBody>(bytes) {
        Ok(body) => format!("{} ({})", body.error.message, body.error.code),
        Err(_) => format!("the bridge answered {status}"),
    };
    if status.is_client_error()
        && status != StatusCode::CONFLICT
        && status != StatusCode::TOO_MANY_REQUESTS
    {
        Failure::usage(message)
    } else {
        Failure::runtime(message)
    }
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(bytes)
        .map_err(|error| Failure::runtime(format!("unexpected answer from the bridge: {error}")))
}

fn read_layout_file(path: &str) -> Result<String, Failure> {
    let metadata = std::fs::metadata(path)
        .map_err(|error| Failure::usage(format!("cannot read {path}: {error}")))?;
    if metadata.len() > MAX_LAYOUT_FILE {
        return Err(Failure::usage(format!(
            "{path} is over {MAX_LAYOUT_FILE} bytes: not a layout"
        )));
    }
    std::fs::read_to_string(path)
        .map_err(|error| Failure::usage(format!("cannot read {path}: {error}")))
}

/// Where the bridge is.
#[derive(Debug)]
struct Bridge {
    host: String,
    port: u16,
    authority: String,
    base: String,
    token: Option<String>,
}

impl Bridge {
    fn parse(url: &str) -> Result<Self, Failure> {
        let bad = |why: &str| Failure::usage(format!("--url {url:?}: {why}"));
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("use http://HOST:PORT (the bridge speaks plain HTTP)"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        Ok(Bridge {
            host: host.to_string(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.to_string(),
            base: uri.path().trim_end_matches('/').to_string(),
            token: None,
        })
    }

    /// Sends `Authorization: Bearer token` with every request.
    fn with_token(self, token: Option<String>) -> Self {
        Bridge { token, ..self }
    }

    /// One request on its own connection: status and body.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, Bytes), String> {
        let url = format!("http://{}{}{path}", self.authority, self.base);
        let exchange = async {
            let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|error| format!("cannot reach the bridge at {url}: {error}"))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|error| format!("{url}: {error}"))?;
            tokio::spawn(connection);
            let mut request = Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.base))
                .header(header::HOST, &self.authority);
            if body.is_some() {
                request = request.header(header::CONTENT_TYPE, "application/json");
            }
            if let Some(token) = &self.token {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let request = request
                .body(Full::new(Bytes::from(body.unwrap_or_default())))
                .map_err(|error| format!("{url}: {error}"))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|error| format!("{url}: {error}"))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|error| format!("{url}: {error}"))?
                .to_bytes();
            Ok((status, bytes))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{url}: no answer within {} s", REQUEST_TIMEOUT.as_secs()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let bridge = Bridge::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((bridge.host.as_str(), bridge.port), ("127.0.0.1", 8080));
        assert_eq!(Bridge::parse("http://[::1]:9/x/").unwrap().base, "/x");
        for bad in [
            "https://127.0.0.1:8080",
            "127.0.0.1:8080",
            "http://",
            "not a url",
        ] {
            let failure = Bridge::parse(bad).unwrap_err();
            assert_eq!(failure.code, super::super::EXIT_USAGE, "{bad}");
        }
    }

    #[test]
    fn a_job_whose_plan_comes_later_reads_as_planning() {
        let job = RebalanceJob {
            id: 7,
            state: JobState::Running,
            moved: 0,
            total: 0,
            rows_per_sec: 0.0,
            from_version: 2,
            to_version: 3,
            plan: None,
            error: None,
        };
        assert!(
            progress_line(&job).contains("job 7 is planning"),
            "{}",
            progress_line(&job)
        );
        assert!(
            !progress_line(&job).contains('#'),
            "{}",
            progress_line(&job)
        );
        assert_eq!(
            job_table(&job),
            "job 7: layout 2 → 3, running; planning (GET /api/rebalance/7 for the plan)\n"
        );
    }

    #[test]
    fn the_bar_is_full_at_the_end() {
        let mut job = RebalanceJob {
            id: 1,
            state: JobState::Running,
            moved: 50,
            total: 100,
            rows_per_sec: 1234.4,
            from_version: 1,
            to_version: 2,
            plan: None,
            error: None,
        };
        assert!(
            progress_line(&job).contains("50 %"),
            "{}",
            progress_line(&job)
        );
        job.moved = 100;
        assert!(progress_line(&job).starts_with(&format!("[{}]", "#".repeat(30))));
    }
}
