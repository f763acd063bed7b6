//! The key layer's pixels: a background image (drawn once per scenario by the
//! canvas API) copied into a frame buffer, then every key blended on as a small
//! anti-aliased disc. Plain Rust over an RGBA buffer, so 100,000 keys cost a
//! few milliseconds a frame and the painting is tested natively.

use crate::geometry::{
    DIM_MS, DIMMED_ALPHA, Point, StageGeometry, arc_point, ring_point, travel_progress,
};
use crate::palette::Rgb;
use crate::scenario::Scenario;

/// Colour moving keys pass through on the way (a warm white), so they stand out.
pub const IN_FLIGHT: Rgb = Rgb {
    r: 255,
    g: 247,
    b: 224,
};

/// Most glow pixels blended per frame: beyond it (thousands of keys moving at
/// once) moving keys are drawn without their halo, which at that density adds
/// nothing visible but costs most of the frame.
pub const GLOW_PIXEL_BUDGET: usize = 400_000;

/// An RGBA frame buffer over an opaque background.
#[derive(Clone, Debug, Default)]
pub struct Frame {
    width: usize,
    height: usize,
    background: Vec<u8>,
    pixels: Vec<u8>,
}

impl Frame {
    /// A frame of the given size over `background` (RGBA, `width × height × 4`
    /// bytes; anything else gives a black background).
    pub fn new(width: usize, height: usize, background: Vec<u8>) -> Frame {
        let size = width * height * 4;
        let background = if background.len() == size {
            background
        } else {
            let mut black = vec![0u8; size];
            black.chunks_exact_mut(4).for_each(|pixel| pixel[3] = 255);
            black
        };
        Frame {
            width,
            height,
            pixels: background.clone(),
            background,
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The current pixels (RGBA).
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The pixel at (x, y) as `[r, g, b, a]`.
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 4] {
        let at = (y * self.width + x) * 4;
        [
            self.pixels[at],
            self.pixels[at + 1],
            self.pixels[at + 2],
            self.pixels[at + 3],
        ]
    }

    /// Starts a frame: back to the background.
    pub fn clear(&mut self) {
        self.pixels.copy_from_slice(&self.background);
    }

    /// Blends `sprite` centred at `center` in `color` at `alpha` (0..=1).
    pub fn blit(&mut self, sprite: &Sprite, center: Point, color: Rgb, alpha: f32) {
        let alpha = (alpha.clamp(0.0, 1.0) * 256.0) as u32;
        if alpha == 0 {
            return;
        }
        let left = (center.x - sprite.half).round() as isize;
        let top = (center.y - sprite.half).round() as isize;
        let (width, height) = (self.width as isize, self.height as isize);
        for row in 0..sprite.size {
            let y = top + row as isize;
            if y < 0 || y >= height {
                continue;
            }
            let line = y as usize * self.width;
            for col in 0..sprite.size {
                let x = left + col as isize;
                if x < 0 || x >= width {
                    continue;
                }
                // 0..=255 coverage to 0..=256, so full coverage replaces exactly.
                let coverage = u32::from(sprite.coverage[row * sprite.size + col]);
                let weight = ((coverage + (coverage >> 7)) * alpha) >> 8;
                if weight == 0 {
                    continue;
                }
                let at = (line + x as usize) * 4;
                let pixel = &mut self.pixels[at..at + 3];
                for (channel, source) in pixel.iter_mut().zip([color.r, color.g, color.b]) {
                    let dest = i32::from(*channel);
                    *channel = (dest + (((i32::from(source) - dest) * weight as i32) >> 8)) as u8;
                }
            }
        }
    }
}

/// A disc's coverage mask (0..=255 per pixel).
#[derive(Clone, Debug, PartialEq)]
pub struct Sprite {
    size: usize,
    half: f64,
    coverage: Vec<u8>,
}

impl Sprite {
    /// An anti-aliased disc of the given radius in pixels.
    pub fn disc(radius: f64) -> Sprite {
        let radius = radius.max(0.3);
        let size = (radius * 2.0 + 2.0).ceil() as usize;
        let half = size as f64 / 2.0;
        let mut coverage = Vec::with_capacity(size * size);
        for row in 0..size {
            for col in 0..size {
                let dx = col as f64 + 0.5 - half;
                let dy = row as f64 + 0.5 - half;
                let edge = radius + 0.5 - (dx * dx + dy * dy).sqrt();
                coverage.push((edge.clamp(0.0, 1.0) * 255.0).round() as u8);
            }
        }
        Sprite {
            size,
            half,
            coverage,
        }
    }

