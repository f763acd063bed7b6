//! The local cluster: a real PostgreSQL primary and streaming standbys on
//! loopback, made from the system's binaries in a data directory that is
//! reused on the next start (seconds) and rebuilt when broken.
//!
//! ```text
//! DIR/cluster.json   what the launcher remembers (ports, PostgreSQL version,
//!                    which node is primary)
//! DIR/pgpass         passwords of `replicator` and `ecoshard` (0600)
//! DIR/run/           Unix sockets (0700)
//! DIR/log/NODE.log   server logs
//! DIR/primary/  DIR/standby-1/  DIR/standby-2/   data directories (0700)
//! ```
//!
//! Every server this process starts is stopped when the [`LocalCluster`] is
//! dropped and, should the process die without dropping it (a panic in
//! another thread, SIGKILL, a test binary's statics), by a watchdog process
//! that waits for this one to end.
//!
//! Several clusters side by side ([`LocalClusters`]: `c1` in `DIR` as above,
//! `c2` in `DIR/c2`, …, each on its own block of ports) are each such a
//! cluster, with a watchdog of its own.
//!
//! Several processes may use one cluster (`sharing.rs`): a process started
//! while its primary runs (under a bridge, or `ecoshard cluster up`) joins
//! it: it starts nothing, so it stops nothing; the servers a process started
//! stop when it ends only once no other process uses them (else its
//! watchdog stops them when the last one has ended).

mod binaries;
mod clusters;
mod config;
mod error;
mod failover;
mod paths;
pub mod pgpass;
mod process;
mod sharing;
mod watchdog;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use binaries::{PgBinaries, RunAs};
use clusters::Member;
pub use clusters::{
    ClusterStatus, LocalClusters, MAX_CLUSTERS, MAX_STANDBYS, PORT_BLOCK, StoppedNodes,
    cluster_name,
};
pub use config::{ClusterState, Passwords};
use config::{LocalSettings, STATE_FORMAT, Upstream};
pub use error::ClusterError;
pub use failover::Promotion;
use paths::Paths;
pub use process::slot_name;
use process::{
    check_output, has_data_dir, is_running, log_tail, port_is_free, remove_dir, stop_server,
};
use watchdog::Watchdog;

/// Default port of the primary; standby `i` listens on the port plus `i`.
pub const DEFAULT_PG_PORT: u16 = 55432;
/// Name of the primary node.
pub const PRIMARY: &str = "primary";

/// How to start a local cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Where the data directories live.
    pub data_dir: PathBuf,
    /// Port of the primary; standbys on the next ports.
    pub pg_port: u16,
    /// Number of standbys (named `standby-1`, `standby-2`, …).
    pub standbys: usize,
    /// Directory of PostgreSQL's binaries, when not found by itself.
    pub pg_bin: Option<PathBuf>,
    /// User that runs the servers when this process is root (default `postgres`).
    pub pg_user: Option<String>,
    /// Stop the servers this process started when it ends (false for `cluster up`).
    pub stop_on_exit: bool,
    /// Also delete the data directory when the process ends (tests).
    pub remove_on_exit: bool,
    /// Commits wait for one standby (`synchronous_standby_names = ANY 1 (…)`).
    pub sync_replication: bool,
}

impl ClusterOptions {
    /// Two standbys, servers stopped on exit, data kept.
    pub fn new(data_dir: impl Into<PathBuf>, pg_port: u16) -> Self {
        ClusterOptions {
            data_dir: data_dir.into(),
            pg_port,
            standbys: 2,
            pg_bin: None,
            pg_user: None,
            stop_on_exit: true,
            remove_on_exit: false,
            sync_replication: false,
        }
    }
}

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Takes writes.
    Primary,
    /// Streams from the primary.
    Standby,
}

/// How a client reaches a node of the local cluster as the `ecoshard` role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `127.0.0.1`.
    pub host: String,
    /// TCP port on `host`.
    pub port: u16,
    /// The directory of the node's Unix socket (same port), reachable by
    /// clients on this machine.
    pub socket_dir: PathBuf,
    /// `ecoshard`.
    pub user: String,
    /// Its password.
    pub password: String,
}

/// One node of the local cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNode {
    /// `primary`, `standby-1`, … (names stay; roles change with a failover).
    pub name: String,
    /// Its role when this was asked.
    pub role: Role,
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Its data directory.
    pub data: PathBuf,
}

