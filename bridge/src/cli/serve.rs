//! `ecoshard serve`: starts (or reuses) the local clusters, or connects to
//! the one given by URL, then runs the HTTP server until Ctrl-C or SIGTERM,
//! and stops the servers it started. Beyond loopback, changes need a token: the
//! one given, or one generated and printed once in the URL the page opens.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use ecoshard_core::Layout;
use serde::Deserialize;

use super::{Exit, ServeArgs};
use ecoshard_bridge::ServerOptions;
use ecoshard_bridge::Token;
use ecoshard_bridge::service::Control;
use ecoshard_bridge::{AppState, BridgeConfig, check_database_layout};
use ecoshard_bridge::{ClusterSpec, Topology};
use ecoshard_postgres::{LocalCluster, LocalClusters};

pub(super) fn run(args: &ServeArgs) -> Result<(), Exit> {
    super::init_logging();
    let initial_layout = Layout::with_count(args.strategy, args.shards)?;
    check_database_layout(&initial_layout).map_err(Exit::usage)?;
    if !ecoshard_bridge::db::schema::is_plain_identifier(&args.database) {
        return Err(Exit::usage(
            "--database must be 1 to 63 of a-z, 0-9 and _, not starting with a digit",
        ));
    }
    let (token, generated) = token_for(args)?;
    // Held until the end: dropping it stops the servers this process started.
    let Nodes {
        topology,
        others,
        mut local,
    } = nodes(args)?;
    let node_count = topology.nodes.len()
        + others
            .iter()
            .map(|other| other.topology.nodes.len())
            .sum::<usize>();
    let config = BridgeConfig {
        pool_size: args.pool_size,
        max_lag_ms: args.max_lag_ms,
        read_timeout: std::time::Duration::from_millis(args.read_timeout_ms),
        initial_layout,
        web_dir: args
            .web_dir
            .clone()
            .or_else(|| Some(super::default_web_dir()).filter(|dir| dir.is_dir())),
        create_database: true,
        max_in_flight: args.max_in_flight,
        max_event_clients: args.max_event_clients,
        rebalance_batch: args.rebalance_batch as usize,
        control: local.first().map(|c1| Arc::clone(c1) as Control),
        other_clusters: others,
        auto_failover: args.auto_failover,
        allowed_hosts: args.allowed_hosts.clone(),
        token: token.clone(),
        ..BridgeConfig::new(topology)
    };
    let options = ServerOptions {
        max_connections: connection_cap(args, node_count),
        ..ServerOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| Exit::runtime(format!("starting the runtime: {error}")))?;
    let outcome = runtime.block_on(async {
        // Bound first: the port is part of the bridge's default name.
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|error| Exit::runtime(format!("cannot listen on {}: {error}", args.listen)))?;
        let addr = listener.local_addr().unwrap_or(args.listen);
        let config = BridgeConfig {
            identity: identity(args, addr),
            ..config
        };
        let state = AppState::start(config).await.map_err(Exit::runtime)?;
        announce(addr, token.as_ref(), generated);
        ecoshard_bridge::serve_with(listener, state, options, ecoshard_bridge::shutdown_signal())
            .await
            .map_err(|error| Exit::runtime(format!("serving: {error}")))
    });
    // Background tasks end with the runtime; then the servers stop.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    // Stopped here even if a task still holds a cluster.
    let mut stopped = false;
    for cluster in local.drain(..) {
        stopped |= cluster.stop_servers();
    }
    if stopped {
        tracing::info!("stopped the local cluster's servers this bridge started");
    }
    outcome
}

/// This bridge's name (`--name`, else `<hostname>:<port>`) and address
/// (`--advertise`, else the address it listens on).
fn identity(args: &ServeArgs, addr: std::net::SocketAddr) -> ecoshard_bridge::Identity {
    ecoshard_bridge::Identity {
        name: args
            .name
            .clone()
            .unwrap_or_else(|| format!("{}:{}", ecoshard_bridge::hostname(), addr.port())),
        address: args.advertise.clone().unwrap_or_else(|| addr.to_string()),
    }
}

/// What the bridge serves.
struct Nodes {
    /// `c1`'s nodes (the only cluster's).
    topology: Topology,
    /// The other local clusters'.
    others: Vec<ClusterSpec>,
    /// The local clusters, `c1` first (none for an external cluster): dropping
    /// one stops the servers this process started.
    local: Vec<Arc<LocalCluster>>,
}

