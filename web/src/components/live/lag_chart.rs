//! One standby's replay lag over the last three minutes on a small canvas,
//! redrawn on every sample; stretches when the standby was down are shaded.

use std::collections::VecDeque;

use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};
use yew::prelude::*;

use crate::format::millis;
use crate::live::{LAG_WINDOW_MS, LagPoint};

#[derive(PartialEq, Properties)]
pub(super) struct LagChartProps {
    pub(super) name: AttrValue,
    pub(super) points: VecDeque<LagPoint>,
}

const HEIGHT: f64 = 150.0;

#[function_component]
pub(super) fn LagChart(props: &LagChartProps) -> Html {
    let canvas = use_node_ref();
    {
        let canvas = canvas.clone();
        use_effect_with(props.points.clone(), move |points| {
            if let Some(element) = canvas.cast::<HtmlCanvasElement>() {
                draw(&element, points);
            }
        });
    }
    let latest = props.points.back();
    html! {
        <div class="lag-chart" data-node={props.name.clone()} data-samples={props.points.len().to_string()}>
            <div class="chart-head">
                <span class="node-name">{ &props.name }</span>
                <span class="chart-now">
                    { match latest {
                        Some(point) if !point.up => "down".to_string(),
                        Some(point) if point.replay_ms.is_none() => "idle".to_string(),
                        Some(point) => millis(point.replay_ms),
                        None => "—".to_string(),
                    } }
                </span>
            </div>
            <canvas ref={canvas} />
        </div>
    }
}

/// A "nice" axis top at or above `value` (1, 2, 5 × 10^n).
pub(super) fn nice_ceiling(value: f64) -> f64 {
    if !(value.is_finite() && value > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|step| step * magnitude)
        .find(|top| *top >= value)
        .unwrap_or(10.0 * magnitude)
}

fn draw(canvas: &HtmlCanvasElement, points: &VecDeque<LagPoint>) {
    let scale = web_sys::window()
        .map_or(1.0, |window| window.device_pixel_ratio())
        .clamp(1.0, 3.0);
    let width = f64::from(canvas.client_width().max(200));
    canvas.set_width((width * scale) as u32);
    canvas.set_height((HEIGHT * scale) as u32);
    let Some(context) = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|context| context.dyn_into::<CanvasRenderingContext2d>().ok())
    else {
        return;
    };
    let _ = context.scale(scale, scale);
    let (left, right, top, bottom) = (44.0, width - 8.0, 8.0, HEIGHT - 20.0);
    context.set_fill_style_str("#0d1424");
    context.fill_rect(0.0, 0.0, width, HEIGHT);
    let now = points.back().map_or(0, |point| point.at_ms);
    let start = now.saturating_sub(LAG_WINDOW_MS);
    let peak = points
        .iter()
        .filter_map(|point| point.replay_ms)
        .fold(0.0_f64, f64::max);
    let ceiling = nice_ceiling(peak.max(1.0));
    let x_of =
        |at: u64| left + (at.saturating_sub(start)) as f64 / LAG_WINDOW_MS as f64 * (right - left);
    let y_of = |ms: f64| bottom - (ms / ceiling).clamp(0.0, 1.0) * (bottom - top);

    // Grid and labels.
    context.set_font("10px ui-monospace, monospace");
    context.set_text_baseline("middle");
    context.set_text_align("right");
    for step in 0..=2 {
        let value = ceiling * f64::from(step) / 2.0;
        let y = y_of(value);
        context.set_stroke_style_str("rgba(148, 163, 184, 0.12)");
        context.begin_path();
        context.move_to(left, y);
        context.line_to(right, y);
        context.stroke();
        context.set_fill_style_str("#64748b");
        let _ = context.fill_text(&millis(Some(value)), left - 6.0, y);
    }
    context.set_text_align("center");
    context.set_text_baseline("alphabetic");
    for (minutes_ago, label) in [(3, "−3 min"), (2, "−2"), (1, "−1"), (0, "now")] {
        let x = left + (1.0 - f64::from(minutes_ago) / 3.0) * (right - left);
        let _ = context.fill_text(label, x.min(right - 12.0), HEIGHT - 5.0);
    }
    // Down stretches.
    context.set_fill_style_str("rgba(244, 63, 94, 0.18)");
    for pair in points.iter().collect::<Vec<_>>().windows(2) {
        if !pair[0].up || !pair[1].up {
            let x0 = x_of(pair[0].at_ms);
            let x1 = x_of(pair[1].at_ms);
            context.fill_rect(x0, top, (x1 - x0).max(1.0), bottom - top);
        }
    }
    if points.is_empty() {
        return;
    }
    // Area and line.
    context.begin_path();
    context.move_to(x_of(points[0].at_ms), bottom);
    for point in points {
        context.line_to(x_of(point.at_ms), y_of(point.replay_ms.unwrap_or(0.0)));
    }
    context.line_to(x_of(now), bottom);
    context.close_path();
    context.set_fill_style_str("rgba(56, 189, 248, 0.16)");
    context.fill();
    context.begin_path();
    for (index, point) in points.iter().enumerate() {
        let (x, y) = (x_of(point.at_ms), y_of(point.replay_ms.unwrap_or(0.0)));
        if index == 0 {
            context.move_to(x, y);
        } else {
            context.line_to(x, y);
        }
    }
    context.set_stroke_style_str("#38bdf8");
    context.set_line_width(1.5);
    context.stroke();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round() {
        for (value, expected) in [
            (0.0, 1.0),
            (0.7, 1.0),
            (1.0, 1.0),
            (1.2, 2.0),
            (3.0, 5.0),
            (7.5, 10.0),
            (42.0, 50.0),
            (120.0, 200.0),
        ] {
            assert_eq!(nice_ceiling(value), expected, "{value}");
        }
    }
}