/// One line of `ecoshard cluster status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NodeState {
    /// Node name.
    pub name: String,
    /// `primary` or `standby`.
    pub role: Role,
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Whether its server runs.
    pub running: bool,
}

/// A started (or adopted) local cluster. Dropping it stops the servers it started.
#[derive(Debug)]
pub struct LocalCluster {
    /// `c1`, `c2`, … (`c1` when it is the only one).
    name: String,
    /// Its servers' `shared_buffers`.
    shared_buffers: &'static str,
    layout: Paths,
    bins: PgBinaries,
    run_as: RunAs,
    passwords: Passwords,
    /// Every node; their `role` fields are not kept: `primary` says which is.
    nodes: Vec<LocalNode>,
    /// Index in `nodes` of the primary (persisted in `cluster.json`).
    primary: Mutex<usize>,
    /// Whether commits should wait for a standby.
    sync_replication: bool,
    /// Whether the primary's config asks for synchronous standbys now (only
    /// once they stream: before, every commit would wait forever).
    sync_active: AtomicBool,
    /// One start, stop or promotion at a time.
    operations: Mutex<()>,
    /// Names of the servers this process started, to stop on drop.
    started: Mutex<Vec<String>>,
    stop_on_exit: bool,
    /// Whether it found the cluster running and joined it (started nothing).
    joined: bool,
    /// The users lock, held shared (exclusively once this process stops
    /// its servers): see `sharing.rs`.
    users: Option<std::fs::File>,
    _watchdog: Option<Watchdog>,
}

impl LocalCluster {
    /// Starts the cluster in `options.data_dir`, creating or repairing it as
    /// needed; servers already running there are used as they are.
    pub fn start(options: &ClusterOptions) -> Result<Self, ClusterError> {
        Self::start_member(options, &Member::single())
    }

    /// [`LocalCluster::start`] for one cluster of a set: its name, its
    /// servers' size, and the other clusters' watchdogs its own awaits
    /// before it removes the data directory.
    fn start_member(options: &ClusterOptions, member: &Member) -> Result<Self, ClusterError> {
        let bins = PgBinaries::find(options.pg_bin.as_deref())?;
        let run_as = RunAs::detect(options.pg_user.as_deref())?;
        let layout = Paths::new(&options.data_dir);
        layout.prepare(&run_as)?;
        // One process at a time decides and starts; none stops servers
        // while this holds the users lock (a watchdog still stopping them
        // is waited for).
        let _starting = sharing::lock_start(&layout, &run_as)?;
        let users = sharing::lock_use(&layout, &run_as)?;
        let nodes = layout.nodes(options.pg_port, options.standbys);
        let mut cluster = LocalCluster {
            name: member.name.clone(),
            shared_buffers: member.shared_buffers,
            layout,
            bins,
            run_as,
            passwords: Passwords {
                replicator: String::new(),
                ecoshard: String::new(),
            },
            nodes,
            primary: Mutex::new(0),
            sync_replication: options.sync_replication,
            sync_active: AtomicBool::new(false),
            operations: Mutex::new(()),
            started: Mutex::new(Vec::new()),
            stop_on_exit: options.stop_on_exit,
            joined: false,
            users: Some(users),
            _watchdog: None,
        };
        if options.stop_on_exit && cluster.primary_runs() {
            cluster.join(options)?;
        } else {
            cluster.bring_up(options)?;
        }
        let started = cluster
            .started
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        if (options.stop_on_exit && !started.is_empty()) || options.remove_on_exit {
            let data_dirs: Vec<PathBuf> = cluster
                .nodes
                .iter()
                .filter(|node| options.stop_on_exit && started.contains(&node.name))
                .map(|node| node.data.clone())
                .collect();
            cluster._watchdog = Some(Watchdog::spawn(
                &cluster.run_as,
                &cluster.layout.lock_file(),
                &cluster.layout.users_lock(),
                &cluster.bins.tool("pg_ctl"),
                &data_dirs,
                options
                    .remove_on_exit
                    .then_some(cluster.layout.root.as_path()),
                &member.await_before_removing,
                &cluster.layout.root,
            )?);
        }
        Ok(cluster)
    }

