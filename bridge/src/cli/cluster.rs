//! `ecoshard cluster up|down|status`: the local PostgreSQL cluster on its own,
//! without the HTTP server.

use std::fmt::Write as _;

use ecoshard_postgres::Role as NodeRole;

use super::{ClusterArgs, ClusterCommand, Exit, Format, LocalClusterArgs};
use ecoshard_postgres::{LocalCluster, PRIMARY};

pub(super) fn run(args: &ClusterArgs) -> Result<(), Exit> {
    match &args.command {
        ClusterCommand::Up(local) => up(local),
        ClusterCommand::Down(local) => down(local),
        ClusterCommand::Status { local, format } => status(local, *format),
    }
}

fn up(args: &LocalClusterArgs) -> Result<(), Exit> {
    let mut options = args.options();
    // `cluster up` leaves the servers running for `cluster down`.
    options.stop_on_exit = false;
    let cluster = LocalCluster::start(&options).map_err(Exit::runtime)?;
    let mut out = String::new();
    let _ = writeln!(out, "cluster up in {}", cluster.data_dir().display());
    for node in cluster.nodes() {
        let _ = writeln!(
            out,
            "  {:<10} {:<8} postgres://ecoshard@127.0.0.1:{}/ecomarket",
            node.name,
            role_name(node.role),
            node.port
        );
    }
    let _ = writeln!(
        out,
        "passwords: PGPASSFILE={} (stop with: ecoshard cluster down)",
        cluster.passfile().display()
    );
    print!("{out}");
    Ok(())
}

fn down(args: &LocalClusterArgs) -> Result<(), Exit> {
    let stopped = LocalCluster::stop_all_in(&args.options()).map_err(Exit::runtime)?;
    for (name, was_running) in stopped {
        let what = if was_running {
            "stopped"
        } else {
            "was not running"
        };
        println!("{name:<10} {what}");
    }
    Ok(())
}

fn status(args: &LocalClusterArgs, format: Format) -> Result<(), Exit> {
    let nodes = LocalCluster::status_in(&args.options()).map_err(Exit::runtime)?;
    match format {
        Format::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&nodes).map_err(Exit::runtime)?
            );
        }
        Format::Table => {
            println!("{:<10} {:<8} {:>6}  state", "node", "role", "port");
            for node in &nodes {
                println!(
                    "{:<10} {:<8} {:>6}  {}",
                    node.name,
                    role_name(node.role),
                    node.port,
                    if node.running { "running" } else { "stopped" }
                );
            }
        }
    }
    // The primary as cluster.json records it: a failover may have moved it.
    let primary = nodes.iter().find(|node| node.role == NodeRole::Primary);
    match primary {
        Some(primary) if primary.running => Ok(()),
        // Scripts can test `ecoshard cluster status` like `pg_ctl status`.
        _ => Err(Exit {
            code: 3,
            message: format!(
                "the primary ({}) is not running",
                primary.map_or(PRIMARY, |primary| primary.name.as_str())
            ),
        }),
    }
}

fn role_name(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Primary => "primary",
        NodeRole::Standby => "standby",
    }
}
