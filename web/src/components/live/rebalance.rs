//! "Apply this layout": sends the explorer's current layout to the bridge and
//! follows the rebalance job — a progress bar, the rows moved against the
//! rows the plan predicted.

use ecoshard_core::wire::JobState;
use yew::platform::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::format::{percent, thousands};
use crate::hooks::use_interval;
use crate::live::{Live, LiveAction};
use crate::state::{Explorer, strategy_title};

#[derive(PartialEq, Properties)]
pub(super) struct RebalanceProps {
    pub(super) live: Live,
    pub(super) explorer: Explorer,
    pub(super) dispatch: Callback<LiveAction>,
}

#[function_component]
pub(super) fn Rebalance(props: &RebalanceProps) -> Html {
    let live = &props.live;
    let explorer = &props.explorer;
    let sending = use_state(|| false);
    let layout = explorer.layout_after();
    let valid = layout.validate();
    let running = live
        .job
        .as_ref()
        .filter(|job| job.state == JobState::Running)
        .map(|job| job.id);

    let apply = {
        let dispatch = props.dispatch.clone();
        let sending = sending.clone();
        Callback::from(move |_: MouseEvent| {
            let layout = layout.clone();
            let dispatch = dispatch.clone();
            let sending = sending.clone();
            sending.set(true);
            spawn_local(async move {
                match api::apply_layout(&layout).await {
                    Ok(job) => dispatch.emit(LiveAction::Job(Box::new(job))),
                    Err(error) => {
                        dispatch.emit(LiveAction::Failed(format!("Apply layout: {error}")))
                    }
                }
                sending.set(false);
            });
        })
    };
    {
        // Poll while a job runs, in case the stream is slow or down.
        let dispatch = props.dispatch.clone();
        let poll = Callback::from(move |_| {
            if let Some(id) = running {
                let dispatch = dispatch.clone();
                spawn_local(async move {
                    if let Ok(job) = api::rebalance(id).await {
                        dispatch.emit(LiveAction::Job(Box::new(job)));
                    }
                });
            }
        });
        use_interval(running.map(|_| 500), poll);
    }

    let target = format!(
        "{} over {} shards ({})",
        strategy_title(explorer.strategy),
        explorer.after.len(),
        explorer
            .after
            .iter()
            .map(|shard| shard.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    html! {
        <div class="card rebalance" id="rebalance">
            <div class="card-head"><h3>{ "Apply this layout" }</h3></div>
            <p class="muted small">{ "Sends the explorer's current layout to the bridge, which moves exactly the rows whose shard changes, each in its own transaction." }</p>
            <div class="apply-row">
                <span class="target">{ target }</span>
                <button class="button primary" id="apply-layout" onclick={apply}
                    disabled={*sending || running.is_some() || valid.is_err()}>
                    { if running.is_some() { "Rebalancing…" } else { "Apply layout" } }
                </button>
            </div>
            if let Err(error) = valid {
                <p class="error-text">{ error.to_string() }</p>
            }
            if let Some(job) = &live.job {
                <div class="job" id="job" data-state={format!("{:?}", job.state).to_lowercase()} data-moved={job.moved.to_string()}>
                    <div class="progress">
                        <div class={classes!("progress-fill", format!("{:?}", job.state).to_lowercase())}
                            style={format!("width: {:.1}%", if job.total == 0 { 100.0 } else { job.moved as f64 / job.total as f64 * 100.0 })} />
                    </div>
                    <div class="job-numbers">
                        <span>{ format!("job {} · v{} → v{}", job.id, job.from_version, job.to_version) }</span>
                        <span>{ format!("{} / {} rows · {:.0} rows/s", thousands(job.moved), thousands(job.total), job.rows_per_sec) }</span>
                    </div>
                    if let Some(plan) = &job.plan {
                        <div class="predicted">
                            <span>{ "predicted by the plan " }<strong id="predicted-rows">{ thousands(plan.moved) }</strong>
                                { format!(" of {} rows ({}, ideal {})", thousands(plan.total), percent(plan.moved_fraction), percent(plan.ideal_fraction)) }</span>
                            <span>{ "moved " }<strong id="real-rows">{ thousands(job.moved) }</strong>
                                { match job.state {
                                    JobState::Done if job.moved == plan.moved => " ✓ exactly as planned".to_string(),
                                    JobState::Done => format!(" — differs from the plan by {}", job.moved.abs_diff(plan.moved)),
                                    JobState::Running => " so far".to_string(),
                                    JobState::Failed => " before it stopped".to_string(),
                                } }
                            </span>
                        </div>
                    }
                    if let Some(error) = &job.error {
                        <p class="error-text">{ error }</p>
                    }
                </div>
            }
        </div>
    }
}
