//! Where things go on the stage, in canvas pixels: the hash ring, the shard
//! buckets, each key's spot before and after, and the animation's timing and
//! easing. No UI code: the painter and the background drawing both read it.

use std::f64::consts::{PI, TAU};

use crate::scenario::{Scenario, View};

/// How long a moving key travels, in ms.
pub const TRAVEL_MS: f64 = 1_000.0;
/// Spread of the moving keys' start times, in ms.
pub const STAGGER_MS: f64 = 700.0;
/// How long the keys that stay take to dim, in ms.
pub const DIM_MS: f64 = 400.0;
/// The whole animation, in ms.
pub const ANIMATION_MS: f64 = TRAVEL_MS + STAGGER_MS;
/// Brightness of keys that stay, once dimmed (moved keys stay at 1).
pub const DIMMED_ALPHA: f32 = 0.38;

/// A point in canvas pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// From the left.
    pub x: f64,
    /// From the top.
    pub y: f64,
}

/// A rectangle in canvas pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    /// Left.
    pub x: f64,
    /// Top.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

/// The hash ring's placement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RingGeometry {
    /// Centre.
    pub center: Point,
    /// Outer radius of the ownership band.
    pub band_outer: f64,
    /// Inner radius of the ownership band.
    pub band_inner: f64,
    /// Outer radius of the keys' annulus.
    pub keys_outer: f64,
    /// Inner radius of the keys' annulus.
    pub keys_inner: f64,
    /// Radius of one key's dot.
    pub dot_radius: f64,
}

/// The shard buckets' placement.
#[derive(Clone, Debug, PartialEq)]
pub struct BucketGeometry {
    /// One rectangle per column (the whole bucket, header to footer).
    pub columns: Vec<Rect>,
    /// Top of the stacking area.
    pub stack_top: f64,
    /// Bottom of the stacking area (slot 0 sits on it).
    pub stack_bottom: f64,
    /// Distance between neighbouring keys in a stack.
    pub pitch: f64,
    /// Keys per row of a stack.
    pub per_row: u32,
    /// Left padding inside a column before the first key.
    pub inset: f64,
    /// Radius of one key's dot.
    pub dot_radius: f64,
}

/// Everything's placement for one canvas size and scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct StageGeometry {
    /// Canvas width in pixels.
    pub width: f64,
    /// Canvas height in pixels.
    pub height: f64,
    /// Device pixels per CSS pixel (sizes below are already scaled).
    pub scale: f64,
    /// The ring, in the ring view.
    pub ring: Option<RingGeometry>,
    /// The buckets.
    pub buckets: BucketGeometry,
}

/// Height reserved above the buckets for shard names, in CSS pixels.
pub const HEADER: f64 = 34.0;
/// Height reserved below the buckets for counts, in CSS pixels.
pub const FOOTER: f64 = 40.0;

impl StageGeometry {
    /// Lays out a `width × height` canvas (device pixels, `scale` per CSS pixel).
    pub fn new(width: f64, height: f64, scale: f64, scenario: &Scenario) -> StageGeometry {
        let pad = 24.0 * scale;
        let (ring, bucket_area) = match scenario.view {
            View::Ring => {
                let (ring, area) = ring_layout(width, height, pad, scenario.drawn_count(), scale);
                (Some(ring), area)
            }
            View::Buckets => (
                None,
                Rect {
                    x: pad,
                    y: pad * 0.5,
                    w: width - 2.0 * pad,
                    h: height - pad,
                },
            ),
        };
        let buckets = BucketGeometry::new(bucket_area, scale, scenario);
        StageGeometry {
            width,
            height,
            scale,
            ring,
            buckets,
        }
    }
}