    /// A soft glow: full in the middle, fading to nothing at `radius`.
    pub fn glow(radius: f64) -> Sprite {
        let radius = radius.max(1.0);
        let size = (radius * 2.0 + 2.0).ceil() as usize;
        let half = size as f64 / 2.0;
        let mut coverage = Vec::with_capacity(size * size);
        for row in 0..size {
            for col in 0..size {
                let dx = col as f64 + 0.5 - half;
                let dy = row as f64 + 0.5 - half;
                let falloff = 1.0 - (dx * dx + dy * dy).sqrt() / radius;
                coverage.push((falloff.clamp(0.0, 1.0).powi(2) * 255.0).round() as u8);
            }
        }
        Sprite {
            size,
            half,
            coverage,
        }
    }
}

/// Everything per drawn key that does not change between frames of one
/// scenario on one canvas size: spots, colours, which keys move and in what
/// order.
#[derive(Clone, Debug)]
pub struct KeySpots {
    ring: Vec<Point>,
    bucket_before: Vec<Point>,
    bucket_after: Vec<Point>,
    /// Keys that change shard, in key order.
    moved: Vec<u32>,
    /// Keys that stay.
    stayed: Vec<u32>,
    colors: Vec<Rgb>,
    column_before: Vec<u16>,
    column_after: Vec<u16>,
    ring_dot: Sprite,
    bucket_dot: Sprite,
    ring_glow: Sprite,
    bucket_glow: Sprite,
    lift: f64,
    scale: f64,
    ceiling: f64,
    glows: bool,
}

impl KeySpots {
    /// Works out every key's spots for a scenario laid out by `stage`.
    pub fn new(scenario: &Scenario, stage: &StageGeometry) -> KeySpots {
        let keys = scenario.drawn_count();
        let ring = match &stage.ring {
            Some(ring) => (0..keys)
                .map(|key| ring_point(ring, scenario.drawn_hash(key), 0.0))
                .collect(),
            None => Vec::new(),
        };
        let buckets = &stage.buckets;
        let bucket_before = (0..keys)
            .map(|key| {
                buckets.slot_point(
                    scenario.column_before[key] as usize,
                    scenario.slot_before[key],
                )
            })
            .collect();
        let bucket_after = (0..keys)
            .map(|key| {
                buckets.slot_point(
                    scenario.column_after[key] as usize,
                    scenario.slot_after[key],
                )
            })
            .collect();
        let (moved, stayed): (Vec<u32>, Vec<u32>) =
            (0..keys as u32).partition(|key| scenario.is_moved(*key as usize));
        let ring_radius = stage.ring.map_or(1.0, |ring| ring.dot_radius);
        let ring_glow = Sprite::glow(ring_radius * 3.2 + 1.5 * stage.scale);
        let bucket_glow = Sprite::glow(buckets.dot_radius * 3.0 + 1.5 * stage.scale);
        let glow_area = bucket_glow.size * bucket_glow.size
            + if stage.ring.is_some() {
                ring_glow.size * ring_glow.size
            } else {
                0
            };
        let glows = moved.len() * glow_area <= GLOW_PIXEL_BUDGET;
        KeySpots {
            ring,
            bucket_before,
            bucket_after,
            moved,
            stayed,
            colors: scenario.columns.iter().map(|column| column.color).collect(),
            column_before: scenario.column_before.clone(),
            column_after: scenario.column_after.clone(),
            ring_dot: Sprite::disc(ring_radius),
            bucket_dot: Sprite::disc(buckets.dot_radius),
            ring_glow,
            bucket_glow,
            lift: stage
                .ring
                .map_or(0.0, |ring| (ring.band_inner - ring.keys_outer) * 0.9),
            scale: stage.scale,
            ceiling: buckets.stack_top,
            glows,
        }
    }

    /// Number of keys drawn.
    pub fn key_count(&self) -> usize {
        self.column_before.len()
    }

    /// Whether moving keys get a halo (see [`GLOW_PIXEL_BUDGET`]).
    pub fn glows(&self) -> bool {
        self.glows
    }

    /// Number of keys that move.
    pub fn moved_count(&self) -> usize {
        self.moved.len()
    }

