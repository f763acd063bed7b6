//! Several processes over one local cluster (bridges behind a load
//! balancer, `ecoshard cluster up`, a test): file locks in its data
//! directory, which the kernel releases when a process ends however it ends.
//!
//! - `start.lock`, exclusive while a process decides whether it starts
//!   servers or joins the running ones, and starts them: one at a time, so a
//!   bridge never joins a cluster another is still creating.
//! - `users.lock`, shared by every process using the cluster for its whole
//!   life. Servers are only ever stopped by a process holding it exclusively
//!   (the one that started them, or its watchdog once it has died): never
//!   under another process using them.
//! - `operations.lock`, exclusive around each start, stop or promotion of a
//!   node, whichever process asks; each reads the primary from `cluster.json`
//!   first, so no process acts on roles another has changed.

use std::fs::{File, TryLockError};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use super::paths::Paths;
use super::{ClusterError, RunAs};

/// Longest wait for another process starting the cluster.
const START_WAIT: Duration = Duration::from_secs(300);
/// Longest wait for the watchdog of a bridge that died to stop its servers.
const WATCHDOG_WAIT: Duration = Duration::from_secs(30);
/// Longest wait for a watchdog (or a bridge) stopping the servers.
const STOPPING_WAIT: Duration = Duration::from_secs(90);

/// The start lock, held exclusively until dropped.
pub(crate) fn lock_start(paths: &Paths, run_as: &RunAs) -> Result<File, ClusterError> {
    let file = open(&paths.start_lock(), run_as)?;
    wait_for(
        &paths.root,
        START_WAIT,
        "another process to start it",
        || file.try_lock(),
    )?;
    Ok(file)
}

/// The users lock, held shared until dropped: no server stops meanwhile.
/// A watchdog whose bridge died and that no process uses stops its servers
/// first (a start right after a kill never takes servers about to stop).
pub(crate) fn lock_use(paths: &Paths, run_as: &RunAs) -> Result<File, ClusterError> {
    wait_for_orphaned_watchdog(paths, run_as)?;
    loop {
        let path = paths.users_lock();
        let file = open(&path, run_as)?;
        wait_for(&paths.root, STOPPING_WAIT, "its servers to stop", || {
            file.try_lock_shared()
        })?;
        // A watchdog removing the data directory (tests) removed the file
        // while this waited: lock the one there now.
        let same = std::fs::metadata(&path)
            .and_then(|now| Ok(now.ino() == file.metadata()?.ino()))
            .unwrap_or(false);
        if same {
            return Ok(file);
        }
    }
}

/// Waits (at most [`WATCHDOG_WAIT`]) until a watchdog that runs while no
/// process uses the cluster (its bridge died) has stopped its servers and
/// ended. With users, it waits for them, so the servers stay: nothing to
/// wait for.
fn wait_for_orphaned_watchdog(paths: &Paths, run_as: &RunAs) -> Result<(), ClusterError> {
    let users = open(&paths.users_lock(), run_as)?;
    if users.try_lock().is_err() {
        return Ok(());
    }
    let watchdog = open(&paths.lock_file(), run_as)?;
    let running = watchdog.try_lock().is_err();
    drop(watchdog);
    // Released, so the watchdog can take it.
    drop(users);
    if running {
        let watchdog = open(&paths.lock_file(), run_as)?;
        wait_for(
            &paths.root,
            WATCHDOG_WAIT,
            "the watchdog of a bridge that died to stop its servers",
            || watchdog.try_lock(),
        )?;
    }
    Ok(())
}

/// The operations lock, held exclusively until dropped (waits as long as
/// the operation of another process takes: each is bounded).
pub(crate) fn lock_operations(paths: &Paths, run_as: &RunAs) -> Result<File, ClusterError> {
    let path = paths.operations_lock();
    let file = open(&path, run_as)?;
    file.lock()
        .map_err(|error| ClusterError::io(format!("locking {}", path.display()), error))?;
    Ok(file)
}

/// Whether no other process uses the cluster: the users lock, held shared,
/// is then held exclusively (until dropped).
pub(crate) fn alone(users: &File) -> bool {
    users.try_lock().is_ok()
}

fn open(path: &Path, run_as: &RunAs) -> Result<File, ClusterError> {
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|error| ClusterError::io(format!("opening {}", path.display()), error))?;
    // The watchdog, which runs as the servers' user, locks it too.
    run_as.own(path)?;
    Ok(file)
}

fn wait_for(
    root: &Path,
    limit: Duration,
    what: &str,
    mut try_lock: impl FnMut() -> Result<(), TryLockError>,
) -> Result<(), ClusterError> {
    let deadline = Instant::now() + limit;
    loop {
        match try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(ClusterError::Timeout {
                    what: format!("{what} in {}", root.display()),
                });
            }
            Err(TryLockError::Error(error)) => {
                return Err(ClusterError::io(
                    format!("locking a file in {}", root.display()),
                    error,
                ));
            }
        }
    }
}
