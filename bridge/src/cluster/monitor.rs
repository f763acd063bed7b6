//! Health checks: every node at once, the primary's `pg_stat_replication`,
//! and which standbys are in the read rotation, recorded on the nodes. The
//! service calls it on its own schedule and reads what it recorded; the
//! monitor reaches into nothing above the cluster.

use std::sync::atomic::Ordering;
use std::time::Duration;

use ecoshard_core::wire::LagSample;

use crate::cluster::{Cluster, Node};
use crate::db::{self, NodeCheck};

/// Longest a health check may take before the node counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_millis(700);

/// Checks every node at once and records what each check found on its
/// node (`at_ms`: when, for the lag samples).
pub(crate) async fn check_nodes(cluster: &Cluster, at_ms: u64) {
    let checks = futures::future::join_all(
        cluster
            .nodes
            .iter()
            .map(|node| tokio::time::timeout(CHECK_TIMEOUT, check(node))),
    )
    .await;
    let checks: Vec<Option<NodeCheck>> = checks
        .into_iter()
        .map(|outcome| outcome.ok().and_then(Result::ok))
        .collect();
    let primary = cluster.primary();
    let primary_index = cluster
        .nodes
        .iter()
        .position(|node| std::ptr::eq(node, primary))
        .unwrap_or(0);
    let primary_check = checks[primary_index]
        .as_ref()
        .filter(|check| !check.in_recovery);
    primary.record_check(
        primary_check.is_some(),
        primary_check.and_then(|check| check.lsn),
        None,
        false,
    );
    for (index, (node, check)) in cluster.nodes.iter().zip(&checks).enumerate() {
        if index == primary_index {
            continue;
        }
        let answers_as_primary = check.as_ref().is_some_and(|check| !check.in_recovery);
        if answers_as_primary && !node.answers_as_primary.load(Ordering::SeqCst) {
            tracing::warn!(
                "{} answers as a primary but is not the bridge's primary ({}): kept out of the read rotation",
                node.name(),
                primary.name()
            );
        }
        node.answers_as_primary
            .store(answers_as_primary, Ordering::SeqCst);
        let up = check.is_some();
        let row = primary_check.and_then(|primary| {
            primary
                .replication
                .iter()
                .find(|row| row.application_name == node.name())
        });
        let lag = LagSample {
            node: node.name().to_string(),
            state: row.and_then(|row| row.state.clone()),
            sync_state: row.and_then(|row| row.sync_state.clone()),
            write_lag_ms: row.and_then(|row| row.write_lag_ms),
            flush_lag_ms: row.and_then(|row| row.flush_lag_ms),
            replay_lag_ms: row.and_then(|row| row.replay_lag_ms),
            byte_lag: row.and_then(|row| row.byte_lag),
            up,
            at_ms,
        };
        let eligible = in_rotation(
            check.as_ref().map(|check| check.in_recovery),
            primary_check.is_some(),
            row.map(|row| (row.state.as_deref(), row.replay_lag_ms)),
            cluster.max_lag_ms,
        );
        node.record_check(up, check.as_ref().and_then(|c| c.lsn), Some(lag), eligible);
    }
}

/// One node's check, on its monitor connection (so that a busy request
/// pool never makes a node look dead).
async fn check(node: &Node) -> Result<NodeCheck, String> {
    let client = node.monitor_pool.get().await.map_err(|e| e.to_string())?;
    db::check(&client, node.is_primary())
        .await
        .map_err(|error| db::describe(&error))
}

/// Whether a standby serves eventual reads: it answered and is in recovery,
/// and either the primary is down (then the standbys are the best there is)
/// or the primary lists it as `streaming` with a replay lag within the bound
/// (NULL lag, normal when idle, counts as none). A standby the primary does
/// not list may be far behind: out.
fn in_rotation(
    in_recovery: Option<bool>,
    primary_up: bool,
    replication: Option<(Option<&str>, Option<f64>)>,
    max_lag_ms: f64,
) -> bool {
    if in_recovery != Some(true) {
        return false;
    }
    if !primary_up {
        return true;
    }
    match replication {
        Some((state, replay_lag_ms)) => {
            state == Some("streaming") && replay_lag_ms.unwrap_or(0.0) <= max_lag_ms
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        in_recovery: Option<bool>,
        primary_up: bool,
        replication: Option<(Option<&str>, Option<f64>)>,
        expected: bool,
    ) {
        assert_eq!(
            in_rotation(in_recovery, primary_up, replication, 1_000.0),
            expected,
            "{in_recovery:?} {primary_up} {replication:?}"
        );
    }

    #[test]
    fn rotation_table() {
        let streaming = Some("streaming");
        check(Some(true), true, Some((streaming, None)), true);
        check(Some(true), true, Some((streaming, Some(12.0))), true);
        check(Some(true), true, Some((streaming, Some(1_000.0))), true);
        check(Some(true), true, Some((streaming, Some(1_000.5))), false);
        check(Some(true), true, Some((Some("catchup"), None)), false);
        check(Some(true), true, Some((None, None)), false);
        check(Some(true), true, None, false);
        check(Some(true), false, None, true);
        check(Some(false), true, Some((streaming, None)), false);
        check(None, true, Some((streaming, None)), false);
        check(None, false, None, false);
    }
}
