//! The cluster's nodes: the primary feeding its standbys, each with its role
//! as the bridge reports it (after a failover the node named `primary` may be
//! a standby), up/down, current lag, reads per second, and (local cluster)
//! stop, crash and start switches. A banner says what a primary that is down
//! means for writes, and what the last failover did. With several bridges,
//! they come first (`bridges.rs`).

use ecoshard_core::wire::{ClusterMode, ClusterNodes, FailoverView, NodeRole, NodeStatus};
use yew::platform::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::format::{bytes, thousands};
use crate::live::{Live, LiveAction, NodeRequest, StopMode, failover_sentence};

#[derive(PartialEq, Properties)]
pub(super) struct TopologyProps {
    pub(super) live: Live,
    pub(super) dispatch: Callback<LiveAction>,
}

#[function_component]
pub(super) fn Topology(props: &TopologyProps) -> Html {
    let live = &props.live;
    let local = live.mode == Some(ClusterMode::Local);
    let group = |cluster: Option<&ClusterNodes>| {
        let (nodes, failover) = match cluster {
            Some(cluster) => (&cluster.nodes, &cluster.failover),
            None => (&live.nodes, &live.failover),
        };
        html! {
            <ClusterGroup
                live={live.clone()}
                cluster={cluster.map(|cluster| AttrValue::from(cluster.name.clone()))}
                nodes={nodes.clone()}
                failover={failover.clone()}
                dispatch={props.dispatch.clone()}
            />
        }
    };
    html! {
        <div class="card topology" id="topology">
            <div class="card-head">
                <h3>{ if live.clusters.is_empty() { "Cluster" } else { "Clusters" } }</h3>
                <span class="muted small" id="cluster-settings">{ cluster_settings(live) }</span>
            </div>
            { super::bridges::bridges(live) }
            if live.clusters.is_empty() {
                { group(None) }
            } else {
                <div class="cluster-groups">
                    { for live.clusters.iter().map(|cluster| group(Some(cluster))) }
                </div>
            }
            if local {
                <p class="muted small hint-line">
                    { "Stop is a clean shutdown, Crash stops at once with no checkpoint (pg_ctl -m immediate). A stopped standby leaves the read rotation; reads go to the others. A stopped primary makes writes answer 503" }
                    { if live.failover.auto { "; with auto-failover on, the most advanced standby takes over." } else { "; start it again to take writes (or run the bridge with --auto-failover)." } }
                </p>
            }
        </div>
    }
}

#[derive(PartialEq, Properties)]
struct ClusterGroupProps {
    live: Live,
    /// The cluster's name; `None` with one cluster (then nothing names it).
    cluster: Option<AttrValue>,
    nodes: Vec<NodeStatus>,
    failover: FailoverView,
    dispatch: Callback<LiveAction>,
}

/// One cluster: its primary feeding its standbys, what a primary that is
/// down means, its last failover; with several clusters, under its name
/// and the shards it holds.
#[function_component]
fn ClusterGroup(props: &ClusterGroupProps) -> Html {
    let live = &props.live;
    let local = live.mode == Some(ClusterMode::Local);
    let name = props.cluster.as_deref().unwrap_or_default();
    // The first cluster keeps the ids the page had with one.
    let first = live.node_key(name, "").is_empty();
    let primary = props
        .nodes
        .iter()
        .find(|node| node.role == NodeRole::Primary);
    let card = |node: &NodeStatus| {
        let key = live.node_key(name, &node.name);
        html! {
            <NodeCard
                node={node.clone()}
                key_name={key.clone()}
                reads={live.reads_by(&key)}
                read_rate={live.read_rate(&key)}
                tag={node_tag(&props.failover, node)}
                lag={live.node_lag(node)}
                {local}
                request={live.node_requests.get(&key).copied()}
                dispatch={props.dispatch.clone()}
                key={key}
            />
        }
    };
    let body = html! {
        <>
            <PrimaryBanner
                primary={primary.cloned()}
                failover={props.failover.clone()}
                writes_refused={if first { live.writes_refused } else { 0 }}
                {first}
            />
            <div class="nodes">
                if let Some(primary) = primary {
                    { card(primary) }
                    <div class="stream-arrows" aria-hidden="true">
                        <span>{ "WAL" }</span>
                        <span class="arrow">{ "➜" }</span>
                    </div>
                }
                <div class="standbys">
                    { for props.nodes.iter().filter(|node| node.role == NodeRole::Standby).map(card) }
                </div>
                if props.nodes.is_empty() {
                    <p class="muted">{ "Waiting for the first report from the bridge…" }</p>
                }
            </div>
            if let Some(event) = &props.failover.last {
                <p class="failover-line" id={first.then_some("last-failover")} data-to={event.to.clone()} data-from={event.from.clone()}>
                    { failover_sentence(event) }
                </p>
            }
        </>
    };
    match &props.cluster {
        None => body,
        Some(cluster) => html! {
            <section class="cluster-group" data-cluster={cluster.clone()}>
                <div class="cluster-head">
                    <h4>{ cluster }</h4>
                    <span class="muted small cluster-shards">{ live.cluster_shards(cluster) }</span>
                </div>
                { body }
            </section>
        },
    }
}