/// The ring and the area left for the buckets: side by side on a wide
/// stage, the ring above the buckets on a tall one (a phone).
fn ring_layout(
    width: f64,
    height: f64,
    pad: f64,
    drawn: usize,
    scale: f64,
) -> (RingGeometry, Rect) {
    let stacked = width < height * 1.1;
    let size = if stacked {
        (width - 2.0 * pad).min(height * 0.56)
    } else {
        (height - 2.0 * pad).min(width * 0.48)
    };
    let outer = size / 2.0;
    let center = if stacked {
        Point {
            x: width / 2.0,
            y: pad * 0.5 + outer,
        }
    } else {
        Point {
            x: pad + outer,
            y: height / 2.0,
        }
    };
    let keys_outer = outer * 0.86;
    let keys_inner = outer * 0.50;
    let annulus = PI * (keys_outer * keys_outer - keys_inner * keys_inner);
    let spacing = (annulus / drawn.max(1) as f64).sqrt();
    let ring = RingGeometry {
        center,
        band_outer: outer,
        band_inner: outer * 0.93,
        keys_outer,
        keys_inner,
        dot_radius: (spacing * 0.34).clamp(0.75 * scale, 4.0 * scale),
    };
    let area = if stacked {
        let top = center.y + outer + pad * 0.6;
        Rect {
            x: pad,
            y: top,
            w: width - 2.0 * pad,
            h: (height - top - pad * 0.25).max(10.0),
        }
    } else {
        let left = center.x + outer + pad * 1.6;
        Rect {
            x: left,
            y: pad * 0.5,
            w: (width - left - pad).max(10.0),
            h: height - pad,
        }
    };
    (ring, area)
}

impl BucketGeometry {
    fn new(area: Rect, scale: f64, scenario: &Scenario) -> BucketGeometry {
        let count = scenario.columns.len().max(1) as f64;
        let gap = (area.w * 0.03 / count).clamp(2.0 * scale, 14.0 * scale);
        let width = ((area.w - gap * (count - 1.0)) / count).max(2.0);
        let columns = (0..scenario.columns.len())
            .map(|index| Rect {
                x: area.x + index as f64 * (width + gap),
                y: area.y,
                w: width,
                h: area.h,
            })
            .collect();
        let stack_top = area.y + HEADER * scale;
        let stack_bottom = area.y + area.h - FOOTER * scale;
        let inset = (width * 0.08).min(8.0 * scale);
        let inner_w = (width - 2.0 * inset).max(1.0);
        let inner_h = (stack_bottom - stack_top).max(1.0);
        let (pitch, per_row) = stack_pitch(inner_w, inner_h, scenario.max_slots, 14.0 * scale);
        BucketGeometry {
            columns,
            stack_top,
            stack_bottom,
            pitch,
            per_row,
            inset,
            dot_radius: (pitch * 0.36).clamp(0.6 * scale, 5.0 * scale),
        }
    }

    /// Centre of slot `slot` in column `column`.
    pub fn slot_point(&self, column: usize, slot: u32) -> Point {
        let rect = self.columns[column];
        let row = slot / self.per_row;
        let col = slot % self.per_row;
        Point {
            x: rect.x + self.inset + (f64::from(col) + 0.5) * self.pitch,
            y: self.stack_bottom - (f64::from(row) + 0.5) * self.pitch,
        }
    }
}

/// The largest pitch (at most `max_pitch`) at which `slots` keys fit a
/// `width × height` area in rows; and the keys per row at that pitch.
pub fn stack_pitch(width: f64, height: f64, slots: u32, max_pitch: f64) -> (f64, u32) {
    let slots = f64::from(slots.max(1));
    let mut pitch = (width * height / slots).sqrt().min(max_pitch).min(width);
    loop {
        let per_row = (width / pitch).floor().max(1.0);
        let rows = (slots / per_row).ceil();
        if rows * pitch <= height || pitch < 0.05 {
            return (pitch, per_row as u32);
        }
        pitch *= 0.97;
    }
}

/// Every how many columns a label is drawn so that labels `label_width` wide
/// (the widest), centred on columns `column_pitch` apart, keep `gap` between
/// them: 1 while they fit, else the least stride that makes them fit (at 64
/// shards the names would otherwise overlap into one strip).
pub fn label_stride(column_pitch: f64, label_width: f64, gap: f64) -> usize {
    if column_pitch <= 0.0 {
        return 1;
    }
    ((label_width + gap) / column_pitch).ceil().max(1.0) as usize
}

