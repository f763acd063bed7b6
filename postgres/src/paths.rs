//! Where everything of a local cluster lives, and its nodes' names and ports.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::Role;

use super::{ClusterError, LocalNode, PRIMARY, RunAs};

/// Where everything of a local cluster lives.
#[derive(Clone, Debug)]
pub(super) struct Paths {
    pub(super) root: PathBuf,
}

impl Paths {
    pub(super) fn new(root: &Path) -> Self {
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        Paths { root }
    }

    pub(super) fn state_file(&self) -> PathBuf {
        self.root.join("cluster.json")
    }

    pub(super) fn passfile(&self) -> PathBuf {
        self.root.join("pgpass")
    }

    /// Held by a running bridge's watchdog until its servers are stopped.
    pub(super) fn lock_file(&self) -> PathBuf {
        self.root.join("bridge.lock")
    }

    /// Held by a process deciding to start servers or join them (`sharing`).
    pub(super) fn start_lock(&self) -> PathBuf {
        self.root.join("start.lock")
    }

    /// Held shared by every process using the cluster (`sharing`).
    pub(super) fn users_lock(&self) -> PathBuf {
        self.root.join("users.lock")
    }

    /// Held around each node operation of any process (`sharing`).
    pub(super) fn operations_lock(&self) -> PathBuf {
        self.root.join("operations.lock")
    }

    pub(super) fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    pub(super) fn log_file(&self, node: &str) -> PathBuf {
        self.root.join("log").join(format!("{node}.log"))
    }

    pub(super) fn nodes(&self, pg_port: u16, standbys: usize) -> Vec<LocalNode> {
        let mut nodes = vec![LocalNode {
            name: PRIMARY.into(),
            role: Role::Primary,
            port: pg_port,
            data: self.root.join(PRIMARY),
        }];
        for index in 1..=standbys {
            let name = format!("standby-{index}");
            nodes.push(LocalNode {
                data: self.root.join(&name),
                name,
                role: Role::Standby,
                port: pg_port.saturating_add(index as u16),
            });
        }
        nodes
    }

    /// Creates the root, `run/` and `log/` (0700, owned by the server user),
    /// and checks that user can reach them.
    pub(super) fn prepare(&self, run_as: &RunAs) -> Result<(), ClusterError> {
        for dir in [self.root.clone(), self.run_dir(), self.root.join("log")] {
            std::fs::create_dir_all(&dir)
                .and_then(|()| {
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                })
                .map_err(|error| ClusterError::io(format!("creating {}", dir.display()), error))?;
            run_as.own(&dir)?;
        }
        let reachable = run_as
            .command("sh", Path::new("/"))
            .arg("-c")
            .arg("test -w \"$1\" && test -x \"$1\"")
            .arg("sh")
            .arg(&self.root)
            .status()
            .is_ok_and(|status| status.success());
        if reachable {
            Ok(())
        } else {
            Err(ClusterError::DataDirInaccessible {
                path: self.root.clone(),
                user: run_as.name(),
            })
        }
    }
}