/// "layout v2: Ring over 4 shards · local cluster · auto-failover off ·
/// asynchronous replication" (during a job, no version: see
/// [`Live::layout_header`]).
fn cluster_settings(live: &Live) -> String {
    let layout = live.layout_header();
    let settings = match live.mode {
        Some(ClusterMode::Local) => format!(
            " · {} · auto-failover {} · {} replication",
            match live.clusters.len() {
                0 => "local cluster".to_string(),
                count => format!("{count} local clusters"),
            },
            if live.failover.auto { "on" } else { "off" },
            if live.failover.sync_replication {
                "synchronous"
            } else {
                "asynchronous"
            }
        ),
        Some(ClusterMode::External) => match live.clusters.len() {
            0 => " · external cluster".to_string(),
            count => format!(" · {count} external clusters"),
        },
        None => String::new(),
    };
    format!("{layout}{settings}")
}

/// "promoted" on the node the last failover made primary, "former primary"
/// on the one it replaced.
fn node_tag(failover: &FailoverView, node: &NodeStatus) -> Option<AttrValue> {
    let event = failover.last.as_ref()?;
    if event.to == node.name && node.role == NodeRole::Primary {
        Some("promoted".into())
    } else if event.from == node.name && node.role == NodeRole::Standby {
        Some("former primary".into())
    } else {
        None
    }
}

#[derive(PartialEq, Properties)]
struct PrimaryBannerProps {
    primary: Option<NodeStatus>,
    failover: FailoverView,
    writes_refused: u64,
    /// The first cluster's banner keeps the id it had with one cluster.
    first: bool,
}

/// What a primary that is down (or being replaced) means, while it lasts.
#[function_component]
fn PrimaryBanner(props: &PrimaryBannerProps) -> Html {
    let down = props.primary.as_ref().is_some_and(|primary| !primary.up);
    if !down && !props.failover.in_progress {
        return html! {};
    }
    let name = props
        .primary
        .as_ref()
        .map_or("the primary", |primary| primary.name.as_str());
    // "The primary is down", or "The primary, standby-1, is down" after a failover.
    let subject = if name == "primary" {
        "The primary".to_string()
    } else {
        format!("The primary, {name},")
    };
    let (title, detail) = if props.failover.in_progress {
        (
            "Failover under way".to_string(),
            format!(
                "{subject} is gone; the bridge is promoting the standby that received the most WAL. Writes answer 503 until it takes them; reads go on from the standbys."
            ),
        )
    } else if props.failover.auto {
        (
            format!("{subject} is down"),
            "Writes answer 503 (primary_unavailable) at once; reads go on from the standbys. Auto-failover is on: once the primary's server is gone, the most advanced standby is promoted.".to_string(),
        )
    } else {
        (
            format!("{subject} is down"),
            "Writes answer 503 (primary_unavailable) at once; reads go on from the standbys. Auto-failover is off: writes resume when the primary is started again.".to_string(),
        )
    };
    html! {
        <div class="banner bad" id={props.first.then_some("primary-banner")} data-failover={props.failover.in_progress.to_string()}>
            <strong>{ title }</strong>
            <span>{ detail }</span>
            if props.writes_refused > 0 {
                <span class="banner-count" id="writes-refused">{ format!("{} writes refused so far", thousands(props.writes_refused)) }</span>
            }
        </div>
    }
}

#[derive(PartialEq, Properties)]
struct NodeCardProps {
    node: NodeStatus,
    /// The node's name on this page ([`Live::node_key`]): what its stop and
    /// start are asked for.
    key_name: AttrValue,
    reads: u64,
    read_rate: f64,
    tag: Option<AttrValue>,
    lag: AttrValue,
    local: bool,
    request: Option<NodeRequest>,
    dispatch: Callback<LiveAction>,
}

