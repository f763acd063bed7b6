//! `ecoshard serve`: starts (or reuses) the local cluster, or connects to the
//! one given by URL, then runs the HTTP server until Ctrl-C or SIGTERM, and
//! stops the servers it started.

use std::path::Path;
use std::sync::Arc;

use ecoshard_core::Layout;
use serde::Deserialize;

use super::{Failure, ServeArgs};
use crate::state::{AppState, BridgeConfig};
use crate::topology::Topology;
use ecoshard_postgres::LocalCluster;

pub(super) fn run(args: &ServeArgs) -> Result<(), Failure> {
    super::init_logging();
    let initial_layout = Layout::with_count(args.strategy, args.shards)?;
    initial_layout.validate()?;
    if initial_layout.strategy == ecoshard_core::StrategyKind::BoundedLoad {
        return Err(Failure::usage(crate::rebalance::BOUNDED_LOAD_REFUSAL));
    }
    if initial_layout.shards.len() > crate::rebalance::MAX_DATABASE_SHARDS {
        return Err(Failure::usage(format!(
            "--shards {} is more than the database takes: at most {}",
            args.shards,
            crate::rebalance::MAX_DATABASE_SHARDS
        )));
    }
    if !crate::schema::is_plain_identifier(&args.database) {
        return Err(Failure::usage(
            "--database must be 1 to 63 of a-z, 0-9 and _, not starting with a digit",
        ));
    }
    // Held until the end: dropping it stops the servers this process started.
    let mut local = None;
    let external = match (&args.primary, &args.cluster_config) {
        (Some(primary), _) => Some((primary.clone(), args.replicas.clone())),
        (None, Some(path)) => {
            let config = ExternalConfig::read(path)?;
            Some((config.primary, config.replicas))
        }
        (None, None) => None,
    };
    let topology = match external {
        Some((primary, replicas)) => {
            if args.auto_failover || args.sync_replication {
                return Err(Failure::usage(
                    "--auto-failover and --sync-replication manage the local cluster; an external \
                     cluster's failover and synchronous_standby_names are its own to set",
                ));
            }
            Topology::external(&primary, &replicas).map_err(Failure::usage)?
        }
        None => {
            tracing::info!(
                "starting the local cluster in {} (ports {}-{})",
                args.local.data_dir.display(),
                args.local.pg_port,
                args.local.pg_port.saturating_add(2)
            );
            let mut options = args.local.options();
            options.sync_replication = args.sync_replication;
            let cluster = LocalCluster::start(&options).map_err(Failure::runtime)?;
            let topology = Topology::local(&cluster, &args.database);
            local = Some(Arc::new(cluster));
            topology
        }
    };
    let web_dir = args
        .web_dir
        .clone()
        .or_else(|| Some(crate::web::default_dir()).filter(|dir| dir.is_dir()));
    let config = BridgeConfig {
        pool_size: args.pool_size,
        max_lag_ms: args.max_lag_ms,
        initial_layout,
        web_dir,
        create_database: true,
        max_in_flight: args.max_in_flight,
        max_event_clients: args.max_event_clients,
        rebalance_batch: args.rebalance_batch as usize,
        local: local.clone(),
        auto_failover: args.auto_failover,
        ..BridgeConfig::new(topology)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| Failure::runtime(format!("starting the runtime: {error}")))?;
    let outcome = runtime.block_on(async {
        let state = AppState::start(config).await.map_err(Failure::runtime)?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|error| {
                Failure::runtime(format!("cannot listen on {}: {error}", args.listen))
            })?;
        let addr = listener.local_addr().unwrap_or(args.listen);
        tracing::info!("bridge listening on http://{addr}/ (Ctrl-C stops it)");
        crate::server::serve(listener, state, crate::server::shutdown_signal())
            .await
            .map_err(|error| Failure::runtime(format!("serving: {error}")))
    });
    // Background tasks end with the runtime; then the servers stop.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    if let Some(cluster) = local.take() {
        // Stopped here even if a task still holds the cluster.
        cluster.stop_servers();
        drop(cluster);
        tracing::info!("stopped the local cluster's servers this bridge started");
    }
    outcome
}

/// `--cluster-config FILE`: an existing cluster, as `--primary` and `--replica` would give it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExternalConfig {
    primary: String,
    #[serde(default)]
    replicas: Vec<String>,
}

impl ExternalConfig {
    fn read(path: &Path) -> Result<Self, Failure> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| Failure::usage(format!("cannot read {}: {error}", path.display())))?;
        serde_json::from_str(&text).map_err(|error| {
            Failure::usage(format!(
                "{} is not a cluster config ({{\"primary\": URL, \"replicas\": [URL, …]}}): {error}",
                path.display()
            ))
        })
    }
}