    /// Paints the keys as they are `elapsed_ms` into the animation.
    pub fn paint(&self, frame: &mut Frame, stage: &StageGeometry, elapsed_ms: f64) {
        frame.clear();
        let dim = 1.0 - (1.0 - DIMMED_ALPHA) * ((elapsed_ms / DIM_MS).clamp(0.0, 1.0) as f32);
        for key in &self.stayed {
            let key = *key as usize;
            let color = self.colors[self.column_after[key] as usize];
            if !self.ring.is_empty() {
                frame.blit(&self.ring_dot, self.ring[key], color, dim);
            }
            frame.blit(&self.bucket_dot, self.bucket_before[key], color, dim);
        }
        let moved = self.moved.len().max(1) as f64;
        for (rank, key) in self.moved.iter().enumerate() {
            let key = *key as usize;
            let progress = travel_progress(elapsed_ms, rank as f64 / moved);
            let from = self.colors[self.column_before[key] as usize];
            let to = self.colors[self.column_after[key] as usize];
            let color = if progress < 0.5 {
                from.mix(IN_FLIGHT, (progress * 2.0) as f32)
            } else {
                IN_FLIGHT.mix(to, ((progress - 0.5) * 2.0) as f32)
            };
            let glow = if self.glows {
                (progress as f32).min(1.0) * 0.55
            } else {
                0.0
            };
            if let Some(ring) = &stage.ring {
                let spot = self.ring[key];
                let lift = crate::math::sin(progress * std::f64::consts::PI) * self.lift;
                let spot = if lift > 0.0 {
                    ring_point_lifted(ring.center, spot, lift)
                } else {
                    spot
                };
                frame.blit(&self.ring_glow, spot, to, glow);
                frame.blit(&self.ring_dot, spot, color, 1.0);
            }
            let spot = arc_point(
                self.bucket_before[key],
                self.bucket_after[key],
                progress,
                self.scale,
                self.ceiling,
            );
            frame.blit(&self.bucket_glow, spot, to, glow);
            frame.blit(&self.bucket_dot, spot, color, 1.0);
        }
    }
}

fn ring_point_lifted(center: Point, spot: Point, lift: f64) -> Point {
    let (dx, dy) = (spot.x - center.x, spot.y - center.y);
    let radius = (dx * dx + dy * dy).sqrt().max(1e-9);
    Point {
        x: spot.x + dx / radius * lift,
        y: spot.y + dy / radius * lift,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::ANIMATION_MS;
    use crate::state::{Explorer, ExplorerAction};
    use ecoshard_core::StrategyKind;

    #[test]
    fn discs_cover_their_middle_and_not_their_corners() {
        let sprite = Sprite::disc(3.0);
        let middle = sprite.size / 2;
        assert_eq!(sprite.coverage[middle * sprite.size + middle], 255);
        assert_eq!(sprite.coverage[0], 0);
        let glow = Sprite::glow(4.0);
        assert!(glow.coverage[glow.size / 2 * glow.size + glow.size / 2] > 150);
    }

    #[test]
    fn blit_blends_over_the_background_and_clips_at_edges() {
        let mut frame = Frame::new(8, 8, Vec::new());
        let red = Rgb { r: 255, g: 0, b: 0 };
        frame.blit(&Sprite::disc(2.0), Point { x: 4.0, y: 4.0 }, red, 1.0);
        assert_eq!(frame.pixel(4, 4), [255, 0, 0, 255]);
        assert_eq!(frame.pixel(0, 0), [0, 0, 0, 255]);
        frame.blit(&Sprite::disc(2.0), Point { x: 4.0, y: 4.0 }, red, 0.0);
        frame.blit(&Sprite::disc(3.0), Point { x: -1.0, y: 9.0 }, red, 0.5);
        assert!(frame.pixel(0, 7)[0] > 100 && frame.pixel(0, 7)[0] < 140);
        frame.clear();
        assert_eq!(frame.pixel(4, 4), [0, 0, 0, 255]);
    }

    #[test]
    fn thousands_of_moving_keys_go_without_halo() {
        let explorer = Explorer::default()
            .apply(ExplorerAction::SetStrategy(StrategyKind::Modulo))
            .apply(ExplorerAction::SetKeyCount(13_334));
        let scenario = Scenario::compute(&explorer).unwrap();
        let stage = StageGeometry::new(1200.0, 460.0, 1.0, &scenario);
        let spots = KeySpots::new(&scenario, &stage);
        assert!(spots.moved_count() > 10_000);
        assert!(!spots.glows());
    }

    /// The regression this guards: at the end of the animation every moved
    /// key must sit in its new bucket in its new shard's colour.
    #[test]
    fn moved_keys_end_in_their_new_bucket_in_its_colour() {
        let explorer = Explorer::default()
            .apply(ExplorerAction::SetStrategy(StrategyKind::Modulo))
            .apply(ExplorerAction::SetKeyCount(40));
        let scenario = Scenario::compute(&explorer).unwrap();
        let stage = StageGeometry::new(900.0, 400.0, 1.0, &scenario);
        let spots = KeySpots::new(&scenario, &stage);
        assert_eq!(spots.moved_count() as u64, scenario.plan.moved);
        assert!(spots.glows(), "40 keys get their halo");
        let mut frame = Frame::new(900, 400, Vec::new());
        spots.paint(&mut frame, &stage, ANIMATION_MS + 1.0);
        for key in 0..40 {
            if !scenario.is_moved(key) {
                continue;
            }
            let spot = spots.bucket_after[key];
            let color = scenario.columns[scenario.column_after[key] as usize].color;
            let [r, g, b, _] = frame.pixel(spot.x.round() as usize, spot.y.round() as usize);
            assert_eq!((r, g, b), (color.r, color.g, color.b), "key {key}");
        }
        // At the start, they are still in their old bucket.
        spots.paint(&mut frame, &stage, 0.0);
        let key = (0..40).find(|key| scenario.is_moved(*key)).unwrap();
        let spot = spots.bucket_before[key];
        let color = scenario.columns[scenario.column_before[key] as usize].color;
        let [r, g, b, _] = frame.pixel(spot.x.round() as usize, spot.y.round() as usize);
        assert_eq!((r, g, b), (color.r, color.g, color.b));
    }
}