#[function_component]
fn NodeCard(props: &NodeCardProps) -> Html {
    let node = &props.node;
    let is_primary = node.role == NodeRole::Primary;
    let role = match (is_primary, node.up) {
        (true, true) => "primary · takes writes",
        (true, false) => "primary · writes refused while down",
        (false, true) => "standby · serves reads",
        (false, false) => "standby · out of the read rotation",
    };
    let lag = node.lag.as_ref();
    let state = if node.up { "up" } else { "down" };
    html! {
        <div class={classes!("node", state, is_primary.then_some("is-primary"))}
            data-node={node.name.clone()} data-up={node.up.to_string()}
            data-role={if is_primary { "primary" } else { "standby" }}>
            <div class="node-head">
                <span class="node-name">{ &node.name }</span>
                if let Some(tag) = &props.tag {
                    <span class="tag">{ tag }</span>
                }
                <span class={classes!("pill", state)}>{ state }</span>
            </div>
            <div class="node-role muted small">{ role }{ " · " }{ &node.addr }</div>
            if !is_primary {
                <div class="node-metrics">
                    <span class="node-lag" title="replay lag; PostgreSQL reports none while the standby is idle and caught up">
                        { "lag " }<strong>{ &props.lag }</strong>
                    </span>
                    if let Some(state) = lag.and_then(|lag| lag.state.clone()) {
                        <span title="bytes not yet replayed">{ bytes(lag.and_then(|lag| lag.byte_lag)) }</span>
                        <span class="muted">{ state }</span>
                    }
                </div>
            }
            <div class="node-reads small">
                <span class="reads-rate" data-rate={format!("{:.1}", props.read_rate)}>{ format!("{:.0} reads/s", props.read_rate) }</span>
                <span class="muted">{ format!(" · {} served", thousands(props.reads)) }</span>
            </div>
            if props.local {
                { node_actions(props) }
            }
        </div>
    }
}

/// A stop or start of `name` asked from the page: said at once, then
/// the bridge's answer (or refusal).
fn ask(name: &str, dispatch: &Callback<LiveAction>, request: NodeRequest) -> Callback<MouseEvent> {
    let name = name.to_string();
    let dispatch = dispatch.clone();
    Callback::from(move |_: MouseEvent| {
        let name = name.clone();
        let dispatch = dispatch.clone();
        dispatch.emit(LiveAction::NodeAsked {
            name: name.clone(),
            request,
        });
        spawn_local(async move {
            match api::node_action(&name, request).await {
                Ok(action) => dispatch.emit(LiveAction::NodeActed(action)),
                Err(error) => dispatch.emit(LiveAction::NodeActionFailed { name, error }),
            }
        });
    })
}

/// A node's switches (local cluster): Stop and Crash while it is up, Start
/// while it is down, and what is under way meanwhile.
fn node_actions(props: &NodeCardProps) -> Html {
    let node = &props.node;
    let is_primary = node.role == NodeRole::Primary;
    let busy = props.request.is_some();
    let ask = |request: NodeRequest| ask(&props.key_name, &props.dispatch, request);
    html! {
        <div class="node-actions">
            { match props.request {
                Some(NodeRequest::Start) => html! {
                    <button class="button small" disabled=true>{ "Starting…" }</button>
                },
                Some(NodeRequest::Stop(_)) => html! {
                    <button class="button small" disabled=true>{ "Stopping…" }</button>
                },
                None if node.up => html! {
                    <>
                        <button class="button small danger" data-action="stop" disabled={busy}
                            title="pg_ctl stop -m fast: a clean shutdown"
                            onclick={ask(NodeRequest::Stop(StopMode::Fast))}>
                            { if is_primary { "Stop primary" } else { "Stop" } }
                        </button>
                        <button class="button small ghost" data-action="crash" disabled={busy}
                            title="pg_ctl stop -m immediate: like a crash, no checkpoint"
                            onclick={ask(NodeRequest::Stop(StopMode::Immediate))}>
                            { "Crash" }
                        </button>
                    </>
                },
                None => html! {
                    <button class="button small primary" data-action="start" disabled={busy}
                        title={if is_primary { "start it again as the primary" } else { "start it again: it catches up through its replication slot" }}
                        onclick={ask(NodeRequest::Start)}>
                        { "Start" }
                    </button>
                },
            } }
        </div>
    }
}
