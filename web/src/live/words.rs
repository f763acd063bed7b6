//! The live view's facts in words, each worded in one place so that two
//! parts of the screen never tell the same fact two ways: a standby's lag
//! (its card and its chart), a read's lag, the rows in the database (held
//! while a job moves them), and which layout is in force (during a job, the
//! rebalance panel alone states the versions), a whole-shard move's
//! phases and progress, and each bridge of several: the layout it routes
//! by, its heartbeat, lapsed or not.

use ecoshard_core::Layout;
use ecoshard_core::wire::{
    BridgeView, MovePhase, NodeRole, NodeStatus, ReadResult, ShardMoveProgress,
};

use crate::format::{bytes, count, millis, thousands};
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

/// What a lapsed bridge means, on its card and in the log.
pub const LAPSED: &str = "no heartbeat within the 10 s lease, so it refuses writes";

/// A bridge's heartbeat: "heartbeat 0.4 s ago" (its card's pill says
/// whether that is within the lease).
pub fn bridge_heartbeat(bridge: &BridgeView) -> String {
    format!(
        "heartbeat {:.1} s ago",
        bridge.heartbeat_age_ms as f64 / 1_000.0
    )
}

impl Live {
    /// The layout a bridge routes by, against the one writes go by: "routes
    /// by v3 (in force)", or "routes by v2, v3 in force" until it follows.
    pub fn bridge_layout(&self, bridge: &BridgeView) -> String {
        let version = bridge.layout_version;
        match self.layout_version {
            Some(now) if now != version => format!("routes by v{version}, v{now} in force"),
            _ => format!("routes by v{version} (in force)"),
        }
    }
}

/// The phases of a whole-shard move, in order, as the rebalance panel
/// lists them (a moved shard is past them all).
pub const MOVE_PHASES: [MovePhase; 6] = [
    MovePhase::SettingUp,
    MovePhase::Copying,
    MovePhase::CatchingUp,
    MovePhase::Cutover,
    MovePhase::Verifying,
    MovePhase::Cleanup,
];

/// A move phase's name on the page.
pub fn move_phase(phase: MovePhase) -> &'static str {
    match phase {
        MovePhase::SettingUp => "setting up",
        MovePhase::Copying => "copying",
        MovePhase::CatchingUp => "catching up",
        MovePhase::Cutover => "cutover",
        MovePhase::Verifying => "verifying",
        MovePhase::Cleanup => "cleanup",
        MovePhase::Done => "moved",
    }
}

/// Where `phase` stands in a move that is at `current`: `"done"` (ticked),
/// `"now"` (marked) or `"next"`; every phase is done once the shard moved.
pub fn phase_step(phase: MovePhase, current: MovePhase) -> &'static str {
    match phase_position(phase).cmp(&phase_position(current)) {
        std::cmp::Ordering::Less => "done",
        std::cmp::Ordering::Equal => "now",
        std::cmp::Ordering::Greater => "next",
    }
}

/// Where `phase` comes in a move: its place in [`MOVE_PHASES`], past them
/// all once moved.
pub(crate) fn phase_position(phase: MovePhase) -> usize {
    MOVE_PHASES
        .iter()
        .position(|listed| *listed == phase)
        .unwrap_or(MOVE_PHASES.len())
}

/// The moving shard and its clusters: "s1: c2 → c1 · shard 1 of 2".
pub fn shard_move_route(progress: &ShardMoveProgress) -> String {
    let route = format!(
        "{}: {} → {}",
        progress.shard, progress.from_cluster, progress.to_cluster
    );
    if progress.shards_total > 1 {
        let position = (progress.shards_done + 1).min(progress.shards_total);
        format!("{route} · shard {position} of {}", progress.shards_total)
    } else {
        route
    }
}

/// Rows and bytes on the target against the source's, the copying rate
/// and, while copying, the time left: "1,200 / 5,000 rows · 96.0 KiB /
/// 400.0 KiB · 2,400 rows/s · about 1.6 s left".
pub fn shard_move_copied(progress: &ShardMoveProgress) -> String {
    let size = |value: u64| bytes(Some(i64::try_from(value).unwrap_or(i64::MAX)));
    let mut text = format!(
        "{} / {} rows · {} / {}",
        thousands(progress.rows),
        thousands(progress.rows_total),
        size(progress.bytes),
        size(progress.bytes_total)
    );
    if progress.rows_per_sec > 0.0 {
        text += &format!(
            " · {} rows/s",
            thousands(progress.rows_per_sec.round() as u64)
        );
    }
    if let (MovePhase::Copying, Some(eta)) = (progress.phase, progress.eta_ms) {
        text += &format!(" · about {} left", millis(Some(eta as f64)));
    }
    text
}