impl BucketGeometry {
    /// Distance between neighbouring columns' left edges.
    pub fn column_pitch(&self) -> f64 {
        match self.columns.as_slice() {
            [first, second, ..] => second.x - first.x,
            [only] => only.w,
            [] => 0.0,
        }
    }
}

/// Angle of a hash on the ring: 0 at the top, clockwise, as a fraction of a turn.
pub fn hash_turn(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// Canvas angle (radians from the positive x axis, y down) for a fraction of a
/// turn clockwise from the top.
pub fn turn_to_radians(turn: f64) -> f64 {
    turn * TAU - PI / 2.0
}

/// Where a key sits in the ring's annulus: its angle from the high bits of
/// its hash, its depth from the low bits.
pub fn ring_point(ring: &RingGeometry, hash: u64, lift: f64) -> Point {
    let angle = turn_to_radians(hash_turn(hash));
    let depth = f64::from(hash as u32) / f64::from(u32::MAX);
    let radius = ring.keys_inner + (ring.keys_outer - ring.keys_inner) * depth + lift;
    Point {
        x: ring.center.x + radius * crate::math::cos(angle),
        y: ring.center.y + radius * crate::math::sin(angle),
    }
}

/// Smooth start and stop.
pub fn ease_in_out_cubic(t: f64) -> f64 {
    let t = t.clamp(0.0, 1.0);
    if t < 0.5 {
        4.0 * t * t * t
    } else {
        1.0 - (-2.0 * t + 2.0).powi(3) / 2.0
    }
}

/// Progress (0..=1, eased) of a moving key at `elapsed_ms`, given its rank
/// among the moving keys as a fraction (`0` starts first).
pub fn travel_progress(elapsed_ms: f64, rank: f64) -> f64 {
    let start = rank.clamp(0.0, 1.0) * STAGGER_MS;
    ease_in_out_cubic((elapsed_ms - start) / TRAVEL_MS)
}

/// A point along a quadratic arc from `from` to `to` bulging upwards, at `t`;
/// the arc's control point stays below `ceiling` (the top of the stacks).
pub fn arc_point(from: Point, to: Point, t: f64, scale: f64, ceiling: f64) -> Point {
    let distance = ((to.x - from.x).powi(2) + (to.y - from.y).powi(2)).sqrt();
    let control = Point {
        x: (from.x + to.x) / 2.0,
        y: (from.y.min(to.y) - distance * 0.35 - 16.0 * scale).max(ceiling),
    };
    let u = 1.0 - t;
    Point {
        x: u * u * from.x + 2.0 * u * t * control.x + t * t * to.x,
        y: u * u * from.y + 2.0 * u * t * control.y + t * t * to.y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Explorer, ExplorerAction};

    #[test]
    fn stacks_fit_their_area() {
        for (width, height, slots) in [
            (100.0, 400.0, 1),
            (100.0, 400.0, 500),
            (100.0, 400.0, 100_000),
            (30.0, 200.0, 20_000),
            (3.0, 10.0, 7),
        ] {
            let (pitch, per_row) = stack_pitch(width, height, slots, 14.0);
            let rows = (f64::from(slots) / f64::from(per_row)).ceil();
            assert!(pitch <= 14.0 && pitch > 0.0, "{pitch}");
            assert!(f64::from(per_row) * pitch <= width + 1e-9, "row too wide");
            assert!(rows * pitch <= height + 1e-9, "{slots} slots overflow");
        }
    }

    #[test]
    fn ring_points_stay_in_the_annulus() {
        let scenario = crate::scenario::Scenario::compute(
            &Explorer::default().apply(ExplorerAction::SetKeyCount(500)),
        )
        .unwrap();
        let stage = StageGeometry::new(1200.0, 520.0, 1.0, &scenario);
        let ring = stage.ring.unwrap();
        for hash in scenario.hashes.iter() {
            let point = ring_point(&ring, *hash, 0.0);
            let radius =
                ((point.x - ring.center.x).powi(2) + (point.y - ring.center.y).powi(2)).sqrt();
            assert!(radius >= ring.keys_inner - 1e-6 && radius <= ring.keys_outer + 1e-6);
        }
        // Buckets sit to the right of the ring and inside the canvas.
        let first = stage.buckets.columns[0];
        let last = *stage.buckets.columns.last().unwrap();
        assert!(first.x > ring.center.x + ring.band_outer);
        assert!(last.x + last.w <= 1200.0);
        // On a phone's tall stage the ring sits above the buckets.
        let tall = StageGeometry::new(388.0, 620.0, 1.0, &scenario);
        let ring = tall.ring.unwrap();
        let first = tall.buckets.columns[0];
        let last = *tall.buckets.columns.last().unwrap();
        assert!(ring.center.y - ring.band_outer >= 0.0);
        assert!(ring.center.x - ring.band_outer >= 0.0 && ring.center.x + ring.band_outer <= 388.0);
        assert!(
            first.y > ring.center.y + ring.band_outer,
            "buckets below the ring"
        );
        assert!(first.x >= 0.0 && last.x + last.w <= 388.0);
        assert!(first.y + first.h <= 620.0);
        assert!(
            tall.buckets.stack_bottom > tall.buckets.stack_top + 60.0,
            "room to stack"
        );
    }

    #[test]
    fn hash_turns_start_at_the_top_and_go_round() {
        assert_eq!(hash_turn(0), 0.0);
        assert!((hash_turn(u64::MAX / 2) - 0.5).abs() < 1e-12);
        assert!(hash_turn(u64::MAX) < 1.0);
        assert!(
            (turn_to_radians(0.25)).abs() < 1e-12,
            "a quarter turn points right"
        );
    }

    #[test]
    fn travel_starts_by_rank_and_ends_at_one() {
        assert_eq!(travel_progress(0.0, 0.0), 0.0);
        assert_eq!(travel_progress(TRAVEL_MS, 0.0), 1.0);
        assert_eq!(travel_progress(STAGGER_MS, 1.0), 0.0);
        assert_eq!(travel_progress(ANIMATION_MS, 1.0), 1.0);
        let mid = travel_progress(TRAVEL_MS / 2.0, 0.0);
        assert!((mid - 0.5).abs() < 1e-12);
        let from = Point { x: 0.0, y: 100.0 };
        let to = Point { x: 200.0, y: 100.0 };
        assert_eq!(arc_point(from, to, 0.0, 1.0, 0.0), from);
        assert_eq!(arc_point(from, to, 1.0, 1.0, 0.0), to);
        assert!(
            arc_point(from, to, 0.5, 1.0, 0.0).y < 100.0,
            "arcs bulge upwards"
        );
        assert!(
            arc_point(from, to, 0.5, 1.0, 90.0).y >= 90.0,
            "not past the ceiling"
        );
    }

    #[test]
    fn column_labels_never_overlap() {
        fn check(pitch: f64, label: f64, stride: usize) {
            let got = label_stride(pitch, label, 4.0);
            assert_eq!(got, stride, "pitch {pitch}, label {label}");
            // Labels `stride` columns apart keep the gap.
            assert!(got as f64 * pitch >= label + 4.0 || pitch <= 0.0);
        }
        check(120.0, 40.0, 1);
        check(44.0, 40.0, 1);
        check(43.0, 40.0, 2);
        check(11.0, 17.0, 2);
        check(6.0, 17.0, 4);
        check(0.0, 17.0, 1);
    }

    #[test]
    fn sixty_four_columns_get_a_stride() {
        let explorer = Explorer::default()
            .apply(ExplorerAction::SetStrategy(
                ecoshard_core::StrategyKind::Jump,
            ))
            .apply(ExplorerAction::SetShardCount(64));
        let scenario = crate::scenario::Scenario::compute(&explorer).unwrap();
        let stage = StageGeometry::new(760.0, 460.0, 1.0, &scenario);
        let pitch = stage.buckets.column_pitch();
        assert_eq!(stage.buckets.columns.len(), 64);
        assert!(pitch > 10.0 && pitch < 12.0, "{pitch}");
        // "s63" at 10 px is about 17 px wide: every other column is named.
        assert_eq!(label_stride(pitch, 17.0, 4.0), 2);
    }
}
