//! `ecoshard status`: what a running bridge sees now, from a terminal — its
//! nodes (role, up or down, replication lag in ms and bytes), the layout in
//! force and its version, rows per shard (with its cluster when there are
//! several), failover, and the running or last rebalance job
//! (`GET /api/cluster`, `GET /api/stats`, a tick of `GET /api/events`), as
//! a table or JSON.

use std::fmt::Write as _;

use clap::Args;
use ecoshard_core::thousands;
use ecoshard_core::wire::{
    ClusterMode, ClusterView, FailoverView, NodeRole, NodeStatus, RebalanceJob, Stats,
};
use serde::Serialize;

use super::client::{Bridge, json_text, write_stdout};
use super::{Exit, Format};

/// `ecoshard status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The bridge (`ecoshard serve`) to ask.
    #[arg(long, env = "ECOSHARD_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// `ecoshard status --format json`.
#[derive(Debug, Serialize)]
struct StatusReport {
    /// As `GET /api/cluster` answers it.
    cluster: ClusterView,
    /// As `GET /api/stats` answers it.
    stats: Stats,
    /// The running or last job, as a tick carries it (without its plan).
    job: Option<RebalanceJob>,
}

pub(super) fn run(args: &StatusArgs) -> Result<(), Exit> {
    let bridge = Bridge::parse(&args.url)?;
    super::client::runtime()?.block_on(async {
        let report = StatusReport {
            cluster: bridge.get("/api/cluster").await?,
            stats: bridge.get("/api/stats").await?,
            job: bridge.tick().await?.rebalance,
        };
        let text = match args.format {
            Format::Json => json_text(&report)?,
            Format::Table => status_table(&report),
        };
        write_stdout(&text)
    })
}

fn status_table(report: &StatusReport) -> String {
    let cluster = &report.cluster;
    let mut out = String::new();
    let mode = match cluster.mode {
        ClusterMode::Local if !cluster.clusters.is_empty() => {
            "local clusters (started by the bridge)"
        }
        ClusterMode::Local => "local cluster (started by the bridge)",
        ClusterMode::External => "external cluster",
    };
    let _ = writeln!(out, "{mode}");
    let width = if cluster.clusters.is_empty() { 10 } else { 13 };
    let _ = writeln!(
        out,
        "{:<width$} {:<8} {:<5} {:>11} {:>13}  replication",
        "node", "role", "state", "replay lag", "bytes behind"
    );
    if cluster.clusters.is_empty() {
        for node in &cluster.nodes {
            let _ = writeln!(out, "{}", node_row(&node.name, width, node));
        }
    }
    // With several clusters, each node named c2/standby-1 (c1's too).
    for each in &cluster.clusters {
        for node in &each.nodes {
            let name = format!("{}/{}", each.name, node.name);
            let _ = writeln!(out, "{}", node_row(&name, width, node));
        }
    }
    let _ = writeln!(out);
    out.push_str(&layout_and_rows(report));
    let _ = writeln!(out);
    let stats = &report.stats;
    let reads = reads_served(stats);
    let _ = writeln!(
        out,
        "since the bridge started: {} rows written, {} reads ({} failed)",
        thousands(stats.writes),
        thousands(reads),
        thousands(stats.failed_reads)
    );
    if cluster.clusters.is_empty() {
        let _ = writeln!(out, "{}", failover_line("failover", &cluster.failover));
    }
    for each in &cluster.clusters {
        let what = format!("failover of {}", each.name);
        let _ = writeln!(out, "{}", failover_line(&what, &each.failover));
    }
    let job = report.job.as_ref().map_or_else(
        || "no rebalance job since the bridge started".to_string(),
        super::job::summary_line,
    );
    let _ = writeln!(out, "{job}");
    out
}

fn node_row(name: &str, width: usize, node: &NodeStatus) -> String {
    let role = match node.role {
        NodeRole::Primary => "primary",
        NodeRole::Standby => "standby",
    };
    let state = if node.up { "up" } else { "down" };
    let (lag_ms, bytes, replication) = match (&node.lag, node.role) {
        (_, NodeRole::Primary) | (None, _) => ("-".to_string(), "-".to_string(), "-".to_string()),
        (Some(lag), NodeRole::Standby) => (
            lag.replay_lag_ms
                .map_or_else(|| "-".to_string(), |ms| format!("{ms:.1} ms")),
            lag.byte_lag
                .map_or_else(|| "-".to_string(), |bytes| thousands(bytes.max(0) as u64)),
            match (&lag.state, &lag.sync_state) {
                (Some(state), Some(sync)) => format!("{state} ({sync})"),
                (Some(state), None) => state.clone(),
                (None, _) => "not connected".to_string(),
            },
        ),
    };
    format!("{name:<width$} {role:<8} {state:<5} {lag_ms:>11} {bytes:>13}  {replication}")
}

