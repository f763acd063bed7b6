//! One standby's replay lag over the last three minutes on a small canvas,
//! redrawn on every sample; stretches when the standby was down or not
//! streaming are shaded, and its lag now is worded as its card words it.

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
                    { latest.map_or_else(|| "—".to_string(), LagPoint::word) }
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
    let magnitude = crate::math::pow(10.0, crate::math::log10(value).floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|step| step * magnitude)
        .find(|top| *top >= value)
        .unwrap_or(10.0 * magnitude)
}

/// Where the chart draws: the plot's edges in CSS pixels, the time its left
/// edge stands for and the lag at its top.
struct Plot {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    start_ms: u64,
    ceiling_ms: f64,
}

impl Plot {
    fn x_of(&self, at_ms: u64) -> f64 {
        self.left
            + at_ms.saturating_sub(self.start_ms) as f64 / LAG_WINDOW_MS as f64
                * (self.right - self.left)
    }

    fn y_of(&self, lag_ms: f64) -> f64 {
        self.bottom - (lag_ms / self.ceiling_ms).clamp(0.0, 1.0) * (self.bottom - self.top)
    }
}

/// Sizes the canvas to its box at the screen's pixel ratio and draws the
/// chart: grid and labels, down stretches, then the lag as area and line.
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
    context.set_fill_style_str("#0d1424");
    context.fill_rect(0.0, 0.0, width, HEIGHT);
    let now = points.back().map_or(0, |point| point.at_ms);
    let peak = points
        .iter()
        .filter_map(|point| point.replay_ms)
        .fold(0.0_f64, f64::max);
    let plot = Plot {
        left: 44.0,
        right: width - 8.0,
        top: 8.0,
        bottom: HEIGHT - 20.0,
        start_ms: now.saturating_sub(LAG_WINDOW_MS),
        ceiling_ms: nice_ceiling(peak.max(1.0)),
    };
    draw_grid(&context, &plot);
    draw_down_stretches(&context, &plot, points);
    if !points.is_empty() {
        draw_lag(&context, &plot, points, now);
    }
}

/// Three lag lines with their values, and the time labels under the plot.
fn draw_grid(context: &CanvasRenderingContext2d, plot: &Plot) {
    context.set_font("10px ui-monospace, monospace");
    context.set_text_baseline("middle");
    context.set_text_align("right");
    for step in 0..=2 {
        let value = plot.ceiling_ms * f64::from(step) / 2.0;
        let y = plot.y_of(value);
        context.set_stroke_style_str("rgba(148, 163, 184, 0.12)");
        context.begin_path();
        context.move_to(plot.left, y);
        context.line_to(plot.right, y);
        context.stroke();
        context.set_fill_style_str("#64748b");
        let _ = context.fill_text(&millis(Some(value)), plot.left - 6.0, y);
    }
    context.set_text_align("center");
    context.set_text_baseline("alphabetic");
    for (minutes_ago, label) in [(3, "−3 min"), (2, "−2"), (1, "−1"), (0, "now")] {
        let x = plot.left + (1.0 - f64::from(minutes_ago) / 3.0) * (plot.right - plot.left);
        let _ = context.fill_text(label, x.min(plot.right - 12.0), HEIGHT - 5.0);
    }
}

/// Shades the stretches between two samples when either saw the standby
/// down or not streaming.
fn draw_down_stretches(
    context: &CanvasRenderingContext2d,
    plot: &Plot,
    points: &VecDeque<LagPoint>,
) {
    context.set_fill_style_str("rgba(244, 63, 94, 0.18)");
    for pair in points.iter().collect::<Vec<_>>().windows(2) {
        if !(pair[0].up && pair[0].streaming && pair[1].up && pair[1].streaming) {
            let x0 = plot.x_of(pair[0].at_ms);
            let x1 = plot.x_of(pair[1].at_ms);
            context.fill_rect(x0, plot.top, (x1 - x0).max(1.0), plot.bottom - plot.top);
        }
    }
}

/// The replay lag as a filled area under a line (no lag reported: 0).
fn draw_lag(
    context: &CanvasRenderingContext2d,
    plot: &Plot,
    points: &VecDeque<LagPoint>,
    now: u64,
) {
    let at = |point: &LagPoint| {
        (
            plot.x_of(point.at_ms),
            plot.y_of(point.replay_ms.unwrap_or(0.0)),
        )
    };
    context.begin_path();
    context.move_to(plot.x_of(points[0].at_ms), plot.bottom);
    for point in points {
        let (x, y) = at(point);
        context.line_to(x, y);
    }
    context.line_to(plot.x_of(now), plot.bottom);
    context.close_path();
    context.set_fill_style_str("rgba(56, 189, 248, 0.16)");
    context.fill();
    context.begin_path();
    for (index, point) in points.iter().enumerate() {
        let (x, y) = at(point);
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
