//! The headline over the stage: how many keys moved, as a share, against the
//! least any placement must move (and why a change can move fewer); the
//! equivalent `ecoshard plan` command.

use yew::prelude::*;

use crate::components::Shared;
use crate::format::{percent, thousands};
use crate::scenario::Scenario;
use crate::state::strategy_title;
use crate::verdict::verdict;
use ecoshard_core::Plan;

/// Props of [`Summary`].
#[derive(PartialEq, Properties)]
pub struct SummaryProps {
    /// The change.
    pub scenario: Shared<Scenario>,
    /// `ecoshard plan …` printing the same numbers, when there is one.
    pub cli: Option<String>,
    /// Play the change again.
    pub on_replay: Callback<()>,
}

/// The moved-keys headline.
#[function_component]
pub fn Summary(props: &SummaryProps) -> Html {
    let plan = &props.scenario.plan;
    let moved_fraction = plan.moved_fraction();
    let ideal = plan.ideal_fraction;
    let verdict = verdict(plan);
    let old = plan.old_shards.len();
    let new = plan.new_shards.len();
    let on_replay = props.on_replay.reform(|_: MouseEvent| ());
    let bar_max = moved_fraction.max(ideal).max(0.01);
    html! {
        <div class="card summary">
            <div class="summary-main">
                <div class="kicker">
                    { format!("{} · {old} → {new} shards · {} keys", strategy_title(props.scenario.strategy), thousands(plan.total)) }
                </div>
                <div class="headline">
                    <span class="big" id="moved-count" data-value={plan.moved.to_string()}>{ thousands(plan.moved) }</span>
                    <span class="of">{ format!(" of {} keys moved", thousands(plan.total)) }</span>
                    <span class="big accent" id="moved-percent">{ percent(moved_fraction) }</span>
                </div>
                <div class="versus">
                    <div class="meter">
                        <div class="meter-fill" style={format!("width: {:.2}%", moved_fraction / bar_max * 100.0)} />
                        <div class="meter-ideal" style={format!("left: {:.2}%", ideal / bar_max * 100.0)} title="ideal minimum" />
                    </div>
                    <div class="versus-text">
                        <span id="ideal-percent">{ format!("ideal minimum {}", percent(ideal)) }</span>
                        <span id="verdict" class={classes!("verdict", verdict.tone.class())}>{ &verdict.badge }</span>
                    </div>
                    if let Some(note) = &verdict.note {
                        <p class="verdict-note" id="verdict-note">{ note }</p>
                    }
                </div>
                { cluster_moves(plan) }
            </div>
            <div class="summary-side">
                <button id="replay" class="button ghost" onclick={on_replay}>{ "↻ Replay" }</button>
                if let Some(cli) = &props.cli {
                    <code class="cli" title="the same numbers from the command line">{ format!("$ {cli}") }</code>
                }
            </div>
        </div>
    }
}

/// Where the rows go between clusters, from the core's plan: keys moving
/// within a cluster, keys crossing to another (per pair), and the shards
/// that change cluster with their keys. Nothing when no cluster is named.
fn cluster_moves(plan: &Plan) -> Html {
    if plan
        .new_clusters
        .iter()
        .chain(&plan.old_clusters)
        .all(Option::is_none)
    {
        return html! {};
    }
    let moves = plan.cluster_moves();
    let name = |cluster: &Option<String>| cluster.clone().unwrap_or_default();
    let pairs: Vec<String> = moves
        .transfers
        .iter()
        .map(|pair| {
            format!(
                "{} → {} {}",
                name(&pair.from),
                name(&pair.to),
                thousands(pair.keys)
            )
        })
        .collect();
    let with_shards: u64 = moves.shards.iter().map(|shard| shard.keys).sum();
    html! {
        <div class="cluster-moves" id="cluster-moves">
            <p>
                <strong id="moved-within" data-value={moves.within.to_string()}>{ thousands(moves.within) }</strong>
                { " moved keys stay on their cluster · " }
                <strong id="moved-across" data-value={moves.across.to_string()}>{ thousands(moves.across) }</strong>
                { " cross to another cluster" }
                if !pairs.is_empty() {
                    <span class="muted">{ format!(" ({})", pairs.join(", ")) }</span>
                }
            </p>
            <p id="shard-moves" data-value={with_shards.to_string()}>
                if moves.shards.is_empty() {
                    { "No shard changes cluster." }
                } else {
                    { format!("{} keys move with their shard to another cluster: ", thousands(with_shards)) }
                    { for moves.shards.iter().map(|shard| html! {
                        <span class="shard-move" data-shard={shard.shard.clone()}>
                            { format!("{} {} → {} ({})", shard.shard, name(&shard.from), name(&shard.to), thousands(shard.keys)) }
                        </span>
                    }) }
                }
            </p>
        </div>
    }
}
