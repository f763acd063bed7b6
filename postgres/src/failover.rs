//! Roles that change: promoting the most advanced standby when the primary's
//! server is gone, pointing the other standbys at it, and turning an old
//! primary (or a standby left on an old timeline) into a standby of the
//! primary now, so that no node ever comes back as a second primary.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::config::{ClusterState, STATE_FORMAT, conninfo_quote};
use super::process::{check_output, has_data_dir, postmaster_pid, slot_name};
use super::{ClusterError, LocalCluster, LocalNode};

/// What a failover did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promotion {
    /// The node that was primary.
    pub from: String,
    /// The standby promoted.
    pub to: String,
    /// How long `pg_promote` took (waiting for the promotion to finish).
    pub promote_time: Duration,
    /// The standbys now streaming from (or told to stream from) the new primary.
    pub repointed: Vec<String>,
}

/// Promotes a standby and returns once it takes writes. `pg_promote(true)`
/// looks every 100 ms whether the promotion is over; this looks every 2 ms.
const PROMOTE_SQL: &str = "SELECT pg_promote(false);
DO $$
DECLARE deadline timestamptz := clock_timestamp() + interval '60 s';
BEGIN
    WHILE pg_is_in_recovery() LOOP
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'the promotion did not end within 60 s';
        END IF;
        PERFORM pg_sleep(0.002);
    END LOOP;
END $$;
SELECT NOT pg_is_in_recovery();";

/// Longest a synchronous primary waits, after a failover, for a standby to
/// stream from it before it is handed writes anyway (which then wait).
const SYNC_STANDBY_WAIT: Duration = Duration::from_secs(15);

impl LocalCluster {
    /// Promotes the most advanced running standby (by WAL received) in place
    /// of the primary, whose server must no longer run: two primaries are
    /// never made. Then records the new primary in `cluster.json`, points the
    /// other running standbys at it (a slot on it, `primary_conninfo` and a
    /// reload) and, in synchronous mode, waits a while for one of them to
    /// stream so that commits have a standby to wait for.
    ///
    /// When another process using the cluster has promoted a standby since
    /// this one last looked (`cluster.json` names a running primary other
    /// than the one it knew), that promotion is the answer: one failure,
    /// one promotion. So is a running standby already out of recovery that
    /// the record does not name (its promoter died before recording it): it
    /// is recorded and the others pointed at it; no other is promoted.
    pub fn fail_over(&self) -> Result<Promotion, ClusterError> {
        let known = self.primary_name();
        let _operation = self.operation();
        let old = self.primary();
        if old.name != known && self.is_running(&old) {
            return Ok(Promotion {
                from: known,
                to: old.name,
                promote_time: Duration::ZERO,
                repointed: Vec::new(),
            });
        }
        if self.is_running(&old) {
            return Err(ClusterError::Refused {
                what: "failing over".into(),
                reason: format!(
                    "the server of the primary ({}) still runs: stop it first, two primaries are never made",
                    old.name
                ),
            });
        }
        // A standby out of recovery that the record does not name was
        // promoted by a process that died before recording it: that is the
        // promotion of this failure.
        let (target, promote_time) = match self.unrecorded_promotion(&old) {
            Some(promoted) => {
                tracing::warn!(
                    "{} was promoted but not recorded: recording it",
                    promoted.name
                );
                (promoted, Duration::ZERO)
            }
            None => self.promote_most_advanced(&old)?,
        };
        self.set_primary(&target.name)?;
        // Its settings as primary (synchronous standbys, if any), no upstream.
        self.write_config(&target)?;
        self.reload(&target)?;
        let mut repointed = Vec::new();
        for node in self.nodes() {
            if node.name == old.name || node.name == target.name || !self.is_running(&node) {
                continue;
            }
            match self.repoint(&node) {
                Ok(()) => repointed.push(node.name.clone()),
                Err(error) => tracing::warn!("pointing {} at {}: {error}", node.name, target.name),
            }
        }
        if self.sync_active.load(Ordering::SeqCst) && !self.wait_any_streaming(SYNC_STANDBY_WAIT)? {
            tracing::warn!(
                "no standby streams from {} yet: commits wait until one does (synchronous replication)",
                target.name
            );
        }
        Ok(Promotion {
            from: old.name,
            to: target.name,
            promote_time,
            repointed,
        })
    }

    /// A running node other than `old` that is out of recovery (a primary).
    fn unrecorded_promotion(&self, old: &LocalNode) -> Option<LocalNode> {
        self.nodes().into_iter().find(|node| {
            node.name != old.name
                && self.is_running(node)
                && self
                    .psql(node, "SELECT pg_is_in_recovery()")
                    .is_ok_and(|answer| answer == "f")
        })
    }

