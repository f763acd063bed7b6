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

/// Holds the data directory's lock for its whole life, waits for EOF, then
/// until no other process uses the cluster (the users lock, taken
/// exclusively: other bridges joined to it keep its servers running), stops
/// each data directory's server, and, when `$ECOSHARD_REMOVE` is set, waits
/// for the other locks it is given (other clusters' watchdogs, whose data
/// lies inside it, stopping their servers) and removes it.
const SCRIPT: &str = r#"lock="$1"; users="$2"; pg_ctl="$3"; servers="$4"; shift 4
exec 9>>"$lock"
flock 9 2>/dev/null || true
cat >/dev/null
exec 7<"$users"
flock 7 2>/dev/null || true
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
    /// Starts a watchdog for the servers of `data_dirs`, which it stops
    /// once no one holds the users lock `users`; when it is to `remove` a
    /// directory, it first waits until no one holds the locks `awaited`.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn(
        run_as: &RunAs,
        lock: &Path,
        users: &Path,
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
            .arg(users)
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
