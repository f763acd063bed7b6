//! The stage: one `<canvas>` showing the change. The background (ring bands,
//! buckets, labels) is drawn with the canvas API once per scenario and size;
//! then every animation frame the keys are painted into a pixel buffer in
//! Rust (`frame.rs`) and uploaded with `putImageData`.

use std::cell::RefCell;
use std::f64::consts::TAU;
use std::rc::Rc;

use gloo::events::EventListener;
use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData};
use yew::prelude::*;

use crate::components::Shared;
use crate::format::thousands;
use crate::frame::{Frame, KeySpots};
use crate::geometry::{
    ANIMATION_MS, FOOTER, HEADER, Rect, RingGeometry, StageGeometry, label_stride, turn_to_radians,
};
use crate::hooks::use_animation;
use crate::palette::Rgb;
use crate::scenario::{BAND_SEGMENTS, Column, Scenario, View};

const BACKGROUND: &str = "#0d1424";

/// Props of [`Stage`].
#[derive(PartialEq, Properties)]
pub struct StageProps {
    /// The change to show.
    pub scenario: Shared<Scenario>,
    /// The explorer's revision: a new one replays the animation.
    pub revision: u64,
}

/// What the frames paint with, rebuilt per scenario and canvas size.
struct Painter {
    context: CanvasRenderingContext2d,
    image: ImageData,
    image_data: js_sys::Uint8ClampedArray,
    geometry: StageGeometry,
    spots: KeySpots,
    frame: Frame,
}

impl Painter {
    fn paint(&mut self, elapsed_ms: f64) {
        self.spots
            .paint(&mut self.frame, &self.geometry, elapsed_ms);
        // One copy from wasm memory into the image's own pixels; no new
        // 2-8 MB array per frame.
        self.image_data.copy_from(self.frame.pixels());
        let _ = self.context.put_image_data(&self.image, 0.0, 0.0);
    }
}

/// When the current animation started, kept across resizes.
#[derive(Default)]
struct Clock {
    revision: Option<u64>,
    started_at: Option<f64>,
}

/// The animated canvas.
#[function_component]
pub fn Stage(props: &StageProps) -> Html {
    let canvas = use_node_ref();
    let painter = use_mut_ref(|| None::<Painter>);
    let clock = use_mut_ref(Clock::default);
    // The stage box's size in CSS pixels (the stylesheet sizes it to the
    // window), measured again on every resize.
    let size = use_state(|| (0u32, 0u32));

    {
        let canvas = canvas.clone();
        let size = size.clone();
        use_effect_with((), move |_| {
            let measure = move || size.set(box_size(&canvas));
            measure();
            let listener = web_sys::window()
                .map(|window| EventListener::new(&window, "resize", move |_| measure()));
            move || drop(listener)
        });
    }
    {
        let canvas = canvas.clone();
        let painter = painter.clone();
        let scenario = props.scenario.clone();
        use_effect_with((scenario, *size), move |(scenario, _)| {
            // Measured now: the box's height follows the view, which may
            // have just changed with the scenario.
            let (width, height) = box_size(&canvas);
            *painter.borrow_mut() = canvas
                .cast::<HtmlCanvasElement>()
                .filter(|_| width > 0 && height > 0)
                .and_then(|element| {
                    prepare(&element, scenario, f64::from(width), f64::from(height))
                });
        });
    }
    let generation =
        props.revision.wrapping_mul(1 << 32) ^ (u64::from(size.0) << 16) ^ u64::from(size.1);
    let frame_fn = frame_painter(painter.clone(), clock.clone(), props.revision);
    use_animation(generation, frame_fn);

    let stage_id = match props.scenario.view {
        View::Ring => "stage-ring",
        View::Buckets => "stage-buckets",
    };
    html! {
        <div class="card stage" id="stage" data-view={stage_id}>
            <div class="stage-box">
                <canvas ref={canvas} id="stage-canvas" />
            </div>
            { stage_foot(&props.scenario) }
        </div>
    }
}

