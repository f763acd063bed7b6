//! `ecoshard cluster up|down|status`: the local PostgreSQL clusters on their
//! own, without the HTTP server. One cluster prints as it always has; with
//! several, each node is named by its cluster too (`c2/standby-1`).

use std::fmt::Write as _;

use ecoshard_postgres::Role as NodeRole;

use super::{ClusterArgs, ClusterCommand, ClusterUpArgs, Exit, Format, LocalClusterArgs};
use ecoshard_postgres::{ClusterStatus, LocalClusters, NodeState, PRIMARY};

pub(super) fn run(args: &ClusterArgs) -> Result<(), Exit> {
    match &args.command {
        ClusterCommand::Up(up_args) => up(up_args),
        ClusterCommand::Down(local) => down(local),
        ClusterCommand::Status { local, format } => status(local, *format),
    }
}

fn up(args: &ClusterUpArgs) -> Result<(), Exit> {
    let mut options = args.local.options();
    // `cluster up` leaves the servers running for `cluster down`.
    options.stop_on_exit = false;
    options.standbys = args.standbys as usize;
    let count = args.clusters.map_or_else(
        || LocalClusters::recorded_in(&options.data_dir).max(1),
        |count| count as usize,
    );
    LocalClusters::check_shape(options.pg_port, count, options.standbys).map_err(Exit::usage)?;
    let started = LocalClusters::start(&options, count).map_err(Exit::runtime)?;
    let clusters = started.clusters();
    let several = clusters.len() > 1;
    let width = name_width(several);
    let mut out = String::new();
    let data_dir = clusters[0].data_dir().display();
    if several {
        let _ = writeln!(out, "{} clusters up in {data_dir}", clusters.len());
    } else {
        let _ = writeln!(out, "cluster up in {data_dir}");
    }
    for cluster in clusters {
        for node in cluster.nodes() {
            let _ = writeln!(
                out,
                "  {:<width$} {:<8} postgres://ecoshard@127.0.0.1:{}/ecomarket",
                node_name(several.then_some(cluster.name()), &node.name),
                role_name(node.role),
                node.port
            );
        }
    }
    let passfiles: Vec<String> = clusters
        .iter()
        .map(|cluster| {
            let passfile = cluster.passfile().display().to_string();
            if several {
                format!("{passfile} for {}", cluster.name())
            } else {
                passfile
            }
        })
        .collect();
    let _ = writeln!(
        out,
        "passwords: PGPASSFILE={} (stop with: ecoshard cluster down)",
        passfiles.join(", ")
    );
    print!("{out}");
    Ok(())
}

fn down(args: &LocalClusterArgs) -> Result<(), Exit> {
    let stopped = LocalClusters::stop_all_in(&args.options()).map_err(Exit::runtime)?;
    let several = stopped.len() > 1;
    let width = name_width(several);
    for (cluster, nodes) in &stopped {
        for (name, was_running) in nodes {
            let what = if *was_running {
                "stopped"
            } else {
                "was not running"
            };
            let name = node_name(several.then_some(cluster.as_str()), name);
            println!("{name:<width$} {what}");
        }
    }
    Ok(())
}

fn status(args: &LocalClusterArgs, format: Format) -> Result<(), Exit> {
    let clusters = LocalClusters::status_in(&args.options()).map_err(Exit::runtime)?;
    let several = clusters.len() > 1;
    match (format, several) {
        (Format::Json, false) => print_json(&clusters[0].nodes)?,
        (Format::Json, true) => {
            let nodes: Vec<ClusterNode<'_>> = clusters
                .iter()
                .flat_map(|cluster| {
                    cluster.nodes.iter().map(|node| ClusterNode {
                        cluster: &cluster.name,
                        node,
                    })
                })
                .collect();
            print_json(&nodes)?;
        }
        (Format::Table, false) => print_table(&clusters, false),
        (Format::Table, true) => print_table(&clusters, true),
    }
    // The primaries as cluster.json records them: a failover may have moved them.
    for cluster in &clusters {
        let primary = cluster
            .nodes
            .iter()
            .find(|node| node.role == NodeRole::Primary);
        if !primary.is_some_and(|primary| primary.running) {
            let name = primary.map_or(PRIMARY, |primary| primary.name.as_str());
            let name = node_name(several.then_some(cluster.name.as_str()), name);
            // Scripts can test `ecoshard cluster status` like `pg_ctl status`.
            return Err(Exit {
                code: 3,
                message: format!("the primary ({name}) is not running"),
            });
        }
    }
    Ok(())
}

/// A node of `ecoshard cluster status --format json` when there are
/// several clusters: its cluster, then the node's fields.
#[derive(serde::Serialize)]
struct ClusterNode<'a> {
    cluster: &'a str,
    #[serde(flatten)]
    node: &'a NodeState,
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Exit> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).map_err(Exit::runtime)?
    );
    Ok(())
}

/// The status table; with a cluster column when there are several.
fn print_table(clusters: &[ClusterStatus], with_cluster: bool) {
    let cluster_column = |name: &str| {
        if with_cluster {
            format!("{name:<8} ")
        } else {
            String::new()
        }
    };
    println!(
        "{}{:<10} {:<8} {:>6}  state",
        cluster_column("cluster"),
        "node",
        "role",
        "port"
    );
    for cluster in clusters {
        for node in &cluster.nodes {
            println!(
                "{}{:<10} {:<8} {:>6}  {}",
                cluster_column(&cluster.name),
                node.name,
                role_name(node.role),
                node.port,
                if node.running { "running" } else { "stopped" }
            );
        }
    }
}

/// Width of the node name column: `standby-1`, or `c2/standby-1`.
fn name_width(several: bool) -> usize {
    if several { 13 } else { 10 }
}

/// `standby-1` alone, or `c2/standby-1` when there are several clusters.
fn node_name(cluster: Option<&str>, node: &str) -> String {
    match cluster {
        Some(cluster) => format!("{cluster}/{node}"),
        None => node.to_string(),
    }
}

fn role_name(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Primary => "primary",
        NodeRole::Standby => "standby",
    }
}