/// The layout line, then rows per shard of the layout (and of shards a
/// running job is emptying).
fn layout_and_rows(report: &StatusReport) -> String {
    let view = &report.cluster.layout;
    let layout = &view.layout;
    let mut out = String::new();
    let mut parameters = format!("{}, seed {}", layout.strategy, layout.seed);
    if layout.strategy.uses_vnodes() {
        let _ = write!(parameters, ", {} vnodes per shard", layout.vnodes);
    }
    match layout.strategy {
        ecoshard_core::StrategyKind::Maglev => {
            let _ = write!(parameters, ", table size {}", layout.table_size);
        }
        ecoshard_core::StrategyKind::BoundedLoad => {
            let _ = write!(parameters, ", load factor {}", layout.load_factor);
        }
        _ => {}
    }
    let _ = writeln!(
        out,
        "layout version {}: {parameters}, {} shards",
        view.version,
        layout.shards.len()
    );
    let rows = &report.stats.rows;
    let rows_of = |name: &str| {
        rows.iter()
            .find(|load| load.shard == name)
            .map(|load| load.keys)
    };
    // With several clusters, each shard's cluster (as the layout places it;
    // a leaving shard's as its estimate names it).
    let several = !report.cluster.clusters.is_empty();
    let mut lines: Vec<[String; 3]> = Vec::new();
    let mut counts: Vec<Option<u64>> = Vec::new();
    for (index, shard) in layout.shards.iter().enumerate() {
        let cluster = view.placement.get(index).cloned().unwrap_or_default();
        lines.push([shard.name.clone(), cluster, shard.weight.to_string()]);
        counts.push(rows_of(&shard.name));
    }
    for load in rows {
        if !layout.shards.iter().any(|shard| shard.name == load.shard) {
            let cluster = load.cluster.clone().unwrap_or_default();
            lines.push([load.shard.clone(), cluster, "leaving".to_string()]);
            counts.push(Some(load.keys));
        }
    }
    let width = lines
        .iter()
        .map(|line| line[0].len())
        .max()
        .unwrap_or(0)
        .max(5);
    let cluster_of = |cluster: &str| match several {
        true => format!(" {cluster:<7}"),
        false => String::new(),
    };
    let _ = writeln!(
        out,
        "{:<width$}{} {:>7} {:>12}",
        "shard",
        cluster_of("cluster"),
        "weight",
        "rows"
    );
    for ([name, cluster, weight], count) in lines.iter().zip(&counts) {
        let count = count.map_or_else(|| "-".to_string(), thousands);
        let cluster = cluster_of(cluster);
        let _ = writeln!(out, "{name:<width$}{cluster} {weight:>7} {count:>12}");
    }
    let total: u64 = rows.iter().map(|load| load.keys).sum();
    let _ = writeln!(
        out,
        "{:<width$}{} {:>7} {:>12}",
        "total",
        cluster_of(""),
        "",
        thousands(total)
    );
    out
}

fn failover_line(what: &str, failover: &FailoverView) -> String {
    let on_off = |on: bool| if on { "on" } else { "off" };
    let last = match (&failover.last, failover.in_progress) {
        (_, true) => "one is running now".to_string(),
        (Some(last), false) => format!(
            "last: {} → {} in {:.0} ms",
            last.from, last.to, last.total_ms
        ),
        (None, false) => "none so far".to_string(),
    };
    format!(
        "{what}: automatic {}, synchronous replication {}; {last}",
        on_off(failover.auto),
        on_off(failover.sync_replication)
    )
}

/// Reads served since start on every node of every cluster (`reads` holds
/// `c1`'s nodes alone when `clusters` has each cluster's).
fn reads_served(stats: &Stats) -> u64 {
    let count = |nodes: &[ecoshard_core::wire::NodeCount]| -> u64 {
        nodes.iter().map(|node| node.count).sum()
    };
    match stats.clusters.is_empty() {
        true => count(&stats.reads),
        false => stats.clusters.iter().map(|each| count(&each.reads)).sum(),
    }
}

#[cfg(test)]
mod tests {
    use ecoshard_core::wire::{ClusterReads, NodeCount, Stats};

    use super::reads_served;

    fn nodes(counts: &[u64]) -> Vec<NodeCount> {
        counts
            .iter()
            .map(|&count| NodeCount {
                node: "standby-1".into(),
                count,
                per_sec: 0.0,
            })
            .collect()
    }

    #[test]
    fn reads_served_count_every_clusters_nodes_once() {
        let one = Stats {
            reads: nodes(&[3, 4]),
            ..Stats::default()
        };
        assert_eq!(reads_served(&one), 7);
        let several = Stats {
            reads: nodes(&[3, 4]),
            clusters: vec![
                ClusterReads {
                    cluster: "c1".into(),
                    reads: nodes(&[3, 4]),
                },
                ClusterReads {
                    cluster: "c2".into(),
                    reads: nodes(&[10]),
                },
            ],
            ..Stats::default()
        };
        assert_eq!(reads_served(&several), 17);
    }
}
