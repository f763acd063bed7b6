//! The live view's facts in words, each worded in one place so that two
//! parts of the screen never tell the same fact two ways: a standby's lag
//! (its card and its chart), a read's lag, the rows in the database (held
//! while a job moves them), and which layout is in force (during a job, the
//! rebalance panel alone states the versions).

use ecoshard_core::Layout;
use ecoshard_core::wire::{NodeRole, NodeStatus, ReadResult};

use crate::format::{count, millis};
use crate::live::Live;
use crate::state::strategy_title;

/// How long after a job ends the rows stay held: PostgreSQL's row estimates
/// take in commits a second to about ten seconds after them.
pub const ROWS_SETTLE_MS: u64 = 10_000;

/// The row total shown while a job moves rows, and until the estimates
/// settle after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldRows {
    /// The total before the job began.
    pub total: u64,
    /// The job.
    pub job_id: u64,
    /// Once the job ended: when the estimates are taken again (ms since the
    /// Unix epoch).
    pub until_ms: Option<u64>,
}

/// A standby's replay lag for people, the same on its card and its chart:
/// "down" when it does not answer, "not streaming" when the primary does
/// not list it (the primary is down, or it is not connected), "idle" when
/// PostgreSQL reports no lag (caught up, nothing to replay), else the lag.
pub fn standby_lag(up: bool, streaming: bool, replay_ms: Option<f64>) -> String {
    match (up, streaming, replay_ms) {
        (false, _, _) => "down".to_string(),
        (true, false, _) => "not streaming".to_string(),
        (true, true, None) => "idle".to_string(),
        (true, true, lag) => millis(lag),
    }
}

/// Whether the primary lists the standby as connected
/// (`pg_stat_replication`): the one test of streaming for its card, its
/// chart and the reads it serves.
pub(crate) fn streaming(node: &NodeStatus) -> bool {
    node.lag.as_ref().is_some_and(|lag| lag.state.is_some())
}

/// "Ring over 4 shards (eu, us, ap, sa)".
pub fn describe_layout(layout: &Layout) -> String {
    let names: Vec<&str> = layout
        .shards
        .iter()
        .map(|shard| shard.name.as_str())
        .collect();
    let list = if names.len() > 8 {
        format!("{}, … {}", names[..6].join(", "), names[names.len() - 1])
    } else {
        names.join(", ")
    };
    format!(
        "{} over {} shards ({list})",
        strategy_title(layout.strategy),
        layout.shards.len()
    )
}

impl Live {
    /// A node's replay lag as its card says it (see [`standby_lag`]).
    pub fn node_lag(&self, node: &NodeStatus) -> String {
        standby_lag(
            node.up,
            streaming(node),
            node.lag.as_ref().and_then(|lag| lag.replay_lag_ms),
        )
    }

    /// A read's lag: the primary has no replication lag at all; a standby
    /// the primary does not list is not streaming, as its card and chart
    /// say; one with no lag reported is idle.
    pub fn read_lag(&self, read: &ReadResult) -> String {
        let served_by = self.nodes.iter().find(|node| node.name == read.served_by);
        match (served_by, read.lag_ms) {
            (Some(node), _) if node.role == NodeRole::Primary => {
                "the primary: no replication lag".to_string()
            }
            (Some(node), _) if !streaming(node) => {
                "standby not streaming: what it serves may be behind".to_string()
            }
            (_, None) => "idle standby: no lag to replay".to_string(),
            (_, lag) => format!("lag {}", millis(lag)),
        }
    }

    /// Rows in the database: PostgreSQL's estimate, or, while a job moves
    /// rows (and until the estimates settle after it), the total before it
    /// began (see [`Live::rows_note`]).
    pub fn rows(&self) -> u64 {
        self.rows_held
            .map_or_else(|| self.estimated_rows(), |held| held.total)
    }

    /// Why the row total is held, while it is.
    pub fn rows_note(&self) -> Option<String> {
        self.rows_held.map(|held| {
            format!(
                "held at the total before job {} while it moves rows: PostgreSQL's estimates \
                 take a move's delete and insert in a second to ten, not together",
                held.job_id
            )
        })
    }

    /// The layout as the cluster's header says it; during a job, no version
    /// (the rebalance panel states it: "moving v3 → v4").
    pub fn layout_header(&self) -> String {
        if let Some(job) = self.job.as_ref().filter(|_| self.job_running()) {
            return format!("layout changing: job {} is moving rows", job.id);
        }
        match (&self.layout, self.layout_version) {
            (Some(view), _) => format!(
                "layout v{}: {} over {} shards",
                view.version,
                strategy_title(view.layout.strategy),
                view.layout.shards.len()
            ),
            (None, Some(version)) => format!("layout v{version}"),
            _ => String::new(),
        }
    }

    /// The shards `cluster` holds under the layout in force, as its group's
    /// header says them: "holds s0, s2 (2 of 4 shards)", "holds no shards".
    pub fn cluster_shards(&self, cluster: &str) -> String {
        let Some(view) = &self.layout else {
            return String::new();
        };
        let held: Vec<&str> = view
            .layout
            .shards
            .iter()
            .zip(&view.placement)
            .filter(|(_, placed)| *placed == cluster)
            .map(|(shard, _)| shard.name.as_str())
            .collect();
        match held.len() {
            0 => "holds no shards".to_string(),
            count => format!(
                "holds {} ({count} of {} shards)",
                held.join(", "),
                view.layout.shards.len()
            ),
        }
    }

    /// The database's layout and rows, as the rebalance panel says them;
    /// during a job, the versions it goes between.
    pub fn database_now(&self) -> String {
        let Some(view) = &self.layout else {
            return "…".to_string();
        };
        let rows = count(self.rows(), "row", "rows");
        let layout = describe_layout(&view.layout);
        match self.job.as_ref().filter(|_| self.job_running()) {
            Some(job) => format!(
                "moving v{} → v{} · {layout} · {rows}",
                job.from_version, job.to_version
            ),
            None => format!("v{} · {layout} · {rows}", view.version),
        }
    }

    /// Rows as PostgreSQL last estimated them.
    pub(crate) fn estimated_rows(&self) -> u64 {
        self.stats.rows.iter().map(|shard| shard.keys).sum()
    }

    /// Holds the row total while a job moves rows (`before`: the total
    /// before this tick), and lets it go [`ROWS_SETTLE_MS`] after the job.
    pub(crate) fn hold_rows(&mut self, before: u64, at_ms: u64) {
        let running = self.job.as_ref().filter(|_| self.job_running());
        match (&mut self.rows_held, running) {
            (None, Some(job)) => {
                self.rows_held = Some(HeldRows {
                    total: before,
                    job_id: job.id,
                    until_ms: None,
                });
            }
            (Some(held), None) => match held.until_ms {
                None => held.until_ms = Some(at_ms + ROWS_SETTLE_MS),
                Some(until) if at_ms >= until => self.rows_held = None,
                Some(_) => {}
            },
            _ => {}
        }
    }
}