/// The nodes to serve: the external cluster given by URL or config file, or
/// the local clusters, started (or found running) here.
fn nodes(args: &ServeArgs) -> Result<Nodes, Exit> {
    let external = match (&args.primary, &args.cluster_config) {
        (Some(primary), _) => Some(vec![ExternalCluster {
            name: ecoshard_postgres::cluster_name(1),
            primary: primary.clone(),
            replicas: args.replicas.clone(),
        }]),
        (None, Some(path)) => Some(ExternalConfig::read(path)?),
        (None, None) => None,
    };
    if let Some(clusters) = external {
        if args.auto_failover || args.sync_replication {
            return Err(Exit::usage(
                "--auto-failover and --sync-replication manage the local cluster; an external \
                 cluster's failover and synchronous_standby_names are its own to set",
            ));
        }
        let mut specs = Vec::with_capacity(clusters.len());
        for cluster in clusters {
            let topology = Topology::external(&cluster.primary, &cluster.replicas)
                .map_err(|why| Exit::usage(format!("{}: {why}", cluster.name)))?;
            specs.push(ClusterSpec {
                name: cluster.name,
                topology,
                control: None,
            });
        }
        let c1 = specs.remove(0);
        return Ok(Nodes {
            topology: c1.topology,
            others: specs,
            local: Vec::new(),
        });
    }
    let local = start_local(args)?;
    let mut specs = local.iter().map(|cluster| ClusterSpec {
        name: cluster.name().to_string(),
        topology: Topology::local(cluster, &args.database),
        control: Some(Arc::clone(cluster) as Control),
    });
    let Some(c1) = specs.next() else {
        return Err(Exit::runtime("no local cluster started"));
    };
    let others = specs.collect();
    Ok(Nodes {
        topology: c1.topology,
        others,
        local,
    })
}

/// Starts the local clusters `--clusters` and `--standbys` ask for (as
/// `ecoshard cluster up` does) and says where each node is.
fn start_local(args: &ServeArgs) -> Result<Vec<Arc<LocalCluster>>, Exit> {
    let mut options = args.local.options();
    options.sync_replication = args.sync_replication;
    options.standbys = args.standbys as usize;
    let count = args.clusters.map_or_else(
        || LocalClusters::recorded_in(&options.data_dir).max(1),
        |count| count as usize,
    );
    LocalClusters::check_shape(options.pg_port, count, options.standbys).map_err(Exit::usage)?;
    let last_port = u32::from(options.pg_port)
        + (count as u32 - 1) * u32::from(ecoshard_postgres::PORT_BLOCK)
        + options.standbys as u32;
    if count == 1 {
        tracing::info!(
            "starting the local cluster in {} (ports {}-{last_port})",
            args.local.data_dir.display(),
            args.local.pg_port,
        );
    } else {
        tracing::info!(
            "starting {count} local clusters in {} (ports {}-{last_port})",
            args.local.data_dir.display(),
            args.local.pg_port,
        );
    }
    let clusters: Vec<Arc<LocalCluster>> = LocalClusters::start(&options, count)
        .map_err(Exit::runtime)?
        .into_clusters()
        .into_iter()
        .map(Arc::new)
        .collect();
    if clusters.iter().all(|cluster| cluster.joined()) {
        tracing::info!(
            "joined the cluster(s) running in {} (started by another bridge or `ecoshard \
             cluster up`): this bridge stops none of their servers",
            args.local.data_dir.display()
        );
    }
    if clusters.len() > 1 {
        for cluster in &clusters {
            let nodes: Vec<String> = cluster
                .nodes()
                .iter()
                .map(|node| format!("{} 127.0.0.1:{}", node.name, node.port))
                .collect();
            tracing::info!("{}: {}", cluster.name(), nodes.join(", "));
        }
        tracing::info!(
            "clusters c1…c{} are up and monitored (health, lag, failover, node actions); \
             shards are placed round-robin over them unless the layout names their cluster",
            clusters.len()
        );
    }
    Ok(clusters)
}

/// The token changes need, and whether it was generated: the one given; a
/// new one when listening beyond loopback; else none.
fn token_for(args: &ServeArgs) -> Result<(Option<Token>, bool), Exit> {
    if let Some(token) = &args.token {
        return Ok((Some(token.clone()), false));
    }
    if args.listen.ip().is_loopback() {
        return Ok((None, false));
    }
    let token =
        Token::generate().map_err(|error| Exit::runtime(format!("generating a token: {error}")))?;
    Ok((Some(token), true))
}

