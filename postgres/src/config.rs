//! The files of a local cluster: PostgreSQL settings (from `postgres/`, the
//! same files docker-compose uses, plus local overrides), the passfile, and
//! `cluster.json`, what the launcher remembers between runs.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ClusterError;

/// `postgres/primary/postgresql.conf`.
pub const PRIMARY_CONF: &str = include_str!("../primary/postgresql.conf");
/// `postgres/standby/postgresql.conf`.
pub const STANDBY_CONF: &str = include_str!("../standby/postgresql.conf");
/// `postgres/primary/pg_hba.conf`, used by every node.
pub const HBA_CONF: &str = include_str!("../primary/pg_hba.conf");
/// `postgres/primary/init-ecoshard.sh`: roles, database and slots of a new primary.
pub const INIT_SCRIPT: &str = include_str!("../primary/init-ecoshard.sh");

/// What `cluster.json` records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Bumped when the on-disk arrangement changes incompatibly.
    pub format: u32,
    /// PostgreSQL major version that made the data directories.
    pub pg_major: u32,
    /// Port of the primary; standby `i` (1-based) listens on `pg_port + i`.
    pub pg_port: u16,
    /// Number of standbys.
    pub standbys: usize,
    /// The node that is primary now (absent: `primary`). Changes with a
    /// failover, so a restarted bridge knows who takes the writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
}

/// Current `cluster.json` format.
pub const STATE_FORMAT: u32 = 1;

impl ClusterState {
    /// Reads `cluster.json`; `None` when absent or unreadable.
    pub fn load(path: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes `cluster.json` whole or not at all (a file beside it, renamed
    /// over it): a process reading it without the operations lock (a bridge
    /// learning of a promotion) never reads half of it.
    pub fn save(&self, path: &Path) -> Result<(), ClusterError> {
        let json = serde_json::to_string_pretty(self).unwrap_or_default();
        let next = path.with_extension("json.next");
        std::fs::write(&next, json + "\n")
            .and_then(|()| std::fs::rename(&next, path))
            .map_err(|error| ClusterError::io(format!("writing {}", path.display()), error))
    }
}

/// The two passwords of a local cluster, kept in its passfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passwords {
    /// Of the `replicator` role (streaming replication).
    pub replicator: String,
    /// Of the `ecoshard` role (the bridge).
    pub ecoshard: String,
}

impl Passwords {
    /// Fresh random passwords (128 bits each, hex).
    pub fn generate() -> Result<Self, ClusterError> {
        Ok(Passwords {
            replicator: random_hex()?,
            ecoshard: random_hex()?,
        })
    }

    /// Reads them back from a passfile written by [`Passwords::write_passfile`].
    pub fn read_passfile(path: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(path).ok()?;
        Some(Passwords {
            replicator: crate::pgpass::lookup(&text, "replicator")?,
            ecoshard: crate::pgpass::lookup(&text, "ecoshard")?,
        })
    }

    /// Writes the passfile (mode 0600): libpq (standbys, psql, pgbench) reads it.
    pub fn write_passfile(&self, path: &Path) -> Result<(), ClusterError> {
        let text = format!(
            "# written by ecoshard: passwords of the local cluster\n\
             *:*:*:replicator:{}\n*:*:*:ecoshard:{}\n",
            self.replicator, self.ecoshard
        );
        let _ = std::fs::remove_file(path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut file| file.write_all(text.as_bytes()).map(|()| file));
        match &mut file {
            Ok(file) => file
                .sync_all()
                .map_err(|error| ClusterError::io(format!("writing {}", path.display()), error)),
            Err(error) => Err(ClusterError::io(
                format!("writing {}", path.display()),
                std::io::Error::new(error.kind(), error.to_string()),
            )),
        }
    }
}

fn random_hex() -> Result<String, ClusterError> {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut bytes))
        .map_err(|error| ClusterError::io("reading /dev/urandom", error))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Settings appended to a node's `postgresql.conf` in the local cluster.
pub struct LocalSettings<'a> {
    /// Node name (`cluster_name`, and `application_name` of a standby).
    pub name: &'a str,
    /// Port it listens on (127.0.0.1 only).
    pub port: u16,
    /// Directory of the Unix sockets.
    pub socket_dir: &'a Path,
    /// `shared_buffers` (smaller when several clusters share the machine).
    pub shared_buffers: &'a str,
    /// For a standby: the primary's port, the passfile and the slot.
    pub upstream: Option<Upstream<'a>>,
    /// For a primary in synchronous mode: the standbys, one of which must
    /// confirm each commit (`ANY 1 (…)`).
    pub sync_standbys: &'a [String],
}

/// Where a standby streams from.
pub struct Upstream<'a> {
    /// The primary's port on 127.0.0.1.
    pub port: u16,
    /// Passfile holding the `replicator` password.
    pub passfile: &'a Path,
    /// Physical replication slot on the primary.
    pub slot: &'a str,
}

