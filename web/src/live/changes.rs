//! What changed between two ticks, in words for the activity log: nodes
//! going down or coming back, a new primary, a failover starting and done,
//! bridges joining, lapsing and gone.

use ecoshard_core::wire::{BridgeView, FailoverEvent, FailoverView, NodeRole, NodeStatus, Tick};

use crate::format::millis;
use crate::live::LogKind;

/// The lines for what `tick` changed since `nodes` and `failover`.
pub fn changes(
    nodes: &[NodeStatus],
    failover: &FailoverView,
    tick: &Tick,
) -> Vec<(LogKind, String)> {
    node_changes(nodes, failover, &tick.nodes, &tick.failover)
}

/// The lines for what one cluster's `now_nodes` and `now_failover` changed
/// since `nodes` and `failover`.
pub fn node_changes(
    nodes: &[NodeStatus],
    failover: &FailoverView,
    now_nodes: &[NodeStatus],
    now_failover: &FailoverView,
) -> Vec<(LogKind, String)> {
    let mut lines = Vec::new();
    for node in now_nodes {
        let Some(old) = nodes.iter().find(|old| old.name == node.name) else {
            continue;
        };
        if old.role != node.role && node.role == NodeRole::Primary {
            lines.push((LogKind::Ok, new_primary(&node.name)));
        }
        if old.up && !node.up {
            let text = match node.role {
                NodeRole::Primary => format!(
                    "{} is down: writes answer 503, reads go on from the standbys",
                    primary_called(&node.name)
                ),
                NodeRole::Standby => format!("{} is down: reads go to the other nodes", node.name),
            };
            lines.push((LogKind::Error, text));
        } else if !old.up && node.up {
            lines.push((LogKind::Ok, format!("{} is up again", node.name)));
        }
    }
    if now_failover.in_progress && !failover.in_progress {
        lines.push((
            LogKind::Error,
            "failover under way: promoting the most advanced standby".to_string(),
        ));
    }
    let new_event = now_failover.last.as_ref().filter(|event| {
        failover
            .last
            .as_ref()
            .is_none_or(|old| old.at_ms != event.at_ms)
    });
    if let Some(event) = new_event {
        lines.push((LogKind::Ok, failover_sentence(event)));
    }
    lines
}

/// The lines for the bridges `now` lists against those listed `before`
/// (none listed: one bridge, the page's own): another bridge that joined,
/// or lapsed.
pub fn bridge_changes(before: &[BridgeView], now: &[BridgeView]) -> Vec<(LogKind, String)> {
    let mut lines = Vec::new();
    for bridge in now.iter().filter(|bridge| !bridge.this) {
        let (kind, what) = match before.iter().find(|old| old.name == bridge.name) {
            None => (LogKind::Ok, format!("joined ({})", bridge.address)),
            Some(old) if old.live && !bridge.live => {
                (LogKind::Error, format!("lapsed: {}", super::words::LAPSED))
            }
            Some(_) => continue,
        };
        lines.push((kind, format!("bridge {} {what}", bridge.name)));
    }
    lines
}

/// The primary by its name, its role said once: "the primary" for the node
/// named so, else "standby-1 (primary)".
fn primary_called(name: &str) -> String {
    if name == "primary" {
        "the primary".to_string()
    } else {
        format!("{name} (primary)")
    }
}

/// A node took the primary role (a failover, or a failback to the node
/// named "primary": never "primary is the primary now").
fn new_primary(name: &str) -> String {
    if name == "primary" {
        "the node named primary has the primary role now: writes go to it".to_string()
    } else {
        format!("{name} is the primary now: writes go to it")
    }
}

