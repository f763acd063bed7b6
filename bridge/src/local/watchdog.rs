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

/// Waits for EOF, stops each data directory's server, removes `$remove` if set.
const SCRIPT: &str = r#"cat >/dev/null
pg_ctl="$1"; shift
for data in "$@"; do
    "$pg_ctl" stop -D "$data" -m fast -w -t 60 -s >/dev/null 2>&1
done
if [ -n "$ECOSHARD_REMOVE" ]; then rm -rf -- "$ECOSHARD_REMOVE"; fi
"#;

impl Watchdog {
    /// Starts a watchdog for the servers of `data_dirs`.
    pub fn spawn(
        run_as: &RunAs,
        pg_ctl: &Path,
        data_dirs: &[PathBuf],
        remove: Option<&Path>,
        cwd: &Path,
    ) -> Result<Self, ClusterError> {
        let mut command = run_as.command("sh", cwd);
        command
            .arg("-c")
            .arg(SCRIPT)
            .arg("ecoshard-watchdog")
            .arg(pg_ctl)
            .args(data_dirs)
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
