//! The bridges serving the database, when there are several (behind a load
//! balancer): one tile each with its name and address, the layout it
//! routes by, its heartbeat, live or lapsed, whether it runs the job and
//! whether it is this page's. With one bridge, nothing: the page is as it was.

use yew::prelude::*;

use crate::live::{Live, bridge_heartbeat};

/// The bridges' row of the topology card (empty with one bridge).
pub(super) fn bridges(live: &Live) -> Html {
    if live.bridges.is_empty() {
        return html! {};
    }
    html! {
        <section class="bridges-row">
            <div class="cluster-head"><h4>{ "bridges" }</h4></div>
            <div class="bridges" id="bridges">
                { for live.bridges.iter().map(|bridge| {
                    let state = if bridge.live { "up" } else { "down" };
                    html! {
                        <div class={classes!("node", "bridge", state, bridge.this.then_some("is-this"))}
                            data-bridge={bridge.name.clone()} data-live={bridge.live.to_string()}>
                            <div class="node-head">
                                <span class="node-name">{ &bridge.name }</span>
                                if bridge.runs_job {
                                    <span class="tag">{ "runs the job" }</span>
                                }
                                if bridge.this {
                                    <span class="tag">{ "this bridge" }</span>
                                }
                                <span class={classes!("pill", state)}>{ if bridge.live { "live" } else { "lapsed" } }</span>
                            </div>
                            <div class="node-role muted small">{ &bridge.address }{ " · " }{ live.bridge_layout(bridge) }</div>
                            <div class="small bridge-heartbeat">{ bridge_heartbeat(bridge) }</div>
                        </div>
                    }
                }) }
            </div>
        </section>
    }
}