/// What each animation frame runs: starts the clock (and the frame log) on
/// a new revision, paints the keys at the time elapsed since, and says
/// whether to go on (until the animation is over).
fn frame_painter(
    painter: Rc<RefCell<Option<Painter>>>,
    clock: Rc<RefCell<Clock>>,
    revision: u64,
) -> Rc<dyn Fn(f64) -> bool> {
    Rc::new(move |timestamp: f64| {
        let elapsed = {
            let mut clock = clock.borrow_mut();
            if clock.revision != Some(revision) {
                *clock = Clock {
                    revision: Some(revision),
                    started_at: Some(timestamp),
                };
                if let Some(painter) = painter.borrow().as_ref() {
                    crate::bench::start_frame_log(
                        painter.spots.key_count(),
                        painter.spots.moved_count(),
                    );
                }
            }
            timestamp - clock.started_at.unwrap_or(timestamp)
        };
        let mut painter = painter.borrow_mut();
        let Some(painter) = painter.as_mut() else {
            // Not sized yet: try again next frame.
            return true;
        };
        let started = now();
        painter.paint(elapsed);
        crate::bench::record_frame(timestamp, now() - started);
        elapsed < ANIMATION_MS
    })
}

/// Under the canvas: the sample drawn, when not every key is, and the legend.
fn stage_foot(scenario: &Scenario) -> Html {
    html! {
        <div class="stage-foot">
            if !scenario.draws_every_key() {
                <span class="stage-sample" id="drawn-sample" data-drawn={scenario.drawn_count().to_string()}>
                    { format!("drawing 1 key in {} · {} of {} · every number counts them all", scenario.draw_stride, thousands(scenario.drawn_count() as u64), thousands(scenario.key_count() as u64)) }
                </span>
            }
            <span class="stage-legend">
                <span><i class="key-dot moved" />{ "moved key" }</span>
                <span><i class="key-dot stayed" />{ "key that stays" }</span>
                if scenario.view == View::Ring {
                    <span><i class="band after" />{ "ring owner after" }</span>
                    <span><i class="band before" />{ "before" }</span>
                }
            </span>
        </div>
    }
}

/// The size of the box around the canvas, in CSS pixels (0 × 0 before it
/// is laid out).
fn box_size(canvas: &NodeRef) -> (u32, u32) {
    canvas
        .cast::<HtmlCanvasElement>()
        .and_then(|element| element.parent_element())
        .map_or((0, 0), |parent| {
            (
                parent.client_width().max(0) as u32,
                parent.client_height().max(0) as u32,
            )
        })
}

fn now() -> f64 {
    web_sys::window()
        .and_then(|window| window.performance())
        .map_or(0.0, |performance| performance.now())
}

/// Sizes the canvas to `css_width` × `css_height` CSS pixels, draws the
/// background and captures it for the frames.
fn prepare(
    canvas: &HtmlCanvasElement,
    scenario: &Scenario,
    css_width: f64,
    css_height: f64,
) -> Option<Painter> {
    let scale = web_sys::window()
        .map_or(1.0, |window| window.device_pixel_ratio())
        .clamp(1.0, 3.0);
    let width = (css_width * scale).round();
    let height = (css_height * scale).round();
    canvas.set_width(width as u32);
    canvas.set_height(height as u32);
    let style = canvas.style();
    let _ = style.set_property("width", &format!("{css_width}px"));
    let _ = style.set_property("height", &format!("{css_height}px"));
    let context = canvas
        .get_context("2d")
        .ok()
        .flatten()?
        .dyn_into::<CanvasRenderingContext2d>()
        .ok()?;
    let geometry = StageGeometry::new(width, height, scale, scenario);
    let label_stride = draw_background(&context, scenario, &geometry);
    let _ = canvas.set_attribute("data-label-stride", &label_stride.to_string());
    let background = context
        .get_image_data(0.0, 0.0, width, height)
        .ok()?
        .data()
        .0;
    let frame = Frame::new(width as usize, height as usize, background);
    let spots = KeySpots::new(scenario, &geometry);
    let image = ImageData::new_with_sw(width as u32, height as u32).ok()?;
    let image_data = js_sys::Reflect::get(&image, &"data".into())
        .ok()?
        .dyn_into::<js_sys::Uint8ClampedArray>()
        .ok()?;
    Some(Painter {
        context,
        image,
        image_data,
        geometry,
        spots,
        frame,
    })
}

fn rgba(color: Rgb, alpha: f64) -> String {
    format!("rgba({}, {}, {}, {alpha})", color.r, color.g, color.b)
}

