//! Per-shard load bars, before and after the change, with the mean, the
//! standard deviation and the peak-to-mean ratio; under bounded-load, the cap
//! every shard is held to, and what holding to it did.

use yew::prelude::*;

use crate::components::Shared;
use crate::format::{count, decimal, thousands};
use crate::scenario::{BoundedLoadCap, Scenario};

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
    let cap = scenario.columns.iter().find_map(|column| column.cap_after);
    let tallest = before.max.max(after.max).max(cap.unwrap_or(0)).max(1) as f64;
    // Where a count sits across the bar tracks (the stylesheet's column widths).
    let across = |keys: f64| {
        format!(
            "left: calc(var(--name-w) + var(--bar-gap) + (100% - var(--name-w) - var(--count-w) \
             - 2 * var(--bar-gap)) * {:.4})",
            keys / tallest
        )
    };
    html! {
        <div class="card loads">
            <div class="card-head">
                <h3>{ "Load per shard" }</h3>
                <span class="legend-inline">
                    <i class="bar-before" />{ "before" }<i class="bar-after" />{ "after" }<i class="mean-line" />{ "mean after" }
                    if cap.is_some() {
                        <i class="cap-line" />{ "cap" }
                    }
                </span>
            </div>
            <div class="bars" id="load-bars">
                <div class="mean-marker" style={across(after.mean)} />
                if let Some(cap) = cap {
                    <div class="cap-marker" id="cap-marker" data-cap={cap.to_string()} style={across(cap as f64)}>
                        <span class="cap-label">{ format!("cap {}", thousands(cap)) }</span>
                    </div>
                }
                { for scenario.columns.iter().map(|column| {
                    let width = |keys: Option<u64>| keys.map_or(0.0, |keys| keys as f64 / tallest * 100.0);
                    html! {
                        <div class={classes!("bar-row", column.is_full().then_some("full"))} data-shard={column.name.clone()}>
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
            if let Some(bounded) = &scenario.bounded {
                <p class="cap-note" id="cap-note">{ cap_note(scenario, bounded, cap) }</p>
            }
            <div class="stats-grid" id="load-stats">
                <Stat label="mean" before={decimal(before.mean, 1)} after={decimal(after.mean, 1)} />
                <Stat label="std dev" before={decimal(before.std_dev, 1)} after={decimal(after.std_dev, 1)} />
                <Stat label="max / mean" before={format!("{:.3}", before.max_over_mean)} after={format!("{:.3}", after.max_over_mean)} id="max-over-mean" />
            </div>
        </div>
    }
}

/// What the cap is and what it did, in words.
fn cap_note(scenario: &Scenario, bounded: &BoundedLoadCap, cap: Option<u64>) -> String {
    let mean = scenario.plan.loads_after.mean;
    let mean_places = if mean.fract() == 0.0 { 0 } else { 1 };
    let mut note = format!(
        "Bounded-load, c = {}: no shard takes more than ⌈{} × {}⌉ = {} keys.",
        bounded.load_factor,
        bounded.load_factor,
        decimal(mean, mean_places),
        cap.map_or_else(|| "–".to_string(), thousands)
    );
    let full: Vec<&str> = scenario
        .columns
        .iter()
        .filter(|column| column.is_full())
        .map(|column| column.name.as_str())
        .collect();
    if bounded.passed_on == 0 {
        note.push_str(" No shard reached it: every key stays with its ring owner, as under ring.");
    } else {
        note.push_str(&format!(
            " Full: {}; {} went on past their ring owner to the next shard with room.",
            full.join(", "),
            count(bounded.passed_on, "key", "keys")
        ));
    }
    note
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
