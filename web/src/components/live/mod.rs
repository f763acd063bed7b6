//! The live tab: the cluster's topology and lag, traffic controls, read
//! routing, and applying the explorer's layout. Without a bridge it says so
//! and points at the explorer, which works on its own.

mod bridges;
mod lag_chart;
mod load;
mod rebalance;
mod shard_move;
mod topology;
mod traffic;

use yew::platform::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::live::{BridgeStatus, Live, LiveAction, LogKind};
use crate::state::Explorer;

use lag_chart::LagChart;
use rebalance::Rebalance;
use topology::Topology;
use traffic::Traffic;

/// Props of [`LivePage`].
#[derive(PartialEq, Properties)]
pub struct LivePageProps {
    /// The live state.
    pub live: Live,
    /// The explorer's state (its current layout can be applied).
    pub explorer: Explorer,
    /// Where answers and failures go.
    pub dispatch: Callback<LiveAction>,
}

/// The live tab.
#[function_component]
pub fn LivePage(props: &LivePageProps) -> Html {
    let live = &props.live;
    {
        // The stream carries the layout's version only: fetch the layout
        // when a rebalance began or ended.
        let dispatch = props.dispatch.clone();
        let wanted = live.layout_is_stale().then_some(live.layout_version);
        use_effect_with(wanted, move |wanted| {
            if wanted.is_some() {
                spawn_local(async move {
                    match api::layout().await {
                        Ok(view) => dispatch.emit(LiveAction::Layout(view)),
                        Err(error) => dispatch.emit(LiveAction::Failed(format!("Layout: {error}"))),
                    }
                });
            }
        });
    }
    match &live.bridge {
        BridgeStatus::Checking => html! {
            <div class="card notice" id="bridge-checking">
                <h2>{ "Looking for the bridge…" }</h2>
            </div>
        },
        BridgeStatus::Absent { reason } => html! {
            <div class="card notice" id="no-bridge">
                <h2>{ "No bridge answers at this address" }</h2>
                <p>{ "This page is being served as static files, so there is no cluster to show. The explorer works fully on its own — same hashing core, same numbers as the command line." }</p>
                <p>{ "To watch a real replicated PostgreSQL (a primary and two streaming standbys), build the page, start the bridge — it starts a local cluster from the system's PostgreSQL — and open the address it prints (http://127.0.0.1:8080/ by default):" }</p>
                <pre class="cli-block">{ "cargo xtask dist\ncargo run --release -p ecoshard-bridge -- serve" }</pre>
                <p class="muted small">{ format!("What happened when asking: {reason}") }</p>
            </div>
        },
        BridgeStatus::Present { .. } => html! {
            <div class="live">
                <Topology live={live.clone()} dispatch={props.dispatch.clone()} />
                <div class="card lag-charts">
                    <div class="card-head">
                        <h3>{ "Replication lag per standby" }</h3>
                        <span class="muted small">{ format!("replay lag, last 3 minutes · {} samples", live.ticks) }</span>
                    </div>
                    <div class="chart-row">
                        { for live.standby_keys().into_iter().map(|key| {
                            let history = live.lag.get(&key).cloned().unwrap_or_default();
                            html! { <LagChart name={key.clone()} points={history} key={key} /> }
                        }) }
                        if live.standby_keys().is_empty() {
                            <p class="muted">{ "No standby reported yet." }</p>
                        }
                    </div>
                </div>
                <div class="live-grid">
                    <Traffic live={live.clone()} dispatch={props.dispatch.clone()} />
                    <Rebalance live={live.clone()} explorer={props.explorer.clone()} dispatch={props.dispatch.clone()} />
                </div>
                <div class="card activity">
                    <div class="card-head"><h3>{ "Activity" }</h3></div>
                    <ul id="activity">
                        { for live.log.iter().map(|entry| html! {
                            <li key={entry.serial} class={classes!(if entry.kind == LogKind::Error { "error" } else { "ok" })}>
                                { &entry.text }
                                if entry.repeats > 1 {
                                    <span class="repeats">{ format!("× {}", entry.repeats) }</span>
                                }
                            </li>
                        }) }
                        if live.log.is_empty() {
                            <li class="muted">{ "Insert or read a user to see where it goes." }</li>
                        }
                    </ul>
                </div>
            </div>
        },
    }
}
