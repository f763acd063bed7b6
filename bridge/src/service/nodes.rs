//! Failure simulation on a cluster whose servers the bridge runs: stopping
//! a node (cleanly, or like a crash) and starting it again, through the
//! cluster's node control. Stopping the primary makes writes refused (and,
//! with automatic failover, promotes a standby); a node that is no longer
//! primary comes back as a standby, never as a second primary. With several
//! clusters, a node is named within its cluster (`c2`'s `primary`); no
//! cluster named means `c1`.

use std::sync::Arc;

use ecoshard_core::wire::{ClusterMode, NodeAction, NodeRole};

use super::{Error, Service, input};
use crate::cluster::{Cluster, Control, ControlError, Node};
use crate::service::failover::Failover;

/// Stops `name` of `cluster` (`c1` when `None`; `mode`: `fast`, the
/// default, or `immediate`).
pub(crate) async fn stop(
    service: &Service,
    cluster: Option<&str>,
    name: &str,
    mode: Option<&str>,
) -> Result<NodeAction, Error> {
    let immediate = input::stop_mode(mode)?;
    let (cluster, failover) = known_cluster(service, cluster)?;
    let control = control(service, failover)?;
    let node = known_node(cluster, name)?;
    let _operation = failover.lock().await;
    if !blocking(&control, name, |control, name| control.is_running(name))
        .await
        .map_err(|error| action_failed("stopping", name, &error))?
    {
        node.mark_down();
        return Ok(answer(
            cluster,
            name,
            "stop",
            false,
            format!("{} was already stopped", called(name, node.is_primary())),
        ));
    }
    blocking(&control, name, move |control, name| {
        control.stop(name, immediate)
    })
    .await
    .map_err(|error| action_failed("stopping", name, &error))?;
    node.mark_down();
    let message = stopped(name, immediate, node.is_primary(), failover.is_auto());
    tracing::info!("{message}");
    Ok(answer(cluster, name, "stop", true, message))
}

/// Starts `name` of `cluster` (`c1` when `None`) again (a former primary
/// as a standby of the primary now).
pub(crate) async fn start(
    service: &Service,
    cluster: Option<&str>,
    name: &str,
) -> Result<NodeAction, Error> {
    let (cluster, failover) = known_cluster(service, cluster)?;
    let control = control(service, failover)?;
    let node = known_node(cluster, name)?;
    let _operation = failover.lock().await;
    if blocking(&control, name, |control, name| control.is_running(name))
        .await
        .map_err(|error| action_failed("starting", name, &error))?
    {
        return Ok(answer(
            cluster,
            name,
            "start",
            false,
            format!("{} is already running", called(name, node.is_primary())),
        ));
    }
    let rebuilt = blocking(&control, name, |control, name| control.start(name))
        .await
        .map_err(|error| action_failed("starting", name, &error))?;
    crate::cluster::monitor::check_nodes(cluster, super::ticks::now_ms()).await;
    let message = started(name, cluster.primary().name(), rebuilt);
    tracing::info!("{message}");
    Ok(answer(cluster, name, "start", true, message))
}

/// A node as a sentence names it: the node named primary is "the primary"
/// while it is the primary and "the node named primary" once it is not (not
/// "primary (fast), the primary" nor "started primary as a standby"); any
/// other node by its name.
fn called(name: &str, primary: bool) -> String {
    match (name == "primary", primary) {
        (true, true) => "the primary".to_string(),
        (true, false) => "the node named primary".to_string(),
        (false, _) => name.to_string(),
    }
}

/// What a stop did: `name` stopped (`immediate` or fast), and for the
/// primary what becomes of writes.
fn stopped(name: &str, immediate: bool, primary: bool, auto_failover: bool) -> String {
    let how = if immediate { "immediate" } else { "fast" };
    let who = called(name, primary);
    if !primary {
        return format!("stopped {who} ({how}); reads go to the other nodes");
    }
    let next = if auto_failover {
        "until a standby is promoted in its place (automatic failover)"
    } else {
        "until it is started again"
    };
    // "stopped the primary (fast): …", or "stopped standby-1 (fast), the primary: …".
    let role = if name == "primary" {
        ""
    } else {
        ", the primary"
    };
    format!("stopped {who} ({how}){role}: writes answer 503 {next}; reads go to the standbys")
}

