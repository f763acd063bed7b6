//! Running PostgreSQL's tools: start, stop and status of one server, and
//! turning a failed tool's output into a [`ClusterError`].

use std::net::TcpListener;
use std::path::Path;
use std::process::{Output, Stdio};

use super::{ClusterError, PgBinaries, RunAs};

/// Physical replication slot of a standby: `standby-1` → `standby_1`.
pub fn slot_name(node: &str) -> String {
    node.replace('-', "_")
}

pub(super) fn has_data_dir(data: &Path) -> bool {
    data.join("PG_VERSION").is_file() && data.join("global/pg_control").is_file()
}

/// Whether the server of `data` runs: `pg_ctl status`, and its postmaster is
/// not a zombie (killed, and not yet reaped by its parent: `pg_ctl status`
/// alone counts those as running).
pub(super) fn is_running(bins: &PgBinaries, run_as: &RunAs, root: &Path, data: &Path) -> bool {
    data.join("postmaster.pid").exists()
        && !postmaster_pid(data).is_some_and(is_zombie)
        && run_as
            .command(bins.tool("pg_ctl"), root)
            .arg("status")
            .arg("-D")
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
}

/// Waits (at most 30 s) until a dead postmaster of `data` is reaped:
/// PostgreSQL refuses to start while the pid in `postmaster.pid` exists.
pub(super) fn wait_reaped(data: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while let Some(pid) = postmaster_pid(data).filter(|pid| is_zombie(*pid)) {
        if std::time::Instant::now() > deadline {
            tracing::warn!(
                "the dead postmaster {pid} of {} is not reaped",
                data.display()
            );
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The pid on the first line of `postmaster.pid`.
pub(super) fn postmaster_pid(data: &Path) -> Option<u32> {
    std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Whether `pid` has exited but is not reaped yet (state `Z` in `/proc/PID/stat`).
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, after_name) = stat.rsplit_once(')')?;
            after_name
                .split_whitespace()
                .next()
                .map(|state| state == "Z")
        })
        .unwrap_or(false)
}

pub(super) fn stop_server(
    bins: &PgBinaries,
    run_as: &RunAs,
    root: &Path,
    data: &Path,
    mode: &str,
) -> Result<(), ClusterError> {
    if !is_running(bins, run_as, root, data) {
        return Ok(());
    }
    let output = run_as
        .command(bins.tool("pg_ctl"), root)
        .arg("stop")
        .arg("-D")
        .arg(data)
        .args(["-m", mode, "-w", "-t", "60", "-s"])
        .output();
    check_output(&format!("stopping {}", data.display()), output)
}

pub(super) fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

pub(super) fn remove_dir(dir: &Path) -> Result<(), ClusterError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(ClusterError::io(
            format!("removing {}", dir.display()),
            error,
        )),
    }
}

pub(super) fn check_output(
    what: &str,
    output: std::io::Result<Output>,
) -> Result<(), ClusterError> {
    let output = output.map_err(|error| ClusterError::io(format!("running {what}"), error))?;
    if output.status.success() {
        return Ok(());
    }
    let mut detail = String::from_utf8_lossy(&output.stderr).trim().to_string();
    if detail.is_empty() {
        detail = String::from_utf8_lossy(&output.stdout).trim().to_string();
    }
    if detail.is_empty() {
        detail = format!("exit status {}", output.status);
    }
    Err(ClusterError::Command {
        what: what.to_string(),
        detail,
    })
}

pub(super) fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join(" | ")
}
