//! `ecoshard job [ID]`: one rebalance job of a running bridge (by default
//! the running or last one, from the event stream's tick), as a table or
//! JSON; `--follow` polls it until it ends, drawing the progress bar that
//! `ecoshard apply` draws. Also how the command line words a job: the bar,
//! the table, the one-line summary of `ecoshard status`, and the
//! `rebalance_running` refusal that `ecoshard apply` meets.

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use clap::Args;
use ecoshard_core::thousands;
use ecoshard_core::wire::{ApiErrorBody, JobState, MovePhase, RebalanceJob, ShardMoveProgress};

use super::client::{Bridge, json_text, parse, refused, write_stdout};
use super::{Exit, Format};

/// Time between progress polls.
const POLL: Duration = Duration::from_millis(200);
/// How long the bridge may stay unreachable while a job runs (e.g. a restart).
const UNREACHABLE_LIMIT: Duration = Duration::from_secs(60);

/// `ecoshard job`.
#[derive(Debug, Args)]
pub(crate) struct JobArgs {
    /// The job's id (default: the running or last job of the bridge).
    id: Option<u64>,
    /// The bridge (`ecoshard serve`) to ask.
    #[arg(long, env = "ECOSHARD_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Wait until the job ends, with a progress bar on stderr when it is a terminal.
    #[arg(long)]
    follow: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub(super) fn run(args: &JobArgs) -> Result<(), Exit> {
    let bridge = Bridge::parse(&args.url)?;
    super::client::runtime()?.block_on(async {
        let id = match args.id {
            Some(id) => id,
            None => bridge
                .tick()
                .await?
                .rebalance
                .map(|job| job.id)
                .ok_or_else(|| {
                    Exit::runtime(
                        "this bridge has run no rebalance job since it started \
                     (ecoshard apply starts one; ecoshard job ID shows an older one)",
                    )
                })?,
        };
        let mut job: RebalanceJob = bridge.get(&format!("/api/rebalance/{id}")).await?;
        if args.follow {
            job = follow(&bridge, job).await?;
        }
        print_job(&job, args.format)?;
        ended_well(&job)
    })
}

/// Exit code 1, with the reason, for a failed job.
pub(super) fn ended_well(job: &RebalanceJob) -> Result<(), Exit> {
    match job.state {
        JobState::Failed => Err(Exit::runtime(format!(
            "rebalance job {} failed: {}",
            job.id,
            job.error.as_deref().unwrap_or("no reason given")
        ))),
        JobState::Running | JobState::Done => Ok(()),
    }
}

/// Polls the job until it ends, drawing a progress bar when stderr is a terminal.
pub(super) async fn follow(bridge: &Bridge, mut job: RebalanceJob) -> Result<RebalanceJob, Exit> {
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
                    return Err(Exit::runtime(format!(
                        "{why} (for {} s; job {} was at {} of {} rows)",
                        UNREACHABLE_LIMIT.as_secs(),
                        job.id,
                        thousands(job.moved),
                        thousands(job.total)
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

/// The job on stdout: a table, or JSON.
pub(super) fn print_job(job: &RebalanceJob, format: Format) -> Result<(), Exit> {
    let text = match format {
        Format::Json => json_text(job)?,
        Format::Table => job_table(job),
    };
    write_stdout(&text)
}

/// `PUT /api/layout` answered 409: for `rebalance_running`, the job in the
/// way and the command that follows it (not the URL an HTTP client polls).
pub(super) async fn conflict(bridge: &Bridge, bytes: &[u8]) -> Exit {
    let running = serde_json::from_slice::<ApiErrorBody>(bytes)
        .is_ok_and(|body| body.error.code == "rebalance_running");
    if running
        && let Ok(tick) = bridge.tick().await
        && let Some(job) = tick.rebalance
    {
        return Exit::runtime(format!("{} (rebalance_running)", in_the_way(&job)));
    }
    refused(StatusCode::CONFLICT, bytes)
}

/// Why `job` keeps another layout out, and what to run.
fn in_the_way(job: &RebalanceJob) -> String {
    match job.state {
        JobState::Running => format!(
            "rebalance job {} is running ({} of {} rows moved); one job at a time: \
             ecoshard job {} --follow waits for it",
            job.id,
            thousands(job.moved),
            thousands(job.total),
            job.id
        ),
        JobState::Failed => format!(
            "rebalance job {} failed ({}); restart the bridge to resume it before applying \
             another layout (ecoshard job {} shows it)",
            job.id,
            job.error.as_deref().unwrap_or("no reason recorded"),
            job.id
        ),
        JobState::Done => format!("rebalance job {} is finishing; retry in a moment", job.id),
    }
}

/// One line for `ecoshard status`.
pub(super) fn summary_line(job: &RebalanceJob) -> String {
    let head = format!(
        "job {}: layout {} → {}, {}",
        job.id,
        job.from_version,
        job.to_version,
        state_name(job.state)
    );
    match job.state {
        JobState::Running if is_planning(job) => {
            format!(
                "{head}, planning (ecoshard job {} --follow follows it)",
                job.id
            )
        }
        JobState::Running => format!(
            "{head}: {} of {} rows moved (ecoshard job {} --follow follows it)",
            thousands(job.moved),
            thousands(job.total),
            job.id
        ),
        JobState::Done => format!(
            "{head}: moved {} rows ({} rows/s)",
            thousands(job.moved),
            thousands(job.rows_per_sec.round() as u64)
        ),
        JobState::Failed => format!(
            "{head}: {} (restart the bridge to resume it)",
            job.error.as_deref().unwrap_or("no reason given")
        ),
    }
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
    if let Some(progress) = &job.shard_move {
        return format!("{}  ", shard_move_words(progress));
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
    job.state == JobState::Running
        && job.plan.is_none()
        && job.total == 0
        && job.shard_move.is_none()
}

/// A placement change's shard: `shard s0 c1 → c2 (1 of 2): copying 412,000
/// of 1,000,000 rows, 40 of 97 MiB, 205,000 rows/s, about 3 s left`.
fn shard_move_words(progress: &ShardMoveProgress) -> String {
    const MIB: u64 = 1024 * 1024;
    let mut words = format!(
        "shard {} {} → {} ({} of {}): {}",
        progress.shard,
        progress.from_cluster,
        progress.to_cluster,
        (progress.shards_done + 1).min(progress.shards_total),
        progress.shards_total,
        phase_name(progress.phase)
    );
    if progress.rows_total > 0 {
        words.push_str(&format!(
            " {} of {} rows, {} of {} MiB",
            thousands(progress.rows),
            thousands(progress.rows_total),
            thousands(progress.bytes.div_ceil(MIB)),
            thousands(progress.bytes_total.div_ceil(MIB))
        ));
    }
    if progress.phase == MovePhase::Copying && progress.rows_per_sec > 0.0 {
        words.push_str(&format!(
            ", {} rows/s",
            thousands(progress.rows_per_sec.round() as u64)
        ));
        if let Some(eta_ms) = progress.eta_ms {
            words.push_str(&format!(", about {} s left", eta_ms.div_ceil(1_000)));
        }
    }
    if let Some(pause) = progress.write_pause_ms {
        words.push_str(&format!(", its writes paused {pause} ms at the cutover"));
    }
    words
}

fn phase_name(phase: MovePhase) -> &'static str {
    match phase {
        MovePhase::SettingUp => "setting up",
        MovePhase::Copying => "copying",
        MovePhase::CatchingUp => "catching up",
        MovePhase::Cutover => "cutting over",
        MovePhase::Verifying => "verifying",
        MovePhase::Cleanup => "cleaning up",
        MovePhase::Done => "moved",
    }
}

fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Running => "running",
        JobState::Done => "done",
        JobState::Failed => "failed",
    }
}

fn job_table(job: &RebalanceJob) -> String {
    let state = state_name(job.state);
    let mut out = String::new();
    if is_planning(job) {
        let _ = writeln!(
            out,
            "job {}: layout {} → {}, {state}; planning (ecoshard job {} shows the plan once it is made)",
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
    if let Some(progress) = &job.shard_move {
        let _ = writeln!(out, "{}", shard_move_words(progress));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: JobState, moved: u64, total: u64) -> RebalanceJob {
        RebalanceJob {
            id: 7,
            state,
            moved,
            total,
            rows_per_sec: 1234.4,
            from_version: 2,
            to_version: 3,
            plan: None,
            error: None,
            shard_move: None,
        }
    }

    #[test]
    fn a_shard_move_is_worded_by_its_phase_and_progress() {
        let check = |phase: MovePhase, rows: u64, pause: Option<u64>, expected: &str| {
            let progress = ShardMoveProgress {
                shard: "s0".into(),
                from_cluster: "c1".into(),
                to_cluster: "c2".into(),
                phase,
                shards_done: 0,
                shards_total: 2,
                rows,
                rows_total: 1_000_000,
                bytes: rows * 100,
                bytes_total: 100_000_000,
                rows_per_sec: 200_000.0,
                eta_ms: Some(2_900),
                write_pause_ms: pause,
            };
            assert_eq!(shard_move_words(&progress), expected);
            let job = RebalanceJob {
                shard_move: Some(Box::new(progress)),
                ..job(JobState::Running, 0, 0)
            };
            assert!(!is_planning(&job));
        };
        check(
            MovePhase::Copying,
            420_000,
            None,
            "shard s0 c1 → c2 (1 of 2): copying 420,000 of 1,000,000 rows, 41 of 96 MiB, \
             200,000 rows/s, about 3 s left",
        );
        check(
            MovePhase::Verifying,
            1_000_000,
            Some(42),
            "shard s0 c1 → c2 (1 of 2): verifying 1,000,000 of 1,000,000 rows, 96 of 96 MiB, \
             its writes paused 42 ms at the cutover",
        );
    }

    #[test]
    fn a_job_whose_plan_comes_later_reads_as_planning() {
        let job = job(JobState::Running, 0, 0);
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
            "job 7: layout 2 → 3, running; planning (ecoshard job 7 shows the plan once it is made)\n"
        );
    }

    #[test]
    fn the_bar_is_full_at_the_end() {
        let mut job = job(JobState::Running, 50, 100);
        assert!(
            progress_line(&job).contains("50 %"),
            "{}",
            progress_line(&job)
        );
        job.moved = 100;
        assert!(progress_line(&job).starts_with(&format!("[{}]", "#".repeat(30))));
    }

    #[test]
    fn a_job_in_one_line() {
        fn check(job: RebalanceJob, expected: &str) {
            assert_eq!(summary_line(&job), expected);
        }
        check(
            job(JobState::Running, 0, 0),
            "job 7: layout 2 → 3, running, planning (ecoshard job 7 --follow follows it)",
        );
        check(
            job(JobState::Running, 2_000, 10_000),
            "job 7: layout 2 → 3, running: 2,000 of 10,000 rows moved (ecoshard job 7 --follow follows it)",
        );
        check(
            job(JobState::Done, 10_000, 10_000),
            "job 7: layout 2 → 3, done: moved 10,000 rows (1,234 rows/s)",
        );
        check(
            RebalanceJob {
                error: Some("disk full".into()),
                ..job(JobState::Failed, 5, 10)
            },
            "job 7: layout 2 → 3, failed: disk full (restart the bridge to resume it)",
        );
    }

    #[test]
    fn a_running_job_in_the_way_names_the_command_that_follows_it() {
        let text = in_the_way(&job(JobState::Running, 2_000, 10_000));
        assert_eq!(
            text,
            "rebalance job 7 is running (2,000 of 10,000 rows moved); one job at a time: \
             ecoshard job 7 --follow waits for it"
        );
    }
}
