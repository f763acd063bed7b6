//! The cluster's nodes: the primary feeding its standbys, each with role,
//! up/down, current lag, and (local cluster) a stop/start switch.

use ecoshard_core::wire::{ClusterMode, NodeRole, NodeStatus};
use yew::platform::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::format::{bytes, millis, thousands};
use crate::live::{Live, LiveAction};

#[derive(PartialEq, Properties)]
pub(super) struct TopologyProps {
    pub(super) live: Live,
    pub(super) dispatch: Callback<LiveAction>,
}

#[function_component]
pub(super) fn Topology(props: &TopologyProps) -> Html {
    let live = &props.live;
    let local = live.mode == Some(ClusterMode::Local);
    let primary = live
        .nodes
        .iter()
        .find(|node| node.role == NodeRole::Primary);
    html! {
        <div class="card topology" id="topology">
            <div class="card-head">
                <h3>{ "Cluster" }</h3>
                <span class="muted small">
                    { match (&live.layout_summary, live.layout_version) {
                        (Some(summary), Some(version)) => format!("layout v{version}: {summary}"),
                        (None, Some(version)) => format!("layout v{version}"),
                        _ => String::new(),
                    } }
                    { match live.mode { Some(ClusterMode::Local) => " · local cluster", Some(ClusterMode::External) => " · external cluster", None => "" } }
                </span>
            </div>
            <div class="nodes">
                if let Some(primary) = primary {
                    <NodeCard node={primary.clone()} reads={live.reads_by(&primary.name)} local={false} dispatch={props.dispatch.clone()} />
                    <div class="stream-arrows" aria-hidden="true">{ "WAL ➜" }</div>
                }
                <div class="standbys">
                    { for live.standbys().map(|node| html! {
                        <NodeCard node={node.clone()} reads={live.reads_by(&node.name)} {local} dispatch={props.dispatch.clone()} key={node.name.clone()} />
                    }) }
                </div>
                if live.nodes.is_empty() {
                    <p class="muted">{ "Waiting for the first report from the bridge…" }</p>
                }
            </div>
        </div>
    }
}

#[derive(PartialEq, Properties)]
struct NodeCardProps {
    node: NodeStatus,
    reads: u64,
    local: bool,
    dispatch: Callback<LiveAction>,
}

#[function_component]
fn NodeCard(props: &NodeCardProps) -> Html {
    let node = &props.node;
    let busy = use_state(|| false);
    let toggle = {
        let name = node.name.clone();
        let start = !node.up;
        let dispatch = props.dispatch.clone();
        let busy = busy.clone();
        Callback::from(move |_: MouseEvent| {
            let name = name.clone();
            let dispatch = dispatch.clone();
            let busy = busy.clone();
            busy.set(true);
            spawn_local(async move {
                match api::node_action(&name, start).await {
                    Ok(()) => dispatch.emit(LiveAction::NodeAsked { name, start }),
                    Err(error) => {
                        let verb = if start { "Start" } else { "Stop" };
                        dispatch.emit(LiveAction::Failed(format!("{verb} {name}: {error}")))
                    }
                }
                busy.set(false);
            });
        })
    };
    let role = match node.role {
        NodeRole::Primary => "primary · writes",
        NodeRole::Standby => "standby · reads",
    };
    let lag = node.lag.as_ref();
    html! {
        <div class={classes!("node", if node.up { "up" } else { "down" })} data-node={node.name.clone()} data-up={node.up.to_string()}>
            <div class="node-head">
                <span class="node-name">{ &node.name }</span>
                <span class={classes!("pill", if node.up { "up" } else { "down" })}>{ if node.up { "up" } else { "down" } }</span>
            </div>
            <div class="node-role muted small">{ role }{ " · " }{ &node.addr }</div>
            if node.role == NodeRole::Standby {
                <div class="node-metrics">
                    <span title="replay lag; PostgreSQL reports none while the standby is idle and caught up">
                        { "lag " }<strong>{ replay_lag_text(lag) }</strong>
                    </span>
                    <span title="bytes not yet replayed">{ bytes(lag.and_then(|lag| lag.byte_lag)) }</span>
                    <span class="muted">{ lag.and_then(|lag| lag.state.clone()).unwrap_or_else(|| "not streaming".to_string()) }</span>
                </div>
            }
            <div class="node-reads small">{ format!("{} reads served", thousands(props.reads)) }</div>
            if node.role == NodeRole::Standby && props.local {
                <button class={classes!("button", "small", if node.up { "danger" } else { "primary" })}
                    data-action={if node.up { "stop" } else { "start" }}
                    disabled={*busy} onclick={toggle}>
                    { if node.up { "Stop standby" } else { "Start standby" } }
                </button>
            }
        </div>
    }
}

/// Replay lag for people: PostgreSQL reports NULL while a standby is idle and
/// caught up, which reads better as "idle" than as a dash.
fn replay_lag_text(lag: Option<&ecoshard_core::wire::LagSample>) -> String {
    match lag {
        Some(sample) if sample.replay_lag_ms.is_some() => millis(sample.replay_lag_ms),
        Some(sample) if sample.up && sample.state.is_some() => "idle".to_string(),
        _ => "—".to_string(),
    }
}
