//! `ClusterError`: why the local cluster could not be started or stopped,
//! each with a message that says what to do about it.

use std::fmt;
use std::path::PathBuf;

/// Why the local cluster could not be started or stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClusterError {
    /// PostgreSQL's server binaries are not installed where we looked.
    MissingBinaries {
        /// Directories searched.
        searched: Vec<String>,
    },
    /// Running as root, and the unprivileged user to run servers as is missing.
    NoServerUser {
        /// The user asked for.
        name: String,
    },
    /// The server user cannot use the data directory.
    DataDirInaccessible {
        /// The directory.
        path: PathBuf,
        /// The user.
        user: String,
    },
    /// A port the cluster needs is taken.
    PortInUse {
        /// The node that wanted it.
        node: String,
        /// The port.
        port: u16,
    },
    /// A running cluster uses other ports than asked.
    RunningElsewhere {
        /// Port of the running primary.
        pg_port: u16,
    },
    /// A PostgreSQL tool failed.
    Command {
        /// What was run.
        what: String,
        /// Its error output or the server log's tail.
        detail: String,
    },
    /// A file operation failed.
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// Something did not happen in time.
    Timeout {
        /// What was awaited.
        what: String,
    },
    /// No node of that name.
    UnknownNode {
        /// The name.
        name: String,
    },
    /// Not done, because of the cluster's state now (e.g. no primary to follow).
    Refused {
        /// What was asked.
        what: String,
        /// Why not, and what to do.
        reason: String,
    },
}

impl ClusterError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        ClusterError::Io {
            what: what.into(),
            source,
        }
    }
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::MissingBinaries { searched } => write!(
                f,
                "PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_basebackup, psql) not found \
                 (looked in {}): install them (Debian/Ubuntu: apt-get install postgresql), point at \
                 them with --pg-bin DIR or ECOSHARD_PG_BIN, or use an existing cluster with \
                 --primary URL --replica URL",
                if searched.is_empty() {
                    "nowhere".to_string()
                } else {
                    searched.join(", ")
                }
            ),
            ClusterError::NoServerUser { name } => write!(
                f,
                "running as root, and PostgreSQL refuses to: no user {name:?} to run the servers as \
                 (create one, e.g. `useradd --system postgres`, or name another with --pg-user)"
            ),
            ClusterError::DataDirInaccessible { path, user } => write!(
                f,
                "user {user} cannot use the data directory {} (a parent directory is private?): \
                 choose another with --data-dir",
                path.display()
            ),
            ClusterError::PortInUse { node, port } => write!(
                f,
                "port {port} (for {node}) is in use on 127.0.0.1: stop what uses it or choose other \
                 ports with --pg-port"
            ),
            ClusterError::RunningElsewhere { pg_port } => write!(
                f,
                "the cluster in this data directory is already running with its primary on port \
                 {pg_port}: use --pg-port {pg_port}, or stop it with `ecoshard cluster down`"
            ),
            ClusterError::Command { what, detail } => write!(f, "{what} failed: {detail}"),
            ClusterError::Io { what, source } => write!(f, "{what}: {source}"),
            ClusterError::Timeout { what } => write!(f, "timed out waiting for {what}"),
            ClusterError::UnknownNode { name } => write!(f, "no node named {name:?}"),
            ClusterError::Refused { what, reason } => write!(f, "{what}: {reason}"),
        }
    }
}

impl std::error::Error for ClusterError {}
