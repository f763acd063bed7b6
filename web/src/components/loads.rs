//! Per-shard load bars, before and after the change, with the mean, the
//! standard deviation and the peak-to-mean ratio.

use yew::prelude::*;

use crate::components::Shared;
use crate::format::{decimal, thousands};
use crate::scenario::Scenario;

/// Props of [`LoadBars`].
#[derive(PartialEq, Properties)]
pub struct LoadBarsProps {
    /// The change.
    pub scenario: Shared<Scenario>,
}

/// The load panel.
#[function_component]
pub fn LoadBars(props: &LoadBarsProps) -> Html {
    let scenario = &props.scenario;
    let plan = &scenario.plan;
    let (before, after) = (&plan.loads_before, &plan.loads_after);
    let tallest = before.max.max(after.max).max(1) as f64;
    let mean_at = after.mean / tallest * 100.0;
    html! {
        <div class="card loads">
            <div class="card-head">
                <h3>{ "Load per shard" }</h3>
                <span class="legend-inline"><i class="bar-before" />{ "before" }<i class="bar-after" />{ "after" }<i class="mean-line" />{ "mean after" }</span>
            </div>
            <div class="bars" id="load-bars">
                <div class="mean-marker" style={format!("left: calc(5.5rem + (100% - 10.5rem) * {:.4})", mean_at / 100.0)} />
                { for scenario.columns.iter().map(|column| {
                    let width = |keys: Option<u64>| keys.map_or(0.0, |keys| keys as f64 / tallest * 100.0);
                    html! {
                        <div class="bar-row" data-shard={column.name.clone()}>
                            <span class="bar-name" style={format!("color: {}", column.color.css())}>{ &column.name }</span>
                            <div class="bar-track">
                                <div class="bar before" style={format!("width: {:.2}%", width(column.before))} />
                                <div class="bar after" style={format!("width: {:.2}%; background: {}", width(column.after), column.color.css())} />
                            </div>
                            <span class="bar-count">{ column.after.map_or_else(|| "removed".to_string(), thousands) }</span>
                        </div>
                    }
                }) }
            </div>
            <div class="stats-grid" id="load-stats">
                <Stat label="mean" before={decimal(before.mean, 1)} after={decimal(after.mean, 1)} />
                <Stat label="std dev" before={decimal(before.std_dev, 1)} after={decimal(after.std_dev, 1)} />
                <Stat label="max / mean" before={format!("{:.3}", before.max_over_mean)} after={format!("{:.3}", after.max_over_mean)} id="max-over-mean" />
            </div>
        </div>
    }
}

#[derive(PartialEq, Properties)]
struct StatProps {
    label: AttrValue,
    before: AttrValue,
    after: AttrValue,
    #[prop_or_default]
    id: Option<AttrValue>,
}

#[function_component]
fn Stat(props: &StatProps) -> Html {
    html! {
        <div class="stat" id={props.id.clone()}>
            <span class="stat-label">{ &props.label }</span>
            <span class="stat-value">
                <span class="muted">{ &props.before }</span>
                { " → " }
                <strong data-value={props.after.clone()}>{ &props.after }</strong>
            </span>
        </div>
    }
}
