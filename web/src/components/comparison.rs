//! Every strategy on the same keys and the same change: moved share against
//! the ideal, and the load's evenness afterwards. Click a row to switch.

use ecoshard_core::StrategyKind;
use yew::prelude::*;

use crate::components::Shared;
use crate::components::explorer::DEFER_COMPARISON_KEYS;
use crate::format::{decimal, percent, thousands};
use crate::scenario::Comparison;
use crate::state::strategy_title;

/// Props of [`ComparisonTable`].
#[derive(PartialEq, Properties)]
pub struct ComparisonTableProps {
    /// The rows, `None` while they are being worked out.
    pub rows: Option<Shared<Vec<Comparison>>>,
    /// The strategy on the stage.
    pub current: StrategyKind,
    /// Keys compared.
    pub key_count: u32,
    /// Shards before.
    pub from: usize,
    /// Shards after.
    pub to: usize,
    /// Switch the stage to a strategy.
    pub on_pick: Callback<StrategyKind>,
}

/// The comparison table.
#[function_component]
pub fn ComparisonTable(props: &ComparisonTableProps) -> Html {
    let body = match &props.rows {
        None if props.key_count > DEFER_COMPARISON_KEYS => html! {
            <tr><td colspan="6" class="muted working">{ format!("six plans of {} keys — worked out once the animation is over, so it stays smooth…", thousands(u64::from(props.key_count))) }</td></tr>
        },
        None => html! {
            <tr><td colspan="6" class="muted working">{ "working out six plans…" }</td></tr>
        },
        Some(rows) => {
            let worst = rows
                .iter()
                .filter_map(|row| row.outcome.as_ref().ok())
                .map(|numbers| numbers.moved_fraction)
                .fold(0.01_f64, f64::max);
            html! {
                { for rows.iter().map(|row| {
                    let strategy = row.strategy;
                    let on_pick = props.on_pick.clone();
                    let onclick = Callback::from(move |_: MouseEvent| on_pick.emit(strategy));
                    let class = classes!("compare-row", (strategy == props.current).then_some("current"));
                    match &row.outcome {
                        Ok(numbers) => {
                            let ratio = if numbers.ideal_fraction > 0.0 {
                                format!("{:.2}×", numbers.moved_fraction / numbers.ideal_fraction)
                            } else {
                                "–".to_string()
                            };
                            html! {
                                <tr {class} {onclick} data-strategy={strategy.name()} data-moved={numbers.moved.to_string()}>
                                    <td class="name">{ strategy_title(strategy) }</td>
                                    <td class="num">{ thousands(numbers.moved) }</td>
                                    <td class="meter-cell">
                                        <div class="mini-meter">
                                            <div class="mini-fill" style={format!("width: {:.1}%", numbers.moved_fraction / worst * 100.0)} />
                                            <div class="mini-ideal" style={format!("left: {:.1}%", numbers.ideal_fraction / worst * 100.0)} />
                                        </div>
                                        <span class="num">{ percent(numbers.moved_fraction) }</span>
                                    </td>
                                    <td class="num">{ ratio }</td>
                                    <td class="num">{ format!("{:.3}", numbers.max_over_mean_after) }</td>
                                    <td class="num">{ decimal(numbers.std_dev_after, 1) }</td>
                                </tr>
                            }
                        }
                        Err(message) => html! {
                            <tr {class} {onclick} data-strategy={strategy.name()}>
                                <td class="name">{ strategy_title(strategy) }</td>
                                <td colspan="5" class="refused">{ message }</td>
                            </tr>
                        },
                    }
                }) }
            }
        }
    };
    html! {
        <div class="card comparison">
            <div class="card-head">
                <h3>{ "All strategies, same change" }</h3>
                <span class="muted small">{ format!("{} → {} shards · {} keys · click a row to show it", props.from, props.to, thousands(u64::from(props.key_count))) }</span>
            </div>
            <table id="comparison">
                <thead>
                    <tr>
                        <th>{ "strategy" }</th>
                        <th class="num">{ "moved" }</th>
                        <th>{ "moved % · ideal" }</th>
                        <th class="num">{ "vs ideal" }</th>
                        <th class="num">{ "max/mean" }</th>
                        <th class="num">{ "std dev" }</th>
                    </tr>
                </thead>
                <tbody>{ body }</tbody>
            </table>
        </div>
    }
}