/// Draws what does not move: the ring's bands and caption, the buckets and
/// their labels. Returns every how many columns a label is drawn.
fn draw_background(
    context: &CanvasRenderingContext2d,
    scenario: &Scenario,
    stage: &StageGeometry,
) -> usize {
    context.set_fill_style_str(BACKGROUND);
    context.fill_rect(0.0, 0.0, stage.width, stage.height);
    if let Some(ring) = &stage.ring {
        draw_ring(context, scenario, ring, stage.scale);
    }
    draw_buckets(context, scenario, stage)
}

fn draw_ring(
    context: &CanvasRenderingContext2d,
    scenario: &Scenario,
    ring: &RingGeometry,
    scale: f64,
) {
    let colors: Vec<Rgb> = scenario.columns.iter().map(|column| column.color).collect();
    // Faint guides for the keys' annulus.
    context.set_stroke_style_str("rgba(148, 163, 184, 0.10)");
    context.set_line_width(scale);
    for radius in [ring.keys_inner, ring.keys_outer] {
        context.begin_path();
        let _ = context.arc(ring.center.x, ring.center.y, radius, 0.0, TAU);
        context.stroke();
    }
    // Outer band: owner after; inner thin band: owner before.
    let gap = (ring.band_outer - ring.band_inner) * 0.25;
    let inner_outer = ring.band_inner - gap;
    let inner_inner = inner_outer - (ring.band_outer - ring.band_inner) * 0.45;
    draw_band(
        context,
        ring.center.x,
        ring.center.y,
        ring.band_inner,
        ring.band_outer,
        &scenario.band_after,
        &colors,
        1.0,
    );
    draw_band(
        context,
        ring.center.x,
        ring.center.y,
        inner_inner,
        inner_outer,
        &scenario.band_before,
        &colors,
        0.55,
    );
    // Centre caption.
    let plan = &scenario.plan;
    context.set_text_align("center");
    context.set_text_baseline("middle");
    context.set_fill_style_str("#e2e8f0");
    context.set_font(&format!(
        "600 {}px Inter, system-ui, sans-serif",
        (20.0 * scale).round()
    ));
    let _ = context.fill_text(
        &format!("{} → {}", plan.old_shards.len(), plan.new_shards.len()),
        ring.center.x,
        ring.center.y - 10.0 * scale,
    );
    context.set_fill_style_str("#94a3b8");
    context.set_font(&format!(
        "{}px Inter, system-ui, sans-serif",
        (12.0 * scale).round()
    ));
    let _ = context.fill_text(
        "shards on the hash ring",
        ring.center.x,
        ring.center.y + 12.0 * scale,
    );
    // 0 marker at the top.
    context.set_fill_style_str("#64748b");
    context.set_font(&format!(
        "{}px ui-monospace, monospace",
        (10.0 * scale).round()
    ));
    let _ = context.fill_text(
        "0",
        ring.center.x,
        ring.center.y - ring.band_outer - 8.0 * scale,
    );
}

/// The buckets, with names above and counts below every `stride`-th column,
/// the stride chosen from the widest label so that labels never overlap.
fn draw_buckets(
    context: &CanvasRenderingContext2d,
    scenario: &Scenario,
    stage: &StageGeometry,
) -> usize {
    let scale = stage.scale;
    let buckets = &stage.buckets;
    let narrow = buckets
        .columns
        .first()
        .is_some_and(|rect| rect.w < 56.0 * scale);
    let widest = |font: &str, text: &dyn Fn(&Column) -> String| {
        context.set_font(font);
        scenario
            .columns
            .iter()
            .filter_map(|column| context.measure_text(&text(column)).ok())
            .map(|metrics| metrics.width())
            .fold(0.0, f64::max)
    };
    let name_font = label_font(narrow, scale);
    let count_font = count_font(narrow, scale);
    let pitch = buckets.column_pitch();
    let gap = 6.0 * scale;
    let stride = label_stride(pitch, widest(&name_font, &|c| column_name(c, narrow)), gap).max(
        label_stride(
            pitch,
            widest(&count_font, &|c| column_count(c, narrow)),
            gap,
        ),
    );
    for (index, (column, rect)) in scenario.columns.iter().zip(&buckets.columns).enumerate() {
        draw_bucket(context, column, *rect, stage);
        if index % stride == 0 {
            context.set_text_align("center");
            context.set_text_baseline("middle");
            context.set_fill_style_str(&column.color.css());
            context.set_font(&name_font);
            let center = rect.x + rect.w / 2.0;
            let _ = context.fill_text(
                &column_name(column, narrow),
                center,
                rect.y + HEADER * scale * 0.45,
            );
            context.set_fill_style_str("#94a3b8");
            context.set_font(&count_font);
            let footer_y = rect.y + rect.h - FOOTER * scale * 0.5;
            let _ = context.fill_text(&column_count(column, narrow), center, footer_y);
        }
    }
    stride
}