/// Writes `postgresql.conf` and `pg_hba.conf` of a node, and removes any
/// `primary_conninfo` / `primary_slot_name` that `pg_basebackup -R` left in
/// `postgresql.auto.conf` (the settings here are the ones in force).
pub fn write_node_config(data: &Path, settings: &LocalSettings<'_>) -> Result<(), ClusterError> {
    let base = if settings.upstream.is_some() {
        STANDBY_CONF
    } else {
        PRIMARY_CONF
    };
    let mut conf = String::from(base);
    conf.push_str("\n# --- local cluster, written by ecoshard on every start ---\n");
    conf.push_str("listen_addresses = '127.0.0.1'\n");
    conf.push_str(&format!("port = {}\n", settings.port));
    conf.push_str(&format!(
        "unix_socket_directories = '{}'\n",
        conf_quote(&settings.socket_dir.display().to_string())
    ));
    conf.push_str(&format!("cluster_name = '{}'\n", settings.name));
    conf.push_str(&format!("shared_buffers = {}\n", settings.shared_buffers));
    if let Some(upstream) = &settings.upstream {
        let conninfo = format!(
            "host=127.0.0.1 port={} user=replicator passfile='{}' application_name={} sslmode=disable",
            upstream.port,
            conninfo_quote(&upstream.passfile.display().to_string()),
            settings.name
        );
        conf.push_str(&format!("primary_conninfo = '{}'\n", conf_quote(&conninfo)));
        conf.push_str(&format!("primary_slot_name = '{}'\n", upstream.slot));
    } else if !settings.sync_standbys.is_empty() {
        conf.push_str(&format!(
            "synchronous_standby_names = '{}'\n",
            conf_quote(&sync_standby_names(settings.sync_standbys))
        ));
    }
    write(&data.join("postgresql.conf"), &conf)?;
    write(&data.join("pg_hba.conf"), HBA_CONF)?;
    let auto = data.join("postgresql.auto.conf");
    if let Ok(text) = std::fs::read_to_string(&auto) {
        let kept: String = text
            .lines()
            .filter(|line| {
                let key = line.trim_start();
                !(key.starts_with("primary_conninfo") || key.starts_with("primary_slot_name"))
            })
            .map(|line| format!("{line}\n"))
            .collect();
        if kept != text {
            write(&auto, &kept)?;
        }
    }
    Ok(())
}

/// `ANY 1 ("standby-1", "standby-2")`: any one of them confirms a commit.
/// The names are quoted because they hold `-`.
pub fn sync_standby_names(standbys: &[String]) -> String {
    let names: Vec<String> = standbys
        .iter()
        .map(|name| format!("\"{}\"", name.replace('"', "\"\"")))
        .collect();
    format!("ANY 1 ({})", names.join(", "))
}

/// Quotes a value for `postgresql.conf` ('…' with ' doubled).
fn conf_quote(value: &str) -> String {
    value.replace('\'', "''")
}

/// Quotes a value inside a libpq connection string ('…' with \ and ' escaped).
pub(super) fn conninfo_quote(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

fn write(path: &Path, text: &str) -> Result<(), ClusterError> {
    std::fs::write(path, text)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)))
        .map_err(|error| ClusterError::io(format!("writing {}", path.display()), error))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings that must agree between primary and standby configs.
    fn setting<'a>(conf: &'a str, key: &str) -> Option<&'a str> {
        conf.lines()
            .map(str::trim)
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (name, value) = line.split_once('=')?;
                (name.trim() == key).then(|| value.trim())
            })
    }

    #[test]
    fn primary_and_standby_configs_agree_on_replication() {
        for key in [
            "max_connections",
            "wal_level",
            "max_prepared_transactions",
            "max_worker_processes",
            "max_logical_replication_workers",
            "max_sync_workers_per_subscription",
            "max_wal_senders",
            "max_replication_slots",
            "wal_keep_size",
            "hot_standby",
            "hot_standby_feedback",
            "wal_receiver_status_interval",
            "password_encryption",
            "wal_log_hints",
            "wal_retrieve_retry_interval",
        ] {
            let primary = setting(PRIMARY_CONF, key);
            assert!(primary.is_some(), "{key} missing from primary config");
            assert_eq!(primary, setting(STANDBY_CONF, key), "{key}");
        }
    }

    #[test]
    fn configs_hold_no_password() {
        for text in [PRIMARY_CONF, STANDBY_CONF, HBA_CONF] {
            assert!(!text.contains("password="), "{text}");
        }
        assert!(setting(HBA_CONF, "trust").is_none());
        assert!(!HBA_CONF.contains(" trust"));
    }

    #[test]
    fn sync_names_quote_each_standby() {
        let names = ["standby-1".to_string(), "primary".to_string()];
        assert_eq!(
            sync_standby_names(&names),
            r#"ANY 1 ("standby-1", "primary")"#
        );
    }

    #[test]
    fn quoting_keeps_values_inside_their_quotes() {
        assert_eq!(conf_quote("a'b"), "a''b");
        assert_eq!(conninfo_quote(r"a'b\c"), r"a\'b\\c");
    }
}
