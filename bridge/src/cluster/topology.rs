//! Which PostgreSQL nodes the bridge talks to: the local cluster's, or those
//! given by URL. Today every shard lives on one cluster (a primary and its
//! standbys); `Topology` is where shard → cluster would be chosen when one
//! cluster is outgrown.

use std::str::FromStr as _;
use std::time::Duration;

use ecoshard_core::wire::{ClusterMode, NodeRole};

use ecoshard_postgres::LocalCluster;

/// One node and how to reach it.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// `primary`, `standby-1`, … (a standby's name is its `application_name`
    /// in the primary's `pg_stat_replication`).
    pub name: String,
    /// Its role.
    pub role: NodeRole,
    /// `host:port`, for display.
    pub addr: String,
    /// Connection settings.
    pub config: tokio_postgres::Config,
    /// The passfile a server on this machine reads this node's passwords
    /// from (a local cluster's), for another cluster's subscription to it;
    /// `None`: the subscriber's own (`~/.pgpass` of its server).
    pub passfile: Option<std::path::PathBuf>,
}

impl NodeSpec {
    /// How another cluster's server connects to this node for a logical
    /// subscription (libpq's `key=value` form): host, port, database and
    /// user of the bridge's settings, and no password — the server reads
    /// it from the passfile.
    pub(crate) fn subscriber_conninfo(&self) -> String {
        let (host, port) = self.addr.rsplit_once(':').unwrap_or((&self.addr, "5432"));
        let mut conninfo = format!(
            "host={} port={} dbname={} user={} application_name=ecoshard_move",
            conninfo_value(host),
            conninfo_value(port),
            conninfo_value(self.config.get_dbname().unwrap_or("ecomarket")),
            conninfo_value(self.config.get_user().unwrap_or("ecoshard")),
        );
        if let Some(passfile) = &self.passfile {
            conninfo.push_str(&format!(
                " passfile={} sslmode=disable",
                conninfo_value(&passfile.display().to_string())
            ));
        }
        conninfo
    }
}

/// A value of libpq's `key=value` form, quoted.
fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Every node of the cluster, primary first.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Local (started by the bridge) or external.
    pub mode: ClusterMode,
    /// Primary first, then the standbys.
    pub nodes: Vec<NodeSpec>,
}

impl Topology {
    /// The nodes of a local cluster, connecting as `ecoshard` to `database`.
    pub fn local(cluster: &LocalCluster, database: &str) -> Self {
        let nodes = cluster
            .nodes()
            .iter()
            .map(|node| NodeSpec {
                name: node.name.clone(),
                role: match node.role {
                    ecoshard_postgres::Role::Primary => NodeRole::Primary,
                    ecoshard_postgres::Role::Standby => NodeRole::Standby,
                },
                addr: format!("127.0.0.1:{}", node.port),
                config: with_timeouts(local_socket_config(&cluster.endpoint(node), database)),
                passfile: Some(cluster.passfile()),
            })
            .collect();
        Topology {
            mode: ClusterMode::Local,
            nodes,
        }
    }

    /// Nodes given by URL (`postgres://user@host:port/db` or `key=value`
    /// form). A URL without a password takes it from `PGPASSWORD` or the
    /// passfile (`PGPASSFILE`, `~/.pgpass`).
    pub fn external(primary: &str, replicas: &[String]) -> Result<Self, String> {
        let mut nodes = vec![node_from_url("primary", NodeRole::Primary, primary)?];
        for (index, url) in replicas.iter().enumerate() {
            nodes.push(node_from_url(
                &format!("standby-{}", index + 1),
                NodeRole::Standby,
                url,
            )?);
        }
        Ok(Topology {
            mode: ClusterMode::External,
            nodes,
        })
    }
}

/// How the bridge connects to a node of the local cluster (over TCP).
pub fn local_config(
    endpoint: &ecoshard_postgres::Endpoint,
    database: &str,
) -> tokio_postgres::Config {
    let mut config = endpoint_config(endpoint, database);
    config.host(&endpoint.host);
    config
}

/// How the bridge connects to a node of the local cluster: over the node's
/// Unix socket (the same machine: no TCP stack on either side).
fn local_socket_config(
    endpoint: &ecoshard_postgres::Endpoint,
    database: &str,
) -> tokio_postgres::Config {
    let mut config = endpoint_config(endpoint, database);
    config.host_path(&endpoint.socket_dir);
    config
}

/// A local node's port, role, password and `database`, without the host
/// (TCP or Unix socket: the callers say which).
fn endpoint_config(
    endpoint: &ecoshard_postgres::Endpoint,
    database: &str,
) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .port(endpoint.port)
        .user(&endpoint.user)
        .password(endpoint.password.as_str())
        .dbname(database)
        .application_name("ecoshard-bridge");
    config
}

fn node_from_url(name: &str, role: NodeRole, url: &str) -> Result<NodeSpec, String> {
    let mut config = tokio_postgres::Config::from_str(url)
        .map_err(|error| format!("{name}: bad connection URL: {error}"))?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => return Err(format!("{name}: the URL needs a TCP host")),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    if config.get_user().is_none() {
        config.user("ecoshard");
    }
    if config.get_dbname().is_none() {
        config.dbname("ecomarket");
    }
    if config.get_password().is_none() {
        let user = config.get_user().unwrap_or("ecoshard").to_string();
        let database = config.get_dbname().unwrap_or("ecomarket").to_string();
        if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        } else if let Some(text) = ecoshard_postgres::pgpass::default_path()
            .and_then(|path| std::fs::read_to_string(path).ok())
            && let Some(password) = ecoshard_postgres::pgpass::lookup_for(
                &text,
                &host,
                &port.to_string(),
                &database,
                &user,
            )
        {
            config.password(password);
        }
    }
    config.application_name("ecoshard-bridge");
    Ok(NodeSpec {
        name: name.to_string(),
        role,
        addr: format!("{host}:{port}"),
        config: with_timeouts(config),
        passfile: None,
    })
}

/// Bounded waits everywhere: a dead node costs at most seconds, never a hang.
fn with_timeouts(mut config: tokio_postgres::Config) -> tokio_postgres::Config {
    config
        .connect_timeout(Duration::from_secs(2))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .options("-c statement_timeout=10000");
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_urls_name_nodes_in_order() {
        let topology = Topology::external(
            "postgres://ecoshard:pw@db1:5433/shop",
            &["host=db2 port=5432 user=ecoshard password=pw".to_string()],
        )
        .unwrap();
        let names: Vec<&str> = topology.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["primary", "standby-1"]);
        assert_eq!(topology.nodes[0].addr, "db1:5433");
        assert_eq!(topology.nodes[0].config.get_dbname(), Some("shop"));
        assert_eq!(topology.nodes[1].config.get_dbname(), Some("ecomarket"));
        assert_eq!(topology.nodes[1].role, NodeRole::Standby);
    }

    #[test]
    fn bad_urls_are_refused_with_the_node_name() {
        let error = Topology::external("postgres://[bad", &[]).unwrap_err();
        assert!(error.starts_with("primary:"), "{error}");
    }
}
