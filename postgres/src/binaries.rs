//! Finding PostgreSQL's server binaries, and the unprivileged user that runs
//! them when the bridge runs as root (PostgreSQL refuses to run as root).

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::ClusterError;

/// Tools the local cluster needs, all in one directory.
const TOOLS: [&str; 6] = [
    "initdb",
    "pg_ctl",
    "postgres",
    "pg_basebackup",
    "psql",
    "pg_controldata",
];

/// The directory holding PostgreSQL's server binaries, and their major version.
#[derive(Clone, Debug)]
pub struct PgBinaries {
    /// Directory of `initdb`, `pg_ctl`, `postgres`, …
    pub bindir: PathBuf,
    /// Major version (15 for 15.4).
    pub major: u32,
}

impl PgBinaries {
    /// Finds the binaries: `explicit` (flag `--pg-bin` or `ECOSHARD_PG_BIN`) when
    /// given, else `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`,
    /// else `/usr/local/pgsql/bin`, else `PATH`.
    pub fn find(explicit: Option<&Path>) -> Result<Self, ClusterError> {
        let mut searched = Vec::new();
        let candidates: Vec<PathBuf> = match explicit {
            Some(dir) => vec![dir.to_path_buf()],
            None => default_candidates(),
        };
        for dir in candidates {
            if TOOLS.iter().all(|tool| dir.join(tool).is_file()) {
                let major = major_version(&dir)?;
                return Ok(PgBinaries { bindir: dir, major });
            }
            searched.push(dir.display().to_string());
        }
        Err(ClusterError::MissingBinaries { searched })
    }

    /// Path of one tool.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }
}

fn default_candidates() -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !dir.is_empty() {
            candidates.push(PathBuf::from(dir));
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .flatten()
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                Some((version, entry.path().join("bin")))
            })
            .collect();
        versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
        candidates.extend(versions.into_iter().map(|(_, dir)| dir));
    }
    candidates.push(PathBuf::from("/usr/local/pgsql/bin"));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates
}

/// Parses `pg_ctl (PostgreSQL) 15.4 (Debian 15.4-1)` → 15.
fn major_version(bindir: &Path) -> Result<u32, ClusterError> {
    let out = Command::new(bindir.join("pg_ctl"))
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| ClusterError::io(format!("running {}/pg_ctl", bindir.display()), error))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(2)
        .and_then(|version| version.split('.').next())
        .and_then(|major| major.parse().ok())
        .ok_or_else(|| ClusterError::Command {
            what: "pg_ctl --version".into(),
            detail: format!("unexpected answer {:?}", text.trim()),
        })
}

/// Who runs the servers: this process's user, or (when it is root) an
/// unprivileged one.
#[derive(Clone, Debug)]
pub enum RunAs {
    /// The current user, not root.
    Current,
    /// Another user, switched to with setuid/setgid (supplementary groups dropped).
    User {
        /// Login name.
        name: String,
        /// User id.
        uid: u32,
        /// Primary group id.
        gid: u32,
    },
}

impl RunAs {
    /// `Current` unless this process is root; then `user` (default `postgres`).
    pub fn detect(user: Option<&str>) -> Result<Self, ClusterError> {
        if effective_uid() != 0 {
            return Ok(RunAs::Current);
        }
        let name = user.unwrap_or("postgres");
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id").args([flag, name]).output().ok()?;
            if !out.status.success() {
                return None;
            }
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        };
        match (id("-u"), id("-g")) {
            (Some(uid), Some(gid)) if uid != 0 => Ok(RunAs::User {
                name: name.to_string(),
                uid,
                gid,
            }),
            _ => Err(ClusterError::NoServerUser {
                name: name.to_string(),
            }),
        }
    }

    /// The user's name, for messages.
    pub fn name(&self) -> String {
        match self {
            RunAs::Current => std::env::var("USER").unwrap_or_else(|_| "the current user".into()),
            RunAs::User { name, .. } => name.clone(),
        }
    }

    /// A command that runs as this user, with a small clean environment, in `dir`.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>, dir: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LC_ALL", "C")
            .env("LANG", "C")
            .current_dir(dir)
            .stdin(Stdio::null());
        if let RunAs::User { uid, gid, .. } = self {
            command.uid(*uid).gid(*gid);
        }
        command
    }

    /// Gives `path` to this user (no-op when running as the current user).
    pub fn own(&self, path: &Path) -> Result<(), ClusterError> {
        if let RunAs::User { uid, gid, .. } = self {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
                .map_err(|error| ClusterError::io(format!("chown {}", path.display()), error))?;
        }
        Ok(())
    }
}

/// This process's effective user id (the owner of `/proc/self`), or the
/// answer of `id -u`.
fn effective_uid() -> u32 {
    if let Ok(meta) = std::fs::metadata("/proc/self") {
        return meta.uid();
    }
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(u32::MAX)
}