/// How long the shard's writes waited at its cutover, once cut over.
pub fn write_pause(progress: &ShardMoveProgress) -> Option<String> {
    progress.write_pause_ms.map(|pause| {
        format!(
            "writes to {} paused {} at the cutover",
            progress.shard,
            millis(Some(pause as f64))
        )
    })
}

/// What a finished placement change moved (`moved`: the job's rows):
/// "s1 moved from c2 to c1: 5,000 rows", or with several shards "3 shards
/// moved between clusters: 9,000 rows; the last, s1, from c2 to c1".
pub fn shard_move_ended(progress: &ShardMoveProgress, moved: u64) -> String {
    let rows = count(moved, "row", "rows");
    let (shard, from, to) = (
        &progress.shard,
        &progress.from_cluster,
        &progress.to_cluster,
    );
    if progress.shards_total > 1 {
        format!(
            "{} shards moved between clusters: {rows}; the last, {shard}, from {from} to {to}",
            progress.shards_total
        )
    } else {
        format!("{shard} moved from {from} to {to}: {rows}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(phase: MovePhase, shards: (u64, u64), pause: Option<u64>) -> ShardMoveProgress {
        ShardMoveProgress {
            shard: "s1".to_string(),
            from_cluster: "c2".to_string(),
            to_cluster: "c1".to_string(),
            phase,
            shards_done: shards.0,
            shards_total: shards.1,
            rows: 1_200,
            rows_total: 5_000,
            bytes: 98_304,
            bytes_total: 409_600,
            rows_per_sec: 2_400.4,
            eta_ms: Some(1_600),
            write_pause_ms: pause,
        }
    }

    #[test]
    fn each_phase_is_done_now_or_next_against_the_current_one() {
        fn check(phase: MovePhase, current: MovePhase, expected: &str) {
            assert_eq!(
                phase_step(phase, current),
                expected,
                "{phase:?} at {current:?}"
            );
        }
        check(MovePhase::SettingUp, MovePhase::SettingUp, "now");
        check(MovePhase::Copying, MovePhase::SettingUp, "next");
        check(MovePhase::SettingUp, MovePhase::Copying, "done");
        check(MovePhase::CatchingUp, MovePhase::Cutover, "done");
        check(MovePhase::Verifying, MovePhase::Cutover, "next");
        check(MovePhase::Cleanup, MovePhase::Cleanup, "now");
        check(MovePhase::Cleanup, MovePhase::Done, "done");
        check(MovePhase::SettingUp, MovePhase::Done, "done");
    }

    #[test]
    fn a_shard_move_is_worded_by_its_route_progress_pause_and_end() {
        fn check(text: String, expected: &str) {
            assert_eq!(text, expected);
        }
        let copying = progress(MovePhase::Copying, (0, 1), None);
        check(shard_move_route(&copying), "s1: c2 → c1");
        check(
            shard_move_route(&progress(MovePhase::Copying, (1, 3), None)),
            "s1: c2 → c1 · shard 2 of 3",
        );
        check(
            shard_move_route(&progress(MovePhase::Done, (3, 3), None)),
            "s1: c2 → c1 · shard 3 of 3",
        );
        check(
            shard_move_copied(&copying),
            "1,200 / 5,000 rows · 96.0 KiB / 400.0 KiB · 2,400 rows/s · about 1.6 s left",
        );
        check(
            shard_move_copied(&progress(MovePhase::CatchingUp, (0, 1), None)),
            "1,200 / 5,000 rows · 96.0 KiB / 400.0 KiB · 2,400 rows/s",
        );
        let mut set_up = progress(MovePhase::SettingUp, (0, 1), None);
        (
            set_up.rows,
            set_up.rows_total,
            set_up.bytes,
            set_up.bytes_total,
        ) = (0, 0, 0, 0);
        (set_up.rows_per_sec, set_up.eta_ms) = (0.0, None);
        check(shard_move_copied(&set_up), "0 / 0 rows · 0 B / 0 B");
        assert_eq!(write_pause(&copying), None);
        check(
            write_pause(&progress(MovePhase::Verifying, (0, 1), Some(12))).unwrap(),
            "writes to s1 paused 12 ms at the cutover",
        );
        check(
            shard_move_ended(&progress(MovePhase::Done, (1, 1), Some(12)), 5_000),
            "s1 moved from c2 to c1: 5,000 rows",
        );
        check(
            shard_move_ended(&progress(MovePhase::Done, (3, 3), Some(12)), 1),
            "3 shards moved between clusters: 1 row; the last, s1, from c2 to c1",
        );
    }
}