    /// Stops every server running in `data_dir` (whoever started it).
    /// Answers each node's name and whether it was running.
    pub fn stop_all_in(options: &ClusterOptions) -> Result<Vec<(String, bool)>, ClusterError> {
        let bins = PgBinaries::find(options.pg_bin.as_deref())?;
        let run_as = RunAs::detect(options.pg_user.as_deref())?;
        let layout = Paths::new(&options.data_dir);
        let nodes = recorded_nodes(&layout, options);
        let mut stopped = Vec::new();
        // Standbys first, so they do not log the primary's disappearance.
        let mut order: Vec<&LocalNode> = nodes.iter().collect();
        order.sort_by_key(|node| node.role == Role::Primary);
        for node in order {
            let running = is_running(&bins, &run_as, &layout.root, &node.data);
            if running {
                stop_server(&bins, &run_as, &layout.root, &node.data, "fast")?;
            }
            stopped.push((node.name.clone(), running));
        }
        stopped.sort_by_key(|(name, _)| nodes.iter().position(|node| &node.name == name));
        Ok(stopped)
    }

    /// Which nodes of the cluster in `data_dir` run.
    pub fn status_in(options: &ClusterOptions) -> Result<Vec<NodeState>, ClusterError> {
        let bins = PgBinaries::find(options.pg_bin.as_deref())?;
        let run_as = RunAs::detect(options.pg_user.as_deref())?;
        let layout = Paths::new(&options.data_dir);
        Ok(recorded_nodes(&layout, options)
            .into_iter()
            .map(|node| NodeState {
                running: layout.root.exists()
                    && is_running(&bins, &run_as, &layout.root, &node.data),
                name: node.name,
                role: node.role,
                port: node.port,
            })
            .collect())
    }

    /// The nodes in their fixed order (`primary`, `standby-1`, …), each with
    /// its role now.
    pub fn nodes(&self) -> Vec<LocalNode> {
        let primary = self.primary_index();
        self.nodes
            .iter()
            .enumerate()
            .map(|(index, node)| LocalNode {
                role: if index == primary {
                    Role::Primary
                } else {
                    Role::Standby
                },
                ..node.clone()
            })
            .collect()
    }

    /// Whether this process found the cluster running (under a bridge, or
    /// `ecoshard cluster up`) and joined it: it started none of its servers,
    /// so it stops none when it ends.
    pub fn joined(&self) -> bool {
        self.joined
    }

    /// The cluster's name: `c1`, `c2`, … (`c1` when it is the only one).
    /// Its nodes are named within it (`primary`, `standby-1`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Name of the node that is primary now.
    pub fn primary_name(&self) -> String {
        self.primary().name
    }

    /// The primary `cluster.json` names now, read without waiting for the
    /// operations lock: a promotion another process made is recorded there
    /// once the promoted server takes writes. `None` when it cannot be read.
    pub fn recorded_primary_name(&self) -> Option<String> {
        let state = ClusterState::load(&self.layout.state_file())?;
        Some(
            self.nodes[recorded_primary(&self.nodes, Some(&state))]
                .name
                .clone(),
        )
    }

    /// Whether commits wait for a standby (`--sync-replication`).
    pub fn sync_replication(&self) -> bool {
        self.sync_replication
    }

    /// Whether the server of `name` runs (`pg_ctl status`).
    pub fn is_node_running(&self, name: &str) -> Result<bool, ClusterError> {
        let node = self.node(name)?.clone();
        Ok(self.is_running(&node))
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.layout.root
    }

    /// The passfile with the `replicator` and `ecoshard` passwords.
    pub fn passfile(&self) -> PathBuf {
        self.layout.passfile()
    }

    /// PostgreSQL's binaries in use.
    pub fn binaries(&self) -> &PgBinaries {
        &self.bins
    }

    /// The `ecoshard` role's password.
    pub fn ecoshard_password(&self) -> &str {
        &self.passwords.ecoshard
    }