    /// Promotes the running standby (not `old`) that has received the most
    /// WAL: it and how long `pg_promote` took.
    fn promote_most_advanced(
        &self,
        old: &LocalNode,
    ) -> Result<(LocalNode, Duration), ClusterError> {
        let mut best: Option<(u64, LocalNode)> = None;
        for node in self.nodes() {
            if node.name == old.name || !self.is_running(&node) {
                continue;
            }
            match self.wal_position(&node) {
                Ok(position) => {
                    tracing::info!("{} has WAL up to byte {position}", node.name);
                    if best.as_ref().is_none_or(|(best, _)| position > *best) {
                        best = Some((position, node));
                    }
                }
                Err(error) => tracing::warn!("asking {} its WAL position: {error}", node.name),
            }
        }
        let Some((_, target)) = best else {
            return Err(ClusterError::Refused {
                what: "failing over".into(),
                reason: "no standby is running to be promoted".into(),
            });
        };
        let started = Instant::now();
        let promoted = self.psql(&target, PROMOTE_SQL)?;
        let promote_time = started.elapsed();
        if promoted.lines().last() != Some("t") {
            return Err(ClusterError::Command {
                what: format!("promoting {}", target.name),
                detail: format!("pg_promote answered {promoted:?}"),
            });
        }
        Ok((target, promote_time))
    }

    /// A `CHECKPOINT` on the primary. After a promotion it puts the new
    /// timeline into the standbys' restart points, so that a standby stopped
    /// later is seen to be on the primary's timeline and is not rewound.
    pub fn checkpoint(&self) -> Result<(), ClusterError> {
        self.psql(&self.primary(), "CHECKPOINT").map(|_| ())
    }