/// The one line that says where the bridge is. A generated token is printed
/// here only, in the URL's fragment (which browsers never send to a server);
/// a given one never.
fn announce(addr: SocketAddr, token: Option<&Token>, generated: bool) {
    let anywhere = if addr.ip().is_unspecified() {
        " (every address of this machine: put one in place of the unspecified one)"
    } else {
        ""
    };
    match token {
        None => tracing::info!("bridge listening on http://{addr}/ (Ctrl-C stops it)"),
        Some(token) if generated => eprintln!(
            "bridge listening on http://{addr}/#token={}{anywhere}\n\
             open that URL once: the page keeps the token for its tab; changes from \
             programs need Authorization: Bearer with it (ecoshard apply --token)",
            token.reveal()
        ),
        Some(_) => tracing::info!(
            "bridge listening on http://{addr}/{anywhere}; changes need the token given \
             (--token or ECOSHARD_TOKEN): open http://{addr}/#token=TOKEN once"
        ),
    }
}

/// `--max-connections`, lowered when the process's limit of open files
/// (`ulimit -n`) could not hold that many beside the database pools and files:
/// past that limit, new connections (`/api/health` too) would fail to be
/// accepted instead of being refused.
fn connection_cap(args: &ServeArgs, nodes: usize) -> usize {
    let reserved = (nodes * args.pool_size + RESERVED_FILES) as u64;
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| open_files_limit(&limits));
    let cap = fitted_cap(args.max_connections, reserved, limit);
    if cap < args.max_connections {
        tracing::warn!(
            "at most {cap} connections instead of --max-connections {}: the limit of open \
             files is {} (raise it with ulimit -n)",
            args.max_connections,
            limit.unwrap_or_default()
        );
    }
    usize::try_from(cap).unwrap_or(usize::MAX)
}

/// Files kept for the bridge beside its connections and pools (the page's
/// files being sent, logs, the runtime's own).
const RESERVED_FILES: usize = 128;
/// Fewest connections the bridge takes whatever the file limit.
const MIN_CONNECTIONS: u64 = 16;

fn fitted_cap(requested: u64, reserved: u64, limit: Option<u64>) -> u64 {
    match limit {
        Some(limit) if requested.saturating_add(reserved) > limit => limit
            .saturating_sub(reserved)
            .max(MIN_CONNECTIONS)
            .min(requested),
        _ => requested,
    }
}

/// The soft limit of open files in the text of `/proc/self/limits`
/// (`None` when unlimited or not there).
fn open_files_limit(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|values| values.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
}

/// `--cluster-config FILE`: an existing cluster, as `--primary` and
/// `--replica` would give it, or several (`{"clusters": [{"name", "primary",
/// "replicas"}, …]}`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExternalConfig {
    primary: Option<String>,
    #[serde(default)]
    replicas: Vec<String>,
    clusters: Option<Vec<ExternalCluster>>,
}

/// One existing cluster.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct ExternalCluster {
    name: String,
    primary: String,
    #[serde(default)]
    replicas: Vec<String>,
}

impl ExternalConfig {
    fn read(path: &Path) -> Result<Vec<ExternalCluster>, Exit> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| Exit::usage(format!("cannot read {}: {error}", path.display())))?;
        Self::parse(&text).map_err(|why| {
            Exit::usage(format!(
                "{} is not a cluster config ({{\"primary\": URL, \"replicas\": [URL, …]}} or \
                 {{\"clusters\": [{{\"name\": \"c1\", \"primary\": URL, \"replicas\": [URL, …]}}, …]}}): {why}",
                path.display()
            ))
        })
    }

    /// The clusters a config's text names, `c1` first.
    fn parse(text: &str) -> Result<Vec<ExternalCluster>, String> {
        let config: ExternalConfig =
            serde_json::from_str(text).map_err(|error| error.to_string())?;
        match (config.primary, config.clusters) {
            (Some(primary), None) => Ok(vec![ExternalCluster {
                name: ecoshard_postgres::cluster_name(1),
                primary,
                replicas: config.replicas,
            }]),
            (None, Some(clusters)) if config.replicas.is_empty() => {
                check_names(&clusters)?;
                Ok(clusters)
            }
            _ => Err("give either primary (and replicas) or clusters".to_string()),
        }
    }
}