    /// How a client connects to `node` as the `ecoshard` role.
    pub fn endpoint(&self, node: &LocalNode) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".to_owned(),
            port: node.port,
            socket_dir: self.layout.run_dir(),
            user: "ecoshard".to_owned(),
            password: self.passwords.ecoshard.clone(),
        }
    }

    /// Stops one node: `fast` (clean) or `immediate` (like a crash).
    pub fn stop_node(&self, name: &str, immediate: bool) -> Result<(), ClusterError> {
        let node = self.node(name)?.clone();
        let _operation = self.operation();
        let mode = if immediate { "immediate" } else { "fast" };
        stop_server(
            &self.bins,
            &self.run_as,
            &self.layout.root,
            &node.data,
            mode,
        )
    }

    /// Starts one node again (after [`LocalCluster::stop_node`]) in its role
    /// now. A node that is no longer primary (the old primary after a
    /// failover) is first made a standby of the new one (`pg_rewind`, or a
    /// fresh `pg_basebackup` when that fails): it never comes back as a
    /// second primary. Answers what was done to it, if anything.
    pub fn start_node(&self, name: &str) -> Result<Option<String>, ClusterError> {
        let node = self.node(name)?.clone();
        let _operation = self.operation();
        if self.is_running(&node) {
            return Ok(None);
        }
        // A killed postmaster not yet reaped still holds its lock files.
        process::wait_reaped(&node.data);
        let mut rebuilt = None;
        if node.name != self.primary_name() {
            rebuilt = self.prepare_standby(&node)?;
        }
        self.write_config(&node)?;
        self.start_server(&node)?;
        Ok(rebuilt)
    }

    /// Stops the servers this process started (standbys first); what
    /// dropping the cluster does, for owners that cannot drop it. Whether
    /// it stopped any (not when another process uses them: its watchdog
    /// then stops them after the last one).
    pub fn stop_servers(&self) -> bool {
        self.stop_on_exit && self.stop_started()
    }

    fn node(&self, name: &str) -> Result<&LocalNode, ClusterError> {
        self.nodes
            .iter()
            .find(|node| node.name == name)
            .ok_or_else(|| ClusterError::UnknownNode { name: name.into() })
    }

    fn primary_index(&self) -> usize {
        *self
            .primary
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The primary now.
    fn primary(&self) -> LocalNode {
        LocalNode {
            role: Role::Primary,
            ..self.nodes[self.primary_index()].clone()
        }
    }

    /// One node operation at a time in this process and across the
    /// processes using the cluster; the primary as `cluster.json` records it
    /// now (another process may have failed over).
    fn operation(&self) -> Operation<'_> {
        let guard = self
            .operations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let file = sharing::lock_operations(&self.layout, &self.run_as)
            .inspect_err(|error| tracing::warn!("{error}: going on without it"))
            .ok();
        let state = ClusterState::load(&self.layout.state_file());
        let recorded = recorded_primary(&self.nodes, state.as_ref());
        *self
            .primary
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = recorded;
        Operation {
            _guard: guard,
            _file: file,
        }
    }

    /// Whether the primary `cluster.json` names runs, with the passwords
    /// there: the cluster is up, under another process.
    fn primary_runs(&self) -> bool {
        let state = ClusterState::load(&self.layout.state_file());
        let index = recorded_primary(&self.nodes, state.as_ref());
        state.is_some()
            && Passwords::read_passfile(&self.layout.passfile()).is_some()
            && self.is_running(&self.nodes[index])
    }

    /// Uses the running cluster as it is: its passwords, nodes and primary
    /// as recorded; starts, repairs and records nothing.
    fn join(&mut self, options: &ClusterOptions) -> Result<(), ClusterError> {
        let state = ClusterState::load(&self.layout.state_file());
        let passwords = Passwords::read_passfile(&self.layout.passfile());
        let (Some(state), Some(passwords)) = (state, passwords) else {
            return Err(ClusterError::Command {
                what: "joining the running cluster".into(),
                detail: "its cluster.json or pgpass is missing".into(),
            });
        };
        if state.pg_port != options.pg_port {
            return Err(ClusterError::RunningElsewhere {
                pg_port: state.pg_port,
            });
        }
        self.nodes = self.layout.nodes(state.pg_port, state.standbys);
        *self.primary.get_mut().unwrap_or_else(|p| p.into_inner()) =
            recorded_primary(&self.nodes, Some(&state));
        self.passwords = passwords;
        // Its primary was configured so by the process that started it.
        self.sync_active
            .store(self.sync_replication, Ordering::SeqCst);
        self.joined = true;
        Ok(())
    }

    fn bring_up(&mut self, options: &ClusterOptions) -> Result<(), ClusterError> {
        let state_file = self.layout.state_file();
        let state = ClusterState::load(&state_file);
        // The primary as last recorded (a failover may have made it a standby-N).
        *self.primary.get_mut().unwrap_or_else(|p| p.into_inner()) =
            recorded_primary(&self.nodes, state.as_ref());
        let primary = self.primary();
        let passwords = Passwords::read_passfile(&self.layout.passfile());
        let primary_running = self.is_running(&primary);
        if primary_running {
            // Started earlier (`ecoshard cluster up`): use it as it is.
            match (&state, &passwords) {
                (Some(state), Some(_)) if state.pg_port != options.pg_port => {
                    return Err(ClusterError::RunningElsewhere {
                        pg_port: state.pg_port,
                    });
                }
                (Some(_), Some(_)) => {}
                _ => {
                    return Err(ClusterError::Command {
                        what: "reusing the running cluster".into(),
                        detail: format!(
                            "{} runs a server but its cluster.json or pgpass is missing: stop it \
                             with `ecoshard cluster down` to have it rebuilt",
                            primary.data.display()
                        ),
                    });
                }
            }
        }
        let reusable = state
            .as_ref()
            .is_some_and(|s| s.format == STATE_FORMAT && s.pg_major == self.bins.major)
            && passwords.is_some()
            && has_data_dir(&primary.data)
            && !primary.data.join("standby.signal").exists();
        if let (true, Some(passwords)) = (reusable, passwords) {
            self.passwords = passwords;
            if !primary_running {
                self.write_config(&primary)?;
                self.start_server(&primary)?;
            }
        } else {
            if primary_running {
                return Err(ClusterError::Command {
                    what: "reusing the running cluster".into(),
                    detail: "it does not match this PostgreSQL version: stop it with `ecoshard cluster down`"
                        .into(),
                });
            }
            // A new cluster: its primary is the node named `primary`.
            *self.primary.get_mut().unwrap_or_else(|p| p.into_inner()) = 0;
            self.create_primary()?;
        }
        ClusterState {
            format: STATE_FORMAT,
            pg_major: self.bins.major,
            pg_port: options.pg_port,
            standbys: options.standbys,
            primary: Some(self.primary_name()),
        }
        .save(&state_file)?;
        let standbys: Vec<LocalNode> = self
            .nodes()
            .into_iter()
            .filter(|node| node.role == Role::Standby)
            .collect();
        for standby in &standbys {
            self.bring_up_standby(standby)?;
        }
        self.wait_streaming(&standbys)?;
        if self.sync_replication {
            self.enable_sync()?;
        }
        Ok(())
    }

    fn create_primary(&mut self) -> Result<(), ClusterError> {
        let primary = self.primary().clone();
        if self.layout.root.join(PRIMARY).exists() || self.layout.state_file().exists() {
            tracing::warn!(
                "{} is not a usable cluster: building a new one",
                self.layout.root.display()
            );
        }
        for node in &self.nodes {
            remove_dir(&node.data)?;
        }
        self.passwords = Passwords::generate()?;
        let passfile = self.layout.passfile();
        self.passwords.write_passfile(&passfile)?;
        self.run_as.own(&passfile)?;
        let initdb = self
            .run_as
            .command(self.bins.tool("initdb"), &self.layout.root)
            .arg("-D")
            .arg(&primary.data)
            .args([
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ])
            .output();
        check_output("initdb", initdb)?;
        self.write_config(&primary)?;
        self.start_server(&primary)?;
        let user = self.server_user_name();
        let mut command = self.run_as.command("sh", &self.layout.root);
        command
            .arg("-s")
            .env("PATH", self.path_env())
            .env("PGHOST", self.layout.run_dir())
            .env("PGPORT", primary.port.to_string())
            .env("POSTGRES_USER", user)
            .env("REPLICATION_PASSWORD", &self.passwords.replicator)
            .env("ECOSHARD_PASSWORD", &self.passwords.ecoshard)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let output = command.spawn().and_then(|mut child| {
            use std::io::Write as _;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(config::INIT_SCRIPT.as_bytes())?;
            }
            child.wait_with_output()
        });
        check_output("init-ecoshard.sh (roles, database, slots)", output)?;
        Ok(())
    }

    fn bring_up_standby(&self, standby: &LocalNode) -> Result<(), ClusterError> {
        if self.is_running(standby) {
            return Ok(());
        }
        let valid = has_data_dir(&standby.data)
            && self.system_identifier(&standby.data)?.is_some()
            && self.system_identifier(&standby.data)?
                == self.system_identifier(&self.primary().data)?;
        if valid {
            // An old primary, or a standby left behind by a failover.
            self.prepare_standby(standby)?;
            self.write_config(standby)?;
            match self.start_server(standby) {
                Ok(()) => return Ok(()),
                Err(error) => {
                    tracing::warn!("{} did not start ({error}): cloning it again", standby.name);
                }
            }
        }
        self.clone_standby(standby)?;
        self.write_config(standby)?;
        self.start_server(standby)
    }

    /// `pg_basebackup -R` of the primary into the standby's directory, using
    /// its replication slot (created when missing).
    fn clone_standby(&self, standby: &LocalNode) -> Result<(), ClusterError> {
        remove_dir(&standby.data)?;
        let slot = self.ensure_slot(standby)?;
        let conninfo = format!(
            "host=127.0.0.1 port={} user=replicator passfile={} application_name={} sslmode=disable",
            self.primary().port,
            self.layout.passfile().display(),
            standby.name
        );
        let output = self
            .run_as
            .command(self.bins.tool("pg_basebackup"), &self.layout.root)
            .arg("-D")
            .arg(&standby.data)
            .args([
                "-X", "stream", "-c", "fast", "-R", "-S", &slot, "-d", &conninfo,
            ])
            .output();
        check_output(&format!("pg_basebackup for {}", standby.name), output)
    }

    /// Writes the node's settings for its role now: a standby streams from
    /// the primary through its slot; the primary in synchronous mode waits
    /// for any one of the others.
    fn write_config(&self, node: &LocalNode) -> Result<(), ClusterError> {
        let passfile = self.layout.passfile();
        let slot = slot_name(&node.name);
        let primary = self.primary();
        let is_primary = node.name == primary.name;
        let upstream = (!is_primary).then(|| Upstream {
            port: primary.port,
            passfile: &passfile,
            slot: &slot,
        });
        let sync_standbys: Vec<String> = if is_primary && self.sync_active.load(Ordering::SeqCst) {
            self.nodes
                .iter()
                .filter(|other| other.name != node.name)
                .map(|other| other.name.clone())
                .collect()
        } else {
            Vec::new()
        };
        config::write_node_config(
            &node.data,
            &LocalSettings {
                name: &node.name,
                port: node.port,
                socket_dir: &self.layout.run_dir(),
                shared_buffers: self.shared_buffers,
                upstream,
                sync_standbys: &sync_standbys,
            },
        )?;
        for file in ["postgresql.conf", "pg_hba.conf", "postgresql.auto.conf"] {
            let path = node.data.join(file);
            if path.exists() {
                self.run_as.own(&path)?;
            }
        }
        Ok(())
    }

    fn start_server(&self, node: &LocalNode) -> Result<(), ClusterError> {
        process::wait_reaped(&node.data);
        if !port_is_free(node.port) {
            return Err(ClusterError::PortInUse {
                node: node.name.clone(),
                port: node.port,
            });
        }
        let log = self.layout.log_file(&node.name);
        let output = self
            .run_as
            .command(self.bins.tool("pg_ctl"), &self.layout.root)
            .arg("start")
            .arg("-D")
            .arg(&node.data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "120", "-s"])
            // Its own process group: a Ctrl-C in the terminal reaches the
            // bridge, which then stops the servers in order.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output();
        match check_output(&format!("starting {}", node.name), output) {
            Ok(()) => {
                if let Ok(mut started) = self.started.lock() {
                    started.push(node.name.clone());
                }
                Ok(())
            }
            Err(ClusterError::Command { what, detail }) => Err(ClusterError::Command {
                what,
                detail: format!("{detail}; log tail: {}", log_tail(&log)),
            }),
            Err(error) => Err(error),
        }
    }

    fn is_running(&self, node: &LocalNode) -> bool {
        is_running(&self.bins, &self.run_as, &self.layout.root, &node.data)
    }

    fn system_identifier(&self, data: &Path) -> Result<Option<String>, ClusterError> {
        self.control_field(data, "Database system identifier:")
            .map_err(|error| ClusterError::io("running pg_controldata", error))
    }

    /// The value of one field `pg_controldata` prints for `data` (`label`
    /// with its colon), trimmed; `None` when it prints no such field.
    fn control_field(&self, data: &Path, label: &str) -> std::io::Result<Option<String>> {
        let output = self
            .run_as
            .command(self.bins.tool("pg_controldata"), &self.layout.root)
            .arg("-D")
            .arg(data)
            .output()?;
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|line| line.strip_prefix(label))
            .map(|value| value.trim().to_string()))
    }

    /// Runs one SQL command as the superuser over the Unix socket; its output.
    fn psql(&self, node: &LocalNode, sql: &str) -> Result<String, ClusterError> {
        let output = self
            .run_as
            .command(self.bins.tool("psql"), &self.layout.root)
            .args([
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                "postgres",
            ])
            .arg("-h")
            .arg(self.layout.run_dir())
            .args(["-p", &node.port.to_string(), "-c", sql])
            .output()
            .map_err(|error| ClusterError::io("running psql", error))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
        } else {
            Err(ClusterError::Command {
                what: format!("psql on {}", node.name),
                detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }

    fn wait_streaming(&self, standbys: &[LocalNode]) -> Result<(), ClusterError> {
        let names: Vec<String> = standbys
            .iter()
            .map(|node| format!("'{}'", node.name))
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND application_name IN ({})",
            names.join(",")
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.psql(&self.primary(), &sql)? == names.len().to_string() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ClusterError::Timeout {
                    what: "the standbys to stream from the primary".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn server_user_name(&self) -> String {
        match &self.run_as {
            RunAs::User { name, .. } => name.clone(),
            RunAs::Current => Command::new("id")
                .arg("-un")
                .output()
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
                .unwrap_or_else(|_| "postgres".into()),
        }
    }

    fn path_env(&self) -> String {
        format!(
            "{}:/usr/local/bin:/usr/bin:/bin",
            self.bins.bindir.display()
        )
    }

    /// Stops the servers this process started, standbys first, unless
    /// another process uses them: then its watchdog stops them once the
    /// last one has ended.
    fn stop_started(&self) -> bool {
        let started = match self.started.lock() {
            Ok(mut started) => std::mem::take(&mut *started),
            Err(_) => return false,
        };
        if started.is_empty() {
            return false;
        }
        if !self.users.as_ref().is_none_or(sharing::alone) {
            tracing::info!(
                "{}: left running for the other processes using it (its watchdog stops \
                 what this one started after the last of them)",
                self.layout.root.display()
            );
            return false;
        }
        for node in self.nodes.iter().rev() {
            if started.contains(&node.name)
                && let Err(error) = stop_server(
                    &self.bins,
                    &self.run_as,
                    &self.layout.root,
                    &node.data,
                    "fast",
                )
            {
                tracing::warn!("stopping {}: {error}", node.name);
            }
        }
        true
    }
}

/// Held during a node operation: the process's mutex and the data
/// directory's operations lock.
struct Operation<'a> {
    _guard: std::sync::MutexGuard<'a, ()>,
    _file: Option<std::fs::File>,
}

/// The nodes of the cluster in `data_dir` with their roles as `cluster.json` records them.
fn recorded_nodes(layout: &Paths, options: &ClusterOptions) -> Vec<LocalNode> {
    let state = ClusterState::load(&layout.state_file());
    let (port, standbys) = state
        .as_ref()
        .map(|s| (s.pg_port, s.standbys))
        .unwrap_or((options.pg_port, options.standbys));
    let mut nodes = layout.nodes(port, standbys);
    let primary = recorded_primary(&nodes, state.as_ref());
    for (index, node) in nodes.iter_mut().enumerate() {
        node.role = if index == primary {
            Role::Primary
        } else {
            Role::Standby
        };
    }
    nodes
}

/// Index of the primary `cluster.json` names (the node `primary` when it names none).
fn recorded_primary(nodes: &[LocalNode], state: Option<&ClusterState>) -> usize {
    state
        .and_then(|state| state.primary.as_deref())
        .and_then(|name| nodes.iter().position(|node| node.name == name))
        .unwrap_or(0)
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if self.stop_on_exit {
            self.stop_started();
        }
    }
}