/// What a start did: `name` is the primary again, or a standby of
/// `primary` (`rebuilt`: how it was made one, when it had to be).
fn started(name: &str, primary: &str, rebuilt: Option<String>) -> String {
    let of = called(primary, true);
    match rebuilt {
        _ if primary == name && name == "primary" => "started the primary".to_string(),
        _ if primary == name => format!("started {name}: it is the primary"),
        Some(how) => format!(
            "started {} as a standby of {of}: {how}",
            called(name, false)
        ),
        None => format!(
            "started {}, a standby of {of}; it catches up through its slot",
            called(name, false)
        ),
    }
}

fn answer(
    cluster: &Cluster,
    name: &str,
    action: &str,
    changed: bool,
    message: String,
) -> NodeAction {
    let role = cluster
        .node(name)
        .map(|node| node.role())
        .unwrap_or(NodeRole::Standby);
    NodeAction {
        node: name.to_string(),
        action: action.to_string(),
        changed,
        role,
        message,
    }
}

/// The cluster called `name` (`c1` when `None`) and its failover, or
/// [`Error::UnknownCluster`].
fn known_cluster<'a>(
    service: &'a Service,
    name: Option<&str>,
) -> Result<(&'a Cluster, &'a Failover), Error> {
    let index = match name {
        None => 0,
        Some(name) => service
            .clusters()
            .position(name)
            .ok_or_else(|| Error::UnknownCluster {
                name: name.chars().take(40).collect(),
                clusters: service.clusters().names(),
            })?,
    };
    Ok((&service.clusters().all()[index], service.failover_of(index)))
}

/// The cluster's node control, or [`Error::NotLocal`].
fn control(service: &Service, failover: &Failover) -> Result<Control, Error> {
    match failover.control() {
        Some(control) => Ok(Arc::clone(control)),
        None => Err(Error::NotLocal {
            external: service.mode() == ClusterMode::External,
        }),
    }
}

/// The node called `name`, or [`Error::UnknownNode`].
fn known_node<'a>(cluster: &'a Cluster, name: &str) -> Result<&'a Node, Error> {
    cluster.node(name).ok_or_else(|| Error::UnknownNode {
        name: name.chars().take(40).collect(),
        nodes: cluster
            .nodes
            .iter()
            .map(|node| node.name().to_string())
            .collect(),
    })
}

/// Runs a blocking node action on `name` off the async workers.
async fn blocking<T: Send + 'static>(
    control: &Control,
    name: &str,
    action: impl FnOnce(&dyn crate::cluster::NodeControl, &str) -> Result<T, ControlError>
    + Send
    + 'static,
) -> Result<T, ControlError> {
    let (control, name) = (Arc::clone(control), name.to_owned());
    tokio::task::spawn_blocking(move || action(control.as_ref(), &name))
        .await
        .unwrap_or_else(|error| {
            Err(ControlError {
                refused: false,
                message: format!("a node action ended early: {error}"),
            })
        })
}

/// Refused when the cluster's state forbids it (the message says why);
/// else failed, with the details logged.
fn action_failed(doing: &'static str, name: &str, error: &ControlError) -> Error {
    if error.refused {
        return Error::NodeActionRefused(error.message.clone());
    }
    tracing::error!("{doing} {name}: {error}");
    Error::NodeActionFailed {
        doing,
        node: name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_actions_read_as_sentences_when_a_node_is_named_after_its_role() {
        let check = |message: String, expected: &str| assert_eq!(message, expected);
        check(
            stopped("primary", false, true, false),
            "stopped the primary (fast): writes answer 503 until it is started again; reads go \
             to the standbys",
        );
        check(
            stopped("standby-1", true, true, true),
            "stopped standby-1 (immediate), the primary: writes answer 503 until a standby is \
             promoted in its place (automatic failover); reads go to the standbys",
        );
        check(
            stopped("primary", false, false, true),
            "stopped the node named primary (fast); reads go to the other nodes",
        );
        check(
            stopped("standby-2", false, false, false),
            "stopped standby-2 (fast); reads go to the other nodes",
        );
        check(started("primary", "primary", None), "started the primary");
        check(
            started("standby-1", "standby-1", None),
            "started standby-1: it is the primary",
        );
        check(
            started(
                "primary",
                "standby-1",
                Some("rewound with pg_rewind".into()),
            ),
            "started the node named primary as a standby of standby-1: rewound with pg_rewind",
        );
        check(
            started("standby-2", "primary", None),
            "started standby-2, a standby of the primary; it catches up through its slot",
        );
        check(called("primary", true), "the primary");
    }
}
