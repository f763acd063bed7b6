//! The headline over the stage: how many keys moved, as a share, against the
//! least any placement must move (and why a change can move fewer); the
//! equivalent `ecoshard plan` command.

use yew::prelude::*;

use crate::components::Shared;
use crate::format::{percent, thousands};
use crate::scenario::Scenario;
use crate::state::strategy_title;
use crate::verdict::verdict;

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