/// A failover in one sentence, with its timings.
pub fn failover_sentence(event: &FailoverEvent) -> String {
    let mut text = format!(
        "failover: {} promoted in place of {} — detected in {}, pg_promote {}, writes back after {}",
        event.to,
        event.from,
        millis(Some(event.detect_ms)),
        millis(Some(event.promote_ms)),
        millis(Some(event.total_ms))
    );
    if !event.repointed.is_empty() {
        let verb = if event.repointed.len() == 1 {
            "follows"
        } else {
            "follow"
        };
        text.push_str(&format!("; {} now {verb} it", event.repointed.join(", ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use ecoshard_core::wire::Stats;

    use super::*;

    fn node(name: &str, role: NodeRole, up: bool) -> NodeStatus {
        NodeStatus {
            name: name.to_string(),
            role,
            addr: "127.0.0.1:5432".to_string(),
            up,
            lag: None,
        }
    }

    fn tick(nodes: Vec<NodeStatus>, failover: FailoverView) -> Tick {
        Tick {
            at_ms: 1,
            nodes,
            stats: Stats::default(),
            rebalance: None,
            layout_version: 1,
            failover,
            clusters: Vec::new(),
            bridges: Vec::new(),
        }
    }

    fn check(before: &[NodeStatus], after: Vec<NodeStatus>, expected: &[(LogKind, &str)]) {
        let lines = changes(
            before,
            &FailoverView::default(),
            &tick(after, FailoverView::default()),
        );
        let lines: Vec<(LogKind, &str)> = lines
            .iter()
            .map(|(kind, text)| (*kind, text.as_str()))
            .collect();
        assert_eq!(lines, expected);
    }

    #[test]
    fn nodes_down_up_and_a_new_primary() {
        use NodeRole::{Primary, Standby};
        let healthy = [
            node("primary", Primary, true),
            node("standby-1", Standby, true),
        ];
        check(&healthy, healthy.to_vec(), &[]);
        check(
            &healthy,
            vec![
                node("primary", Primary, true),
                node("standby-1", Standby, false),
            ],
            &[(
                LogKind::Error,
                "standby-1 is down: reads go to the other nodes",
            )],
        );
        check(
            &healthy,
            vec![
                node("primary", Primary, false),
                node("standby-1", Standby, true),
            ],
            &[(
                LogKind::Error,
                "the primary is down: writes answer 503, reads go on from the standbys",
            )],
        );
        check(
            &[
                node("primary", Primary, false),
                node("standby-1", Standby, true),
            ],
            vec![
                node("primary", Standby, false),
                node("standby-1", Primary, true),
            ],
            &[(LogKind::Ok, "standby-1 is the primary now: writes go to it")],
        );
        check(
            &[node("primary", Standby, false)],
            vec![node("primary", Standby, true)],
            &[(LogKind::Ok, "primary is up again")],
        );
    }

    #[test]
    fn a_failback_to_the_node_named_primary_does_not_say_primary_is_the_primary() {
        use NodeRole::{Primary, Standby};
        check(
            &[
                node("primary", Standby, true),
                node("standby-1", Primary, true),
            ],
            vec![
                node("primary", Primary, true),
                node("standby-1", Standby, true),
            ],
            &[(
                LogKind::Ok,
                "the node named primary has the primary role now: writes go to it",
            )],
        );
        check(
            &[node("primary", Primary, true)],
            vec![node("primary", Primary, false)],
            &[(
                LogKind::Error,
                "the primary is down: writes answer 503, reads go on from the standbys",
            )],
        );
    }

    #[test]
    fn a_failover_is_logged_once_when_it_starts_and_when_it_is_done() {
        let event = FailoverEvent {
            from: "primary".to_string(),
            to: "standby-2".to_string(),
            at_ms: 5,
            detect_ms: 250.4,
            promote_ms: 41.9,
            total_ms: 372.0,
            repointed: vec!["standby-1".to_string()],
        };
        let running = FailoverView {
            auto: true,
            in_progress: true,
            ..FailoverView::default()
        };
        let lines = changes(
            &[],
            &FailoverView::default(),
            &tick(Vec::new(), running.clone()),
        );
        assert_eq!(
            lines[0].1,
            "failover under way: promoting the most advanced standby"
        );
        let done = FailoverView {
            auto: true,
            last: Some(event),
            ..FailoverView::default()
        };
        let lines = changes(&[], &running, &tick(Vec::new(), done.clone()));
        assert_eq!(
            lines[0].1,
            "failover: standby-2 promoted in place of primary — detected in 250 ms, \
             pg_promote 42 ms, writes back after 372 ms; standby-1 now follows it"
        );
        assert!(changes(&[], &done, &tick(Vec::new(), done.clone())).is_empty());
    }
}
