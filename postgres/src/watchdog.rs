//! A small process that outlives this one just long enough to stop the
//! servers it started: it waits for its stdin to close (which the kernel does
//! when this process ends, however it ends) and then runs `pg_ctl stop`.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};

use std::os::unix::process::CommandExt as _;

use super::{ClusterError, RunAs};

/// The watchdog; dropping it (or this process ending) sets it off.
#[derive(Debug)]
pub struct Watchdog {
    _stdin: ChildStdin,
    _child: Child,
}

/// Holds the data directory's lock for its whole life (so a new start waits
/// until the servers are down), waits for EOF, stops each data directory's
/// server, and, when `$ECOSHARD_REMOVE` is set, waits for the other locks
/// it is given (other clusters' watchdogs, whose data lies inside it,
/// stopping their servers) and removes it.
const SCRIPT: &str = r#"lock="$1"; pg_ctl="$2"; servers="$3"; shift 3
exec 9>>"$lock"
flock 9 2>/dev/null || true
cat >/dev/null
while [ "$servers" -gt 0 ]; do
    "$pg_ctl" stop -D "$1" -m fast -w -t 60 -s >/dev/null 2>&1
    servers=$((servers - 1)); shift
done
if [ -n "$ECOSHARD_REMOVE" ]; then
    for other in "$@"; do (exec 8>>"$other" && flock 8) 2>/dev/null; done
    rm -rf -- "$ECOSHARD_REMOVE"
fi
"#;

impl Watchdog {
    /// Starts a watchdog for the servers of `data_dirs`; when it is to
    /// `remove` a directory, it first waits until no one holds the locks
    /// `awaited`.
    pub fn spawn(
        run_as: &RunAs,
        lock: &Path,
        pg_ctl: &Path,
        data_dirs: &[PathBuf],
        remove: Option<&Path>,
        awaited: &[PathBuf],
        cwd: &Path,
    ) -> Result<Self, ClusterError> {
        let awaited = if remove.is_some() { awaited } else { &[] };
        let mut command = run_as.command("sh", cwd);
        command
            .arg("-c")
            .arg(SCRIPT)
            .arg("ecoshard-watchdog")
            .arg(lock)
            .arg(pg_ctl)
            .arg(data_dirs.len().to_string())
            .args(data_dirs)
            .args(awaited)
            .env(
                "ECOSHARD_REMOVE",
                remove.map(Path::as_os_str).unwrap_or_default(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Out of the terminal's process group: a Ctrl-C must not end it
            // before it has done its job.
            .process_group(0);
        // The watchdog must not sit in a directory it will delete.
        if remove.is_some() {
            command.current_dir("/");
        }
        let mut child = command
            .spawn()
            .map_err(|error| ClusterError::io("starting the watchdog", error))?;
        let stdin = child.stdin.take().ok_or_else(|| ClusterError::Command {
            what: "starting the watchdog".into(),
            detail: "no stdin".into(),
        })?;
        Ok(Watchdog {
            _stdin: stdin,
            _child: child,
        })
    }
}

/// Waits (at most `seconds`) until no watchdog holds the lock of the data
/// directory, i.e. until the servers of a bridge that died are stopped.
/// Without the `flock` tool there is nothing to wait for.
pub fn wait_for_lock(
    run_as: &RunAs,
    lock: &Path,
    seconds: u32,
    cwd: &Path,
) -> Result<(), ClusterError> {
    let status = run_as
        .command("flock", cwd)
        .args(["-w", &seconds.to_string()])
        .arg(lock)
        .arg("true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => Ok(()),
        Ok(_) => Err(ClusterError::Busy {
            path: lock.parent().map(Path::to_path_buf).unwrap_or_default(),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(ClusterError::io("running flock", error)),
    }
}
