//! The page's speed in headless Chromium (`cargo xtask dist`, then
//! `cargo bench -p ecoshard-web --bench browser`; figures in BENCHMARKS.md):
//!
//! - a 1,000,000-key plan per strategy in wasm (timed in the page with
//!   `performance.now()`) against the same function natively;
//! - frame times while 10,000 keys move (the page's own per-frame log);
//! - 1,000,000 keys in the explorer: from the change to the headline on
//!   screen, to the comparison table, and every frame the browser showed
//!   meanwhile;
//! - the wasm module's size, raw and gzip -9;
//! - navigation to interactive (the page marks `data-interactive-ms` when its
//!   first render is on screen), over fresh loads.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
#[path = "../tests/support/mod.rs"]
mod support;

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(native::run());
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::time::{Duration, Instant};

    use ecoshard_core::StrategyKind;
    use serde_json::Value;

    use super::support::{Browser, StaticServer, dist_dir};

    const PLAN_KEYS: u32 = 1_000_000;
    const RUNS: usize = 5;

    fn median(values: &mut [f64]) -> f64 {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    }

    fn percentile(values: &[f64], fraction: f64) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return f64::NAN;
        }
        let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
        sorted[index]
    }

    fn gzip_size(path: &std::path::Path) -> u64 {
        let output = std::process::Command::new("gzip")
            .args(["-9", "-c"])
            .arg(path)
            .output()
            .expect("running gzip");
        output.stdout.len() as u64
    }

    pub async fn run() {
        let dist = dist_dir();
        let server = StaticServer::start(&dist);
        let browser = Browser::start(1440, 1400).await;

        println!(
            "## Web benchmarks (headless Chromium {})\n",
            chromium_version()
        );

        // Size.
        let wasm = dist.join("ecoshard-web_bg.wasm");
        let js = dist.join("ecoshard-web.js");
        let wasm_raw = std::fs::metadata(&wasm).expect("the built wasm").len();
        let js_raw = std::fs::metadata(&js).expect("the built JS").len();
        println!(
            "size: wasm {} bytes raw, {} bytes gzip -9; JS glue {} raw, {} gzip -9",
            wasm_raw,
            gzip_size(&wasm),
            js_raw,
            gzip_size(&js)
        );

        // Navigation to interactive, over fresh loads.
        let mut interactive = Vec::new();
        let mut loaded = Vec::new();
        for run in 0..RUNS {
            browser.goto(&format!("{}?load={run}", server.url())).await;
            let value = browser
                .wait_for(
                    "the page to become interactive",
                    30,
                    "return document.documentElement.dataset.interactiveMs",
                )
                .await;
            interactive.push(value.as_str().unwrap().parse::<f64>().unwrap());
            let dcl = browser
                .eval(
                    "return performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd",
                )
                .await;
            loaded.push(dcl.as_f64().unwrap_or(f64::NAN));
        }
        println!(
            "navigation → interactive: median {:.0} ms (DOMContentLoaded {:.0} ms) over {RUNS} loads: {:?}",
            median(&mut interactive.clone()),
            median(&mut loaded),
            interactive
        );

        // 1,000,000-key plans, wasm against native.
        println!(
            "\n| strategy (3 → 4 shards, {PLAN_KEYS} keys) | wasm ms | native ms | wasm / native |"
        );
        println!("|---|---:|---:|---:|");
        for strategy in StrategyKind::ALL {
            let name = strategy.name();
            let script = format!(
                "const runs = [];
                 let moved = 0;
                 ecoshard.plan_moved('{name}', 3, 4, {PLAN_KEYS});
                 for (let i = 0; i < {RUNS}; i++) {{
                     const start = performance.now();
                     moved = ecoshard.plan_moved('{name}', 3, 4, {PLAN_KEYS});
                     runs.push(performance.now() - start);
                 }}
                 return [moved, runs];"
            );
            let answer = browser.eval(&script).await;
            let wasm_moved = answer[0].as_f64().unwrap();
            let mut wasm_ms: Vec<f64> = answer[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|value| value.as_f64().unwrap())
                .collect();
            let native_moved = ecoshard_web::bench::plan_moved(name, 3, 4, PLAN_KEYS);
            assert_eq!(wasm_moved, native_moved, "{name}: wasm and native disagree");
            let mut native_ms = Vec::new();
            for _ in 0..RUNS {
                let start = Instant::now();
                std::hint::black_box(ecoshard_web::bench::plan_moved(
                    std::hint::black_box(name),
                    3,
                    4,
                    PLAN_KEYS,
                ));
                native_ms.push(start.elapsed().as_secs_f64() * 1_000.0);
            }
            let (wasm, native) = (median(&mut wasm_ms), median(&mut native_ms));
            println!(
                "| {name} | {wasm:.0} | {native:.0} | {:.2}× |",
                wasm / native
            );
        }

        // Frames while 10,000 keys move: modulo 3 → 4 over 13,334 keys moves
        // about three quarters of them (bucket view); ring 3 → 4 over 40,000
        // keys moves about a quarter (ring and buckets, each key drawn twice).
        println!(
            "\n| animation | keys | moving | paint p50 / p95 / max ms | frame interval p50 / p95 / max ms |"
        );
        println!("|---|---:|---:|---:|---:|");
        browser.goto(&server.url()).await;
        browser.wait_for_element("#moved-count", 30).await;
        for (strategy, keys) in [("modulo", 13_334), ("ring", 40_000)] {
            browser.click(&format!("#strategy-{strategy}")).await;
            browser.enter("#key-count", &keys.to_string()).await;
            tokio::time::sleep(Duration::from_millis(2_500)).await;
            browser.click("#replay").await;
            tokio::time::sleep(Duration::from_millis(2_500)).await;
            let stats: Value = serde_json::from_str(
                browser
                    .eval("return ecoshard.frame_stats()")
                    .await
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
            let list = |field: &str| -> Vec<f64> {
                stats[field]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|value| value.as_f64().unwrap())
                    .collect()
            };
            let (paint, interval) = (list("paint_ms"), list("interval_ms"));
            println!(
                "| {strategy} | {} | {} | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} |",
                stats["keys"],
                stats["moving"],
                percentile(&paint, 0.5),
                percentile(&paint, 0.95),
                percentile(&paint, 1.0),
                percentile(&interval, 0.5),
                percentile(&interval, 0.95),
                percentile(&interval, 1.0),
            );
        }
        million_keys(&browser).await;
        browser.close().await;
    }

    /// Installs the probe: from the next Enter in `#key-count` or click on a
    /// strategy, when the headline shows `expected` moved keys, when the
    /// browser painted it (two animation frames later), when the comparison
    /// table's row for `strategy` shows it too, and every animation frame
    /// for the next `seconds`.
    const PROBE: &str = "
        const [expected, strategy, seconds] = arguments;
        const probe = { t0: null, headline: null, shown: null, compared: null, frames: [] };
        window.__probe = probe;
        const start = (event) => {
            if (probe.t0 !== null) return;
            if (event.type === 'keydown' && event.key !== 'Enter') return;
            if (event.type === 'click' && !event.target.closest('[id^=\"strategy-\"]')) return;
            probe.t0 = performance.now();
            const tick = (now) => {
                probe.frames.push(now);
                if (now - probe.t0 < seconds * 1000) requestAnimationFrame(tick);
            };
            requestAnimationFrame(tick);
        };
        document.addEventListener('keydown', start, true);
        document.addEventListener('click', start, true);
        const check = () => {
            if (probe.t0 === null) return;
            const headline = document.querySelector('#moved-count');
            if (probe.headline === null && headline && headline.dataset.value === expected) {
                probe.headline = performance.now();
                requestAnimationFrame(() => requestAnimationFrame(() => {
                    probe.shown = performance.now();
                }));
            }
            const row = document.querySelector(`.compare-row[data-strategy=\"${strategy}\"]`);
            if (probe.compared === null && row && row.dataset.moved === expected
                && document.querySelectorAll('.compare-row[data-moved]').length === 6) {
                probe.compared = performance.now();
            }
        };
        new MutationObserver(check).observe(document.body,
            { subtree: true, childList: true, attributes: true, characterData: true });
        return true;";

    /// 1,000,000 keys: entering the count (ring 3 → 4), then switching to
    /// modulo at that count.
    async fn million_keys(browser: &Browser) {
        const KEYS: u32 = 1_000_000;
        const SECONDS: f64 = 6.0;
        println!(
            "\n| 1,000,000 keys | headline in DOM | headline painted | comparison done | longest frame gap | animation frame interval p50 | stage paint p50 / p95 |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for (strategy, label) in [
            ("ring", "enter the count (ring 3 → 4)"),
            ("modulo", "switch to modulo"),
        ] {
            let expected = ecoshard_web::bench::plan_moved(strategy, 3, 4, KEYS).to_string();
            browser
                .client
                .execute(
                    PROBE,
                    vec![
                        Value::from(expected.clone()),
                        Value::from(strategy),
                        Value::from(SECONDS),
                    ],
                )
                .await
                .expect("installing the probe");
            // The frame benchmark above left the page on ring 3 → 4.
            if strategy == "ring" {
                browser.enter("#key-count", &KEYS.to_string()).await;
            } else {
                browser.click(&format!("#strategy-{strategy}")).await;
            }
            tokio::time::sleep(Duration::from_secs_f64(SECONDS + 1.0)).await;
            let probe = browser.eval("return window.__probe").await;
            let at = |field: &str| {
                probe[field]
                    .as_f64()
                    .map(|t| t - probe["t0"].as_f64().unwrap())
            };
            let frames: Vec<f64> = probe["frames"]
                .as_array()
                .unwrap()
                .iter()
                .map(|value| value.as_f64().unwrap())
                .collect();
            let intervals: Vec<f64> = frames.windows(2).map(|pair| pair[1] - pair[0]).collect();
            let stats: Value = serde_json::from_str(
                browser
                    .eval("return ecoshard.frame_stats()")
                    .await
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
            let log = |field: &str| -> Vec<f64> {
                stats[field]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|value| value.as_f64().unwrap())
                    .collect()
            };
            let (paint, animation) = (log("paint_ms"), log("interval_ms"));
            let ms =
                |value: Option<f64>| value.map_or("never".to_string(), |v| format!("{v:.0} ms"));
            println!(
                "| {label} | {} | {} | {} | {:.0} ms | {:.1} ms | {:.1} / {:.1} ms |",
                ms(at("headline")),
                ms(at("shown")),
                ms(at("compared")),
                percentile(&intervals, 1.0),
                percentile(&animation, 0.5),
                percentile(&paint, 0.5),
                percentile(&paint, 0.95),
            );
        }
    }

    fn chromium_version() -> String {
        std::process::Command::new(super::support::CHROMIUM)
            .arg("--version")
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
            .unwrap_or_default()
    }
}