/// Clusters are named `c1`, `c2`, … in order, as local ones are (`c1`
/// holds every shard); at most [`ecoshard_postgres::MAX_CLUSTERS`].
fn check_names(clusters: &[ExternalCluster]) -> Result<(), String> {
    if !(1..=ecoshard_postgres::MAX_CLUSTERS).contains(&clusters.len()) {
        return Err(format!(
            "give 1 to {} clusters",
            ecoshard_postgres::MAX_CLUSTERS
        ));
    }
    for (index, cluster) in clusters.iter().enumerate() {
        let expected = ecoshard_postgres::cluster_name(index + 1);
        if cluster.name != expected {
            return Err(format!(
                "the clusters are named c1, c2, … in order (c1 holds every shard): \
                 the {} is {:?}, not {expected:?}",
                ordinal(index + 1),
                cluster.name.chars().take(40).collect::<String>()
            ));
        }
    }
    Ok(())
}

fn ordinal(n: usize) -> String {
    match n {
        1 => "first".to_string(),
        2 => "second".to_string(),
        3 => "third".to_string(),
        n => format!("{n}th"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_fits_the_file_limit() {
        let check = |requested: u64, limit: Option<u64>, expected: u64| {
            assert_eq!(
                fitted_cap(requested, 176, limit),
                expected,
                "{requested} {limit:?}"
            );
        };
        check(1024, None, 1024);
        check(1024, Some(20_000), 1024);
        check(1024, Some(1200), 1024);
        check(1024, Some(1024), 848);
        check(1024, Some(256), 80);
        check(1024, Some(100), 16);
        check(8, Some(100), 8);
    }

    #[test]
    fn cluster_configs_give_their_clusters_or_say_what_is_wrong() {
        fn check(text: &str, expected: Result<&[&str], &str>) {
            let got = ExternalConfig::parse(text)
                .map(|clusters| clusters.into_iter().map(|c| c.name).collect::<Vec<_>>());
            match (got, expected) {
                (Ok(names), Ok(expected)) => assert_eq!(names, expected, "{text}"),
                (Err(why), Err(expected)) => assert!(why.contains(expected), "{text}: {why}"),
                (got, expected) => panic!("{text}: {got:?} ≠ {expected:?}"),
            }
        }
        let one = r#"{"name": "c1", "primary": "postgres://db1/x"}"#;
        let two =
            r#"{"name": "c2", "primary": "postgres://db2/x", "replicas": ["postgres://db3/x"]}"#;
        check(
            r#"{"primary": "postgres://db1/x", "replicas": []}"#,
            Ok(&["c1"]),
        );
        check(r#"{"primary": "postgres://db1/x"}"#, Ok(&["c1"]));
        check(
            &format!(r#"{{"clusters": [{one}, {two}]}}"#),
            Ok(&["c1", "c2"]),
        );
        check(
            &format!(r#"{{"clusters": [{two}, {one}]}}"#),
            Err(r#"the first is "c2", not "c1""#),
        );
        check(
            &format!(r#"{{"clusters": [{one}, {one}]}}"#),
            Err(r#"the second is "c1""#),
        );
        check(r#"{"clusters": []}"#, Err("give 1 to 8 clusters"));
        check(
            &format!(r#"{{"primary": "postgres://db1/x", "clusters": [{one}]}}"#),
            Err("either"),
        );
        check(r#"{"replicas": ["postgres://db1/x"]}"#, Err("either"));
        check(
            r#"{"clusters": [{"name": "c1"}]}"#,
            Err("missing field `primary`"),
        );
        check(
            r#"{"primary": "postgres://db1/x", "extra": 1}"#,
            Err("unknown field `extra`"),
        );
    }

    #[test]
    fn the_soft_limit_of_open_files_is_read() {
        let check = |text: &str, expected: Option<u64>| {
            assert_eq!(open_files_limit(text), expected, "{text}");
        };
        check(
            "Max open files            1024                 4096                 files",
            Some(1024),
        );
        check(
            "Limit  Soft Limit  Hard Limit  Units\nMax open files  20000  20000  files\n",
            Some(20000),
        );
        check(
            "Max open files            unlimited            unlimited            files",
            None,
        );
        check("Max processes  63459  63459  processes", None);
        check("", None);
    }
}