    /// Kills the node's postmaster with SIGKILL (a crash, for tests and the
    /// benchmark) and waits until it is gone. `false` when it was not running.
    pub fn kill_node(&self, name: &str) -> Result<bool, ClusterError> {
        let node = self.node(name)?.clone();
        let _operation = self.operation();
        if !self.is_running(&node) {
            return Ok(false);
        }
        let pid = postmaster_pid(&node.data).ok_or_else(|| ClusterError::Command {
            what: format!("killing {name}"),
            detail: format!("no pid in {}", node.data.join("postmaster.pid").display()),
        })?;
        let output = self
            .run_as
            .command("kill", &self.layout.root)
            .args(["-KILL", &pid.to_string()])
            .stdin(Stdio::null())
            .output();
        check_output(&format!("killing {name}"), output)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.is_running(&node) {
            if Instant::now() > deadline {
                return Err(ClusterError::Timeout {
                    what: format!("{name} to die after SIGKILL"),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(true)
    }

    /// Makes a stopped node ready to start as a standby of the primary now.
    /// A standby on the primary's timeline needs nothing. An old primary, or a
    /// standby that has not followed a failover, is rewound with `pg_rewind`
    /// (or, when that fails, cloned again with `pg_basebackup`). Answers what
    /// was done, if anything.
    pub(super) fn prepare_standby(&self, node: &LocalNode) -> Result<Option<String>, ClusterError> {
        let primary = self.primary();
        let is_standby = node.data.join("standby.signal").exists();
        if !has_data_dir(&node.data) {
            self.require_running(&primary, node)?;
            self.clone_standby(node)?;
            return Ok(Some(format!(
                "cloned from {} with pg_basebackup",
                primary.name
            )));
        }
        if is_standby {
            if !self.is_running(&primary) {
                // It streams once the primary is back.
                return Ok(None);
            }
            if self.checkpoint_timeline(&node.data) == self.timeline(&primary).ok() {
                self.ensure_slot(node)?;
                return Ok(None);
            }
        }
        self.require_running(&primary, node)?;
        self.ensure_slot(node)?;
        match self.rewind(node) {
            Ok(()) => {
                let signal = node.data.join("standby.signal");
                std::fs::write(&signal, "").map_err(|error| {
                    ClusterError::io(format!("writing {}", signal.display()), error)
                })?;
                self.run_as.own(&signal)?;
                if is_standby {
                    Ok(None)
                } else {
                    Ok(Some(format!(
                        "rewound with pg_rewind into a standby of {}",
                        primary.name
                    )))
                }
            }
            Err(error) => {
                tracing::warn!(
                    "pg_rewind of {} failed ({error}): cloning it with pg_basebackup",
                    node.name
                );
                self.clone_standby(node)?;
                Ok(Some(format!(
                    "cloned from {} with pg_basebackup (pg_rewind failed)",
                    primary.name
                )))
            }
        }
    }

    /// Creates the node's physical replication slot on the primary when
    /// missing; its name.
    pub(super) fn ensure_slot(&self, node: &LocalNode) -> Result<String, ClusterError> {
        let slot = slot_name(&node.name);
        self.psql(
            &self.primary(),
            &format!(
                "SELECT pg_create_physical_replication_slot('{slot}') WHERE NOT EXISTS \
                 (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}')"
            ),
        )?;
        Ok(slot)
    }

    /// Turns synchronous commits on (once standbys stream) and reloads the primary.
    pub(super) fn enable_sync(&self) -> Result<(), ClusterError> {
        self.sync_active.store(true, Ordering::SeqCst);
        let primary = self.primary();
        self.write_config(&primary)?;
        self.reload(&primary)
    }

    /// Points a running standby at the primary now: its slot there, then
    /// `primary_conninfo` and `primary_slot_name` in its config, reloaded (the
    /// WAL receiver restarts with them; it follows the new timeline).
    fn repoint(&self, node: &LocalNode) -> Result<(), ClusterError> {
        self.ensure_slot(node)?;
        self.write_config(node)?;
        self.reload(node)
    }

    fn reload(&self, node: &LocalNode) -> Result<(), ClusterError> {
        self.psql(node, "SELECT pg_reload_conf()").map(|_| ())
    }

    fn set_primary(&self, name: &str) -> Result<(), ClusterError> {
        let index = self
            .nodes
            .iter()
            .position(|node| node.name == name)
            .ok_or_else(|| ClusterError::UnknownNode { name: name.into() })?;
        *self
            .primary
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = index;
        ClusterState {
            format: STATE_FORMAT,
            pg_major: self.bins.major,
            pg_port: self.nodes[0].port,
            standbys: self.nodes.len() - 1,
            primary: Some(name.to_string()),
        }
        .save(&self.layout.state_file())
    }

    /// WAL a standby has received (or replayed, whichever is further), in bytes.
    fn wal_position(&self, node: &LocalNode) -> Result<u64, ClusterError> {
        let text = self.psql(
            node,
            "SELECT pg_wal_lsn_diff(GREATEST(COALESCE(pg_last_wal_receive_lsn(), '0/0'), \
             COALESCE(pg_last_wal_replay_lsn(), '0/0')), '0/0')::bigint",
        )?;
        text.parse().map_err(|_| ClusterError::Command {
            what: format!("reading the WAL position of {}", node.name),
            detail: format!("unexpected answer {text:?}"),
        })
    }

    /// Timeline a running primary writes WAL on (the WAL file name's first field).
    fn timeline(&self, primary: &LocalNode) -> Result<u32, ClusterError> {
        let text = self.psql(
            primary,
            "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)",
        )?;
        u32::from_str_radix(&text, 16).map_err(|_| ClusterError::Command {
            what: format!("reading the timeline of {}", primary.name),
            detail: format!("unexpected answer {text:?}"),
        })
    }

    /// Timeline of the last checkpoint of a stopped data directory.
    fn checkpoint_timeline(&self, data: &Path) -> Option<u32> {
        self.control_field(data, "Latest checkpoint's TimeLineID:")
            .ok()??
            .parse()
            .ok()
    }

    /// `pg_rewind` of a stopped node from the primary now.
    fn rewind(&self, node: &LocalNode) -> Result<(), ClusterError> {
        let tool = self.bins.tool("pg_rewind");
        if !tool.is_file() {
            return Err(ClusterError::Command {
                what: "pg_rewind".into(),
                detail: format!("{} is missing", tool.display()),
            });
        }
        // pg_rewind reads the source's timeline from its control file, which
        // a promoted standby updates only at its next checkpoint: without
        // one, it sees "the same timeline" and rewinds nothing.
        self.psql(&self.primary(), "CHECKPOINT")?;
        let source = format!(
            "host='{}' port={} user='{}' dbname=postgres",
            conninfo_quote(&self.layout.run_dir().display().to_string()),
            self.primary().port,
            conninfo_quote(&self.server_user_name()),
        );
        let output = self
            .run_as
            .command(tool, &self.layout.root)
            .arg("-D")
            .arg(&node.data)
            .arg(format!("--source-server={source}"))
            .stdin(Stdio::null())
            .output();
        check_output(&format!("pg_rewind of {}", node.name), output)
    }

    /// Whether, within `limit`, some standby streams from the primary.
    fn wait_any_streaming(&self, limit: Duration) -> Result<bool, ClusterError> {
        let primary = self.primary();
        let deadline = Instant::now() + limit;
        loop {
            let streaming = self.psql(
                &primary,
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
            )?;
            if streaming != "0" {
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn require_running(&self, primary: &LocalNode, node: &LocalNode) -> Result<(), ClusterError> {
        if self.is_running(primary) {
            Ok(())
        } else {
            Err(ClusterError::Refused {
                what: format!("starting {}", node.name),
                reason: format!(
                    "it must first become a standby of the primary ({}), which is not running; \
                     start {} first ({} never comes back as a second primary)",
                    primary.name, primary.name, node.name
                ),
            })
        }
    }
}
