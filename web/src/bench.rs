//! Entry points for the browser benchmarks (`web/benches/browser.rs` calls
//! them through `window.ecoshard`, timing them with `performance.now()`), and
//! the page's own measurements: when it became interactive and how long each
//! animation frame's painting took.

use std::cell::RefCell;

use ecoshard_core::{DEFAULT_KEY_PREFIX, Layout, StrategyKind, numbered_key_hashes, plan_hashes};
use wasm_bindgen::prelude::wasm_bindgen;

/// Plans `from` → `to` shards over `keys` numbered keys under `strategy`
/// (default parameters, seed 0), exactly as `ecoshard plan` does, and
/// returns how many keys move (`-1` for an unknown strategy or bad counts).
#[wasm_bindgen]
pub fn plan_moved(strategy: &str, from: u32, to: u32, keys: u32) -> f64 {
    let Ok(strategy) = strategy.parse::<StrategyKind>() else {
        return -1.0;
    };
    let build = |count| Layout::with_count(strategy, u64::from(count)).and_then(|l| l.build());
    let (Ok(old), Ok(new)) = (build(from), build(to)) else {
        return -1.0;
    };
    let hashes = numbered_key_hashes(DEFAULT_KEY_PREFIX, keys as usize, 0);
    plan_hashes(&old, &new, &hashes, &hashes).moved as f64
}

/// Per-frame measurements of the current animation.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct FrameLog {
    /// Keys drawn per frame.
    pub keys: usize,
    /// Keys moving in the animation.
    pub moving: usize,
    /// Time spent painting each frame (keys + upload), ms.
    pub paint_ms: Vec<f64>,
    /// Time between consecutive animation frames, ms.
    pub interval_ms: Vec<f64>,
    #[serde(skip)]
    last_timestamp: Option<f64>,
}

impl FrameLog {
    /// Records one frame.
    pub fn record(&mut self, timestamp: f64, paint_ms: f64) {
        if let Some(last) = self.last_timestamp {
            self.interval_ms.push(timestamp - last);
        }
        self.last_timestamp = Some(timestamp);
        self.paint_ms.push(paint_ms);
    }
}

thread_local! {
    static FRAMES: RefCell<FrameLog> = RefCell::new(FrameLog::default());
}

/// Starts measuring a new animation of `keys` keys, `moving` of them moving.
pub fn start_frame_log(keys: usize, moving: usize) {
    FRAMES.with(|frames| {
        *frames.borrow_mut() = FrameLog {
            keys,
            moving,
            ..FrameLog::default()
        }
    });
}

/// Records one animation frame.
pub fn record_frame(timestamp: f64, paint_ms: f64) {
    FRAMES.with(|frames| frames.borrow_mut().record(timestamp, paint_ms));
}

/// The current animation's frame log as JSON.
#[wasm_bindgen]
pub fn frame_stats() -> String {
    FRAMES.with(|frames| serde_json::to_string(&*frames.borrow()).unwrap_or_default())
}

/// Notes on `<html data-interactive-ms>` when the page became usable
/// (ms since navigation started).
pub fn mark_interactive() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let now = window
        .performance()
        .map_or(0.0, |performance| performance.now());
    if let Some(root) = window
        .document()
        .and_then(|document| document.document_element())
    {
        let _ = root.set_attribute("data-interactive-ms", &format!("{now:.1}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_moved_matches_the_core() {
        let old = Layout::with_count(StrategyKind::Modulo, 3)
            .unwrap()
            .build()
            .unwrap();
        let new = Layout::with_count(StrategyKind::Modulo, 4)
            .unwrap()
            .build()
            .unwrap();
        let expected = ecoshard_core::plan_numbered(&old, &new, DEFAULT_KEY_PREFIX, 1_000).moved;
        assert_eq!(plan_moved("modulo", 3, 4, 1_000), expected as f64);
        assert_eq!(plan_moved("sharding", 3, 4, 10), -1.0);
        assert_eq!(plan_moved("ring", 0, 4, 10), -1.0);
    }

    #[test]
    fn frame_log_measures_intervals_between_frames() {
        let mut log = FrameLog::default();
        log.record(100.0, 2.0);
        log.record(116.5, 3.0);
        log.record(133.0, 2.5);
        assert_eq!(log.paint_ms, [2.0, 3.0, 2.5]);
        assert_eq!(log.interval_ms, [16.5, 16.5]);
        let json = serde_json::to_string(&log).unwrap();
        assert!(json.contains("\"interval_ms\":[16.5,16.5]"), "{json}");
    }
}