fn label_font(narrow: bool, scale: f64) -> String {
    let size = if narrow { 10.0 } else { 13.0 };
    format!(
        "600 {}px Inter, system-ui, sans-serif",
        (size * scale).round()
    )
}

fn count_font(narrow: bool, scale: f64) -> String {
    let size = if narrow { 9.0 } else { 11.5 };
    format!("{}px ui-monospace, monospace", (size * scale).round())
}

/// A column's name as drawn: with its cluster ("s1 · c1 → c2"), or "· new"
/// or "· removed", when there is room.
fn column_name(column: &Column, narrow: bool) -> String {
    match (narrow, column.is_new(), column.is_removed()) {
        (true, ..) => column.name.clone(),
        _ if !column.cluster.is_empty() => format!("{} · {}", column.name, column.cluster),
        (_, true, _) => format!("{} · new", column.name),
        (_, _, true) => format!("{} · removed", column.name),
        _ => column.name.clone(),
    }
}

/// A column's count as drawn: "before → after", or only after when narrow.
fn column_count(column: &Column, narrow: bool) -> String {
    let count = |value: Option<u64>| value.map_or_else(|| "–".to_string(), thousands);
    if narrow {
        count(column.after)
    } else {
        format!("{} → {}", count(column.before), count(column.after))
    }
}

#[allow(clippy::too_many_arguments)]
fn draw_band(
    context: &CanvasRenderingContext2d,
    center_x: f64,
    center_y: f64,
    inner: f64,
    outer: f64,
    owners: &[u16],
    colors: &[Rgb],
    alpha: f64,
) {
    let mut start = 0;
    while start < owners.len() {
        let owner = owners[start];
        let mut end = start + 1;
        while end < owners.len() && owners[end] == owner {
            end += 1;
        }
        let from = turn_to_radians(start as f64 / BAND_SEGMENTS as f64);
        let to = turn_to_radians(end as f64 / BAND_SEGMENTS as f64);
        context.begin_path();
        let _ = context.arc(center_x, center_y, outer, from, to);
        let _ = context.arc_with_anticlockwise(center_x, center_y, inner, to, from, true);
        context.close_path();
        context.set_fill_style_str(&rgba(colors[owner as usize], alpha));
        context.fill();
        start = end;
    }
}

/// A bucket's frame: dashed for a shard the change adds or removes.
fn draw_bucket(
    context: &CanvasRenderingContext2d,
    column: &Column,
    rect: Rect,
    stage: &StageGeometry,
) {
    let scale = stage.scale;
    let buckets = &stage.buckets;
    let top = buckets.stack_top - 4.0 * scale;
    let bottom = buckets.stack_bottom + 4.0 * scale;
    let faded = column.is_removed();
    context.set_fill_style_str(&rgba(column.color, if faded { 0.03 } else { 0.07 }));
    rounded_rect(context, rect.x, top, rect.w, bottom - top, 6.0 * scale);
    context.fill();
    context.set_stroke_style_str(&rgba(column.color, if faded { 0.25 } else { 0.45 }));
    context.set_line_width(scale);
    if column.is_new() || faded {
        let dash = js_sys::Array::of2(&(4.0 * scale).into(), &(4.0 * scale).into());
        let _ = context.set_line_dash(&dash);
    }
    rounded_rect(context, rect.x, top, rect.w, bottom - top, 6.0 * scale);
    context.stroke();
    let _ = context.set_line_dash(&js_sys::Array::new());
}

fn rounded_rect(context: &CanvasRenderingContext2d, x: f64, y: f64, w: f64, h: f64, radius: f64) {
    let radius = radius.min(w / 2.0).min(h / 2.0);
    context.begin_path();
    context.move_to(x + radius, y);
    let _ = context.arc_to(x + w, y, x + w, y + h, radius);
    let _ = context.arc_to(x + w, y + h, x, y + h, radius);
    let _ = context.arc_to(x, y + h, x, y, radius);
    let _ = context.arc_to(x, y, x + w, y, radius);
    context.close_path();
}
