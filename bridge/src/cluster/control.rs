//! Starting, stopping and promoting a cluster's servers. The service drives
//! them through [`NodeControl`] alone; the binary (and the tests) wire in an
//! implementation for a cluster whose servers the bridge runs itself
//! (`cluster/local.rs`, over `ecoshard-postgres`). An external cluster has
//! none: its servers are not the bridge's to stop or promote.
//!
//! Every method blocks (it runs `pg_ctl`, `psql`): call it off the async
//! workers (`tokio::task::spawn_blocking`).

use std::sync::Arc;
use std::time::Duration;

/// What the bridge may do to the servers of its cluster.
pub trait NodeControl: Send + Sync + std::fmt::Debug {
    /// Whether the server of `node` runs.
    fn is_running(&self, node: &str) -> Result<bool, ControlError>;
    /// Stops `node`'s server: cleanly, or `immediate`ly (like a crash).
    fn stop(&self, node: &str, immediate: bool) -> Result<(), ControlError>;
    /// Starts `node`'s server (a former primary only as a standby of the
    /// primary now); how it was rebuilt first, when it had to be.
    fn start(&self, node: &str) -> Result<Option<String>, ControlError>;
    /// Promotes the most advanced standby and points the others at it.
    fn fail_over(&self) -> Result<Promotion, ControlError>;
    /// The node the cluster's record names primary now (`cluster.json`, which
    /// every process using the cluster shares): how a bridge learns of a
    /// promotion another process made. `None` when it cannot be read.
    fn recorded_primary(&self) -> Option<String>;
    /// A checkpoint on the primary now.
    fn checkpoint(&self) -> Result<(), ControlError>;
    /// Whether commits wait for a synchronous standby.
    fn sync_replication(&self) -> bool;
}

/// A node control, shared.
pub type Control = Arc<dyn NodeControl>;

/// Why a node action did not happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlError {
    /// The cluster's state forbids it (the message says why); else it failed.
    pub(crate) refused: bool,
    /// What happened.
    pub(crate) message: String,
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a failover did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promotion {
    /// The node that was primary.
    pub(crate) from: String,
    /// The standby promoted.
    pub(crate) to: String,
    /// How long the promotion took.
    pub(crate) promote_time: Duration,
    /// The standbys now streaming from (or told to stream from) the new primary.
    pub(crate) repointed: Vec<String>,
}
