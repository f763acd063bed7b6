//! The page in a real browser: headless Chromium loads the built page from a
//! plain static server (no bridge), and every number the explorer shows for a
//! change is checked against the core's own plan, and against the output of
//! `ecoshard plan` itself.
//!
//! Needs `cargo xtask dist` first, Debian's chromium + chromium-driver, and
//! (for the last test) the `ecoshard` binary (`ECOSHARD_BIN`), so
//! the tests are `#[ignore]`d in plain `cargo test`; `cargo xtask test e2e`
//! builds the page and runs them with `--ignored`.

// Native only: the tests drive a browser from the host.
#![cfg(not(target_arch = "wasm32"))]

mod support;

use std::time::Duration;

use ecoshard_core::{DEFAULT_KEY_PREFIX, Layout, Plan, Shard, StrategyKind, plan_numbered};
use ecoshard_web::state::{PAGE_LOAD_FACTOR, strategy_title};
use serde_json::Value;
use support::{Browser, StaticServer, dist_dir, ecoshard_binary, number};

const NEEDS: &str = "needs `cargo xtask dist` and chromium: run `cargo xtask test e2e`";

/// The core's plan for going from shards `before` to `after` under `strategy`
/// (default parameters but the page's bounded-load factor) over `user_0` …
/// `user_{keys-1}`: what `ecoshard plan` prints.
fn core_plan(strategy: StrategyKind, before: &[&str], after: &[&str], keys: usize) -> Plan {
    core_plan_at(strategy, before, after, keys, PAGE_LOAD_FACTOR)
}

/// [`core_plan`] at bounded-load factor `load_factor`.
fn core_plan_at(
    strategy: StrategyKind,
    before: &[&str],
    after: &[&str],
    keys: usize,
    load_factor: f64,
) -> Plan {
    let build = |names: &[&str]| {
        Layout::new(
            strategy,
            names.iter().map(|name| Shard::new(*name)).collect(),
        )
        .with_load_factor(load_factor)
        .build()
        .unwrap()
    };
    plan_numbered(&build(before), &build(after), DEFAULT_KEY_PREFIX, keys)
}

async fn open_page(width: u32, height: u32) -> (StaticServer, Browser) {
    let server = StaticServer::start(&dist_dir());
    let browser = Browser::start(width, height).await;
    browser.goto(&server.url()).await;
    browser.wait_for_element("#moved-count", 20).await;
    (server, browser)
}

async fn moved_count(browser: &Browser) -> u64 {
    let value = browser
        .eval("return document.querySelector('#moved-count').dataset.value")
        .await;
    value.as_str().unwrap().parse().unwrap()
}

/// Waits until the headline shows `kicker` (e.g. "Maglev · 5 → 6 shards"),
/// then returns the moved count.
async fn moved_after(browser: &Browser, kicker: &str) -> u64 {
    browser
        .wait_for(
            kicker,
            15,
            &format!(
                "return document.querySelector('.summary .kicker')?.textContent.includes({})",
                Value::String(kicker.to_string())
            ),
        )
        .await;
    moved_count(browser).await
}

/// The comparison table's (strategy, moved) rows, once all six are worked out.
async fn comparison(browser: &Browser) -> Vec<(String, u64)> {
    let rows = browser
        .wait_for(
            "the comparison table",
            20,
            "const rows = Array.from(document.querySelectorAll('tr.compare-row[data-moved]'));
             return rows.length === 6 && rows.map(r => [r.dataset.strategy, r.dataset.moved]);",
        )
        .await;
    rows.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row[0].as_str().unwrap().to_string(),
                row[1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

/// Waits for the animation to end, so screenshots show the final state.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(2_000)).await;
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist` and chromium: run `cargo xtask test e2e`"]
async fn opening_shows_ring_three_to_four_with_the_cores_numbers() {
    let _ = NEEDS;
    let (_server, browser) = open_page(1440, 1500).await;
    let s3 = ["s0", "s1", "s2"];
    let s4 = ["s0", "s1", "s2", "s3"];
    let expected = core_plan(StrategyKind::Ring, &s3, &s4, 2_000);
    assert_eq!(
        moved_after(&browser, "Ring · 3 → 4 shards · 2,000 keys").await,
        expected.moved
    );
    let percent = browser
        .eval("return document.querySelector('#moved-percent').textContent")
        .await;
    assert_eq!(
        percent.as_str().unwrap(),
        format!("{:.1} %", expected.moved_fraction() * 100.0)
    );
    let ideal = browser
        .eval("return document.querySelector('#ideal-percent').textContent")
        .await;
    assert_eq!(ideal.as_str().unwrap(), "ideal minimum 25.0 %");
    let max_over_mean = browser
        .eval("return document.querySelector('#max-over-mean strong').dataset.value")
        .await;
    assert_eq!(
        max_over_mean.as_str().unwrap(),
        format!("{:.3}", expected.loads_after.max_over_mean)
    );
    for (strategy, moved) in comparison(&browser).await {
        let strategy: StrategyKind = strategy.parse().unwrap();
        assert_eq!(
            moved,
            core_plan(strategy, &s3, &s4, 2_000).moved,
            "{strategy}"
        );
    }
    let canvas = browser
        .eval("const c = document.querySelector('#stage-canvas'); return [c.width, c.height]")
        .await;
    assert!(
        canvas[0].as_u64().unwrap() > 600,
        "the stage fills its card: {canvas}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    browser.screenshot("explorer-ring-moving").await;
    settle().await;
    browser.screenshot("explorer-ring").await;
    browser.close().await;
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist` and chromium: run `cargo xtask test e2e`"]
async fn strategy_shard_count_and_add_shard_agree_with_the_core() {
    let (_server, browser) = open_page(1440, 1500).await;
    browser.click("#strategy-maglev").await;
    assert_eq!(
        moved_after(&browser, "Maglev · 3 → 4 shards").await,
        core_plan(
            StrategyKind::Maglev,
            &["s0", "s1", "s2"],
            &["s0", "s1", "s2", "s3"],
            2_000
        )
        .moved
    );
    browser.enter("#shard-count", "5").await;
    let five = ["s0", "s1", "s2", "s3", "s4"];
    assert_eq!(
        moved_after(&browser, "Maglev · 4 → 5 shards").await,
        core_plan(StrategyKind::Maglev, &five[..4], &five, 2_000).moved
    );
    browser.click("#add-shard").await;
    let six = ["s0", "s1", "s2", "s3", "s4", "s5"];
    let expected = core_plan(StrategyKind::Maglev, &five, &six, 2_000);
    assert_eq!(
        moved_after(&browser, "Maglev · 5 → 6 shards").await,
        expected.moved
    );
    for (strategy, moved) in comparison(&browser).await {
        let strategy: StrategyKind = strategy.parse().unwrap();
        assert_eq!(
            moved,
            core_plan(strategy, &five, &six, 2_000).moved,
            "{strategy}"
        );
    }
    let loads = browser
        .eval(
            "return Array.from(document.querySelectorAll('#load-bars .bar-row'))
                 .map(r => r.querySelector('.bar-count').textContent)",
        )
        .await;
    let shown: Vec<u64> = loads
        .as_array()
        .unwrap()
        .iter()
        .map(|count| number(count.as_str().unwrap()))
        .collect();
    assert_eq!(shown, expected.loads_after.counts);
    settle().await;
    browser.screenshot("explorer-maglev-add-shard").await;

    browser.click("#strategy-modulo").await;
    let modulo = core_plan(StrategyKind::Modulo, &five, &six, 2_000);
    assert_eq!(
        moved_after(&browser, "Modulo · 5 → 6 shards").await,
        modulo.moved
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    browser.screenshot("explorer-modulo-moving").await;
    browser.close().await;
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist` and chromium: run `cargo xtask test e2e`"]
async fn the_shard_count_applies_as_it_is_typed_and_says_what_it_refuses() {
    let (_server, browser) = open_page(1280, 800).await;
    moved_after(&browser, "Ring · 3 → 4 shards").await;
    browser
        .eval(
            "window.__changes = 0;
             document.querySelector('#shard-count')
                 .addEventListener('change', () => window.__changes++);
             return true",
        )
        .await;
    // Typed, no Enter, no leaving the field: applied once the typing settles.
    browser.type_over("#shard-count", "5").await;
    let five = ["s0", "s1", "s2", "s3", "s4"];
    assert_eq!(
        moved_after(&browser, "Ring · 4 → 5 shards").await,
        core_plan(StrategyKind::Ring, &five[..4], &five, 2_000).moved
    );
    let (changes, focused) = (
        browser.eval("return window.__changes").await,
        browser.eval("return document.activeElement.id").await,
    );
    assert_eq!((changes, focused), (0.into(), "shard-count".into()));
    // Out of range: said beside the field, nothing clamped, the page keeps
    // the last valid change.
    for (typed, refusal) in [
        ("0", "0 is not a shard count: 1 to 64"),
        ("100", "100 is not a shard count: 1 to 64"),
    ] {
        browser.type_over("#shard-count", typed).await;
        browser
            .until(
                refusal,
                10,
                &format!(
                    "return document.querySelector('#shard-count-error')?.textContent === {}",
                    Value::String(refusal.to_string())
                ),
            )
            .await;
        let kicker = browser.text(".summary .kicker").await;
        assert!(kicker.contains("4 → 5 shards"), "{kicker}");
        assert_eq!(browser.text(".chips").await.matches('×').count(), 5);
    }
    browser.screenshot("explorer-shard-count-refused").await;
    browser.type_over("#shard-count", "6").await;
    moved_after(&browser, "Ring · 5 → 6 shards").await;
    assert!(
        browser
            .eval("return document.querySelector('#shard-count-error') === null")
            .await
            == true
    );
    browser.close().await;
}

/// Where an element is in the viewport: [left, top, right, bottom], and the
/// viewport's and the document's widths.
const BOX: &str = "const r = document.querySelector(arguments[0]).getBoundingClientRect();
     return [r.left, r.top, r.right, r.bottom, window.innerWidth, window.innerHeight,
             document.documentElement.scrollWidth];";

async fn placement(browser: &Browser, css: &str) -> Vec<f64> {
    let value = browser
        .client
        .execute(BOX, vec![Value::from(css)])
        .await
        .unwrap_or_else(|error| panic!("placing {css}: {error}"));
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|number| number.as_f64().unwrap())
        .collect()
}

/// Asserts that `css` is wholly on the first screen and that nothing makes
/// the page wider than the window.
async fn on_first_screen(browser: &Browser, css: &str, size: &str) {
    let [left, top, right, bottom, width, height, scroll_width] = placement(browser, css).await[..]
    else {
        unreachable!()
    };
    assert!(
        left >= 0.0 && top >= 0.0 && right <= width && bottom <= height,
        "{css} at {size} is at ({left}, {top})–({right}, {bottom}), off the {width} × {height} screen"
    );
    assert!(
        scroll_width <= width,
        "at {size} the page is {scroll_width} px wide: it scrolls sideways"
    );
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist` and chromium: run `cargo xtask test e2e`"]
async fn the_first_screen_holds_the_headline_and_the_animation_from_1024_to_1280_px() {
    for (width, height) in [(1280, 800), (1100, 800), (1024, 768)] {
        let size = format!("{width}x{height}");
        let (_server, browser) = open_page(width, height).await;
        moved_after(&browser, "Ring · 3 → 4 shards").await;
        for css in [
            "#moved-count",
            "#moved-percent",
            "#verdict",
            "#stage-canvas",
        ] {
            on_first_screen(&browser, css, &size).await;
        }
        // The controls stay beside the stage, not above it.
        let controls = placement(&browser, ".controls").await;
        let stage = placement(&browser, "#stage-canvas").await;
        assert!(
            controls[2] <= stage[0],
            "controls beside the stage at {size}"
        );
        settle().await;
        browser.screenshot(&format!("layout-{size}")).await;
        browser.close().await;
    }
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist` and chromium: run `cargo xtask test e2e`"]
async fn a_phone_sees_the_headline_first_and_scrolls_vertically_only() {
    let (_server, browser) = open_page(414, 900).await;
    moved_after(&browser, "Ring · 3 → 4 shards").await;
    for css in ["#moved-count", "#moved-percent"] {
        on_first_screen(&browser, css, "414x900").await;
    }
    settle().await;
    browser.screenshot("layout-414x900").await;
    // Bounded-load's factor, cap and note fit the phone too.
    browser.click("#strategy-bounded-load").await;
    moved_after(&browser, "Bounded-load · 3 → 4 shards").await;
    browser
        .eval("window.scrollTo(0, document.querySelector('#load-bars').getBoundingClientRect().top + window.scrollY - 60); return true")
        .await;
    settle().await;
    browser
        .screenshot("layout-414x900-bounded-load-panels")
        .await;
    // Every view, at the most columns, keeps to the window's width.
    for strategy in ["modulo", "bounded-load"] {
        browser.click(&format!("#strategy-{strategy}")).await;
        browser.type_over("#shard-count", "64").await;
        moved_after(&browser, "→ 64 shards").await;
        for css in ["#stage-canvas", "#comparison", "#load-bars", ".controls"] {
            let [left, _, right, _, width, _, scroll_width] = placement(&browser, css).await[..]
            else {
                unreachable!()
            };
            assert!(
                left >= 0.0 && right <= width,
                "{css} ({left}–{right}) wider than {width}"
            );
            assert!(
                scroll_width <= width,
                "{strategy}: the page is {scroll_width} px wide"
            );
        }
        browser.type_over("#shard-count", "4").await;
        moved_after(&browser, "64 → 4 shards").await;
    }
    browser.close().await;
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist` and chromium: run `cargo xtask test e2e`"]
async fn a_change_under_the_minimum_says_why_it_can_be() {
    let (_server, browser) = open_page(1280, 800).await;
    let s3 = ["s0", "s1", "s2"];
    let s4 = ["s0", "s1", "s2", "s3"];
    let ring = core_plan(StrategyKind::Ring, &s3, &s4, 2_000);
    assert!(
        ring.moved_fraction() < ring.ideal_fraction,
        "the opening change moves fewer"
    );
    moved_after(&browser, "Ring · 3 → 4 shards").await;
    assert_eq!(
        browser.text("#verdict").await,
        "0.95× the minimum: under it by chance"
    );
    let note = browser.text("#verdict-note").await;
    for words in [
        "is an expectation",
        "one sample",
        "s3 took 476 keys",
        "an even share of 500",
    ] {
        assert!(note.contains(words), "{note}");
    }
    // Modulo moves three times the minimum: no note.
    browser.click("#strategy-modulo").await;
    moved_after(&browser, "Modulo · 3 → 4 shards").await;
    assert_eq!(browser.text("#verdict").await, "3.0× the minimum");
    assert_eq!(browser.text("#verdict-note").await, "");
    browser.close().await;
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist` and chromium: run `cargo xtask test e2e`"]
async fn bounded_load_shows_its_factor_and_a_cap_that_changes_the_placement() {
    let (_server, browser) = open_page(1280, 800).await;
    let s3 = ["s0", "s1", "s2"];
    let s4 = ["s0", "s1", "s2", "s3"];
    moved_after(&browser, "Ring · 3 → 4 shards").await;
    assert_eq!(browser.text("#load-factor-shown").await, "c = 1.05");
    browser.click("#strategy-bounded-load").await;
    let bounded = core_plan(StrategyKind::BoundedLoad, &s3, &s4, 2_000);
    let ring = core_plan(StrategyKind::Ring, &s3, &s4, 2_000);
    assert_eq!(
        moved_after(&browser, "Bounded-load · 3 → 4 shards").await,
        bounded.moved
    );
    assert_ne!(
        bounded.moved, ring.moved,
        "the cap acts at the page's factor"
    );
    // The factor beside the strategy, and the core's cap on the load bars.
    let field = browser
        .eval("return document.querySelector('.strategy-detail #load-factor').value")
        .await;
    assert_eq!(field, "1.05");
    let router = Layout::with_count(StrategyKind::BoundedLoad, 4)
        .unwrap()
        .with_load_factor(PAGE_LOAD_FACTOR)
        .build()
        .unwrap();
    let cap = router.capacity(1, 2_000).unwrap();
    let shown = browser
        .eval("return document.querySelector('#cap-marker').dataset.cap")
        .await;
    assert_eq!(shown, cap.to_string());
    assert_eq!(browser.text("#cap-marker").await, format!("cap {cap}"));
    assert_eq!(
        bounded.loads_after.max, cap,
        "the fullest shard is at the cap"
    );
    assert!(ring.loads_after.max > cap, "ring would put more there");
    let note = browser.text("#cap-note").await;
    assert!(note.contains("⌈1.05 × 500⌉ = 525"), "{note}");
    assert!(
        note.contains("Full: s1; 26 keys went on past their ring owner"),
        "{note}"
    );
    settle().await;
    browser.screenshot("explorer-bounded-load-cap").await;
    browser
        .eval("window.scrollTo(0, document.querySelector('#load-bars').getBoundingClientRect().top + window.scrollY - 60); return true")
        .await;
    browser.screenshot("explorer-bounded-load-cap-bars").await;
    // At the core's default the cap does not bind here: the placement is ring's.
    browser.type_over("#load-factor", "1.25").await;
    let at_default = core_plan_at(StrategyKind::BoundedLoad, &s3, &s4, 2_000, 1.25);
    browser
        .until(
            "the placement at c = 1.25",
            10,
            &format!(
                "return document.querySelector('#moved-count').dataset.value === '{}'",
                at_default.moved
            ),
        )
        .await;
    assert_eq!(at_default.moved, ring.moved);
    assert_eq!(browser.text("#load-factor-shown").await, "c = 1.25");
    assert!(
        browser
            .text("#cap-note")
            .await
            .contains("No shard reached it")
    );
    browser.close().await;
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist` and chromium: run `cargo xtask test e2e`"]
async fn sixty_four_shards_name_every_other_column_instead_of_overlapping() {
    let (_server, browser) = open_page(1280, 800).await;
    moved_after(&browser, "Ring · 3 → 4 shards").await;
    let stride = || async {
        browser
            .eval("return Number(document.querySelector('#stage-canvas').dataset.labelStride)")
            .await
            .as_u64()
            .unwrap()
    };
    assert_eq!(stride().await, 1, "four columns: every one named");
    browser.click("#strategy-jump").await;
    browser.type_over("#shard-count", "64").await;
    moved_after(&browser, "Jump · 4 → 64 shards").await;
    settle().await;
    assert!(stride().await >= 2, "64 bucket columns: {}", stride().await);
    browser.screenshot("explorer-jump-64-shards").await;
    browser.click("#strategy-ring").await;
    moved_after(&browser, "Ring · 4 → 64 shards").await;
    settle().await;
    assert!(
        stride().await >= 3,
        "64 columns beside the ring: {}",
        stride().await
    );
    browser.screenshot("explorer-ring-64-shards").await;
    browser.close().await;
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist` and chromium: run `cargo xtask test e2e`"]
async fn removing_a_chosen_shard_moves_exactly_its_keys_on_the_ring() {
    let (_server, browser) = open_page(1440, 1500).await;
    moved_after(&browser, "Ring · 3 → 4 shards").await;
    browser.click(".remove-shard[data-shard='s1']").await;
    let before = ["s0", "s1", "s2", "s3"];
    let after = ["s0", "s2", "s3"];
    let expected = core_plan(StrategyKind::Ring, &before, &after, 2_000);
    assert_eq!(
        moved_after(&browser, "Ring · 4 → 3 shards").await,
        expected.moved
    );
    assert_eq!(
        expected.moved, expected.loads_before.counts[1],
        "only s1's keys move"
    );
    let chips = browser
        .eval("return Array.from(document.querySelectorAll('.remove-shard')).map(b => b.dataset.shard)")
        .await;
    assert_eq!(chips, serde_json::json!(["s0", "s2", "s3"]));
    // Adding a shard now names it s4 (s3 is taken), as the core's next_shard_name does.
    browser.click("#add-shard").await;
    let with_s4 = ["s0", "s2", "s3", "s4"];
    assert_eq!(
        moved_after(&browser, "Ring · 3 → 4 shards").await,
        core_plan(StrategyKind::Ring, &after, &with_s4, 2_000).moved
    );
    settle().await;
    browser
        .screenshot("explorer-ring-after-remove-and-add")
        .await;
    browser.close().await;
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist` and chromium: run `cargo xtask test e2e`"]
async fn a_hundred_thousand_keys_and_bounded_load() {
    let (_server, browser) = open_page(1440, 1500).await;
    browser.click("#strategy-bounded-load").await;
    browser.enter("#key-count", "100000").await;
    let expected = core_plan(
        StrategyKind::BoundedLoad,
        &["s0", "s1", "s2"],
        &["s0", "s1", "s2", "s3"],
        100_000,
    );
    assert_eq!(
        moved_after(&browser, "Bounded-load · 3 → 4 shards · 100,000 keys").await,
        expected.moved
    );
    assert!(
        browser
            .eval("return document.querySelector('#load-factor') !== null")
            .await
            == true
    );
    assert!(
        browser
            .eval("return document.querySelector('#table-size') === null")
            .await
            == true
    );
    settle().await;
    browser.screenshot("explorer-bounded-load-100k").await;
    browser.close().await;
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist` and chromium: run `cargo xtask test e2e`"]
async fn a_million_keys_are_all_counted_and_a_sample_is_drawn() {
    let (_server, browser) = open_page(1440, 1300).await;
    browser.enter("#key-count", "1000000").await;
    let s3 = ["s0", "s1", "s2"];
    let s4 = ["s0", "s1", "s2", "s3"];
    let ring = core_plan(StrategyKind::Ring, &s3, &s4, 1_000_000);
    assert_eq!(
        moved_after(&browser, "Ring · 3 → 4 shards · 1,000,000 keys").await,
        ring.moved
    );
    // The stage draws every 25th key and says so.
    let sample = browser
        .wait_for(
            "the sample note",
            10,
            "const note = document.querySelector('#drawn-sample');
             return note && [note.dataset.drawn, note.textContent]",
        )
        .await;
    assert_eq!(sample[0], "40000");
    assert!(
        sample[1].as_str().unwrap().contains("1 key in 25"),
        "{sample}"
    );
    browser.screenshot("explorer-ring-1m-moving").await;
    // The comparison waits for the animation, then counts every key too.
    let waiting = browser
        .eval("return document.querySelector('#comparison .working')?.textContent ?? ''")
        .await;
    assert!(
        waiting
            .as_str()
            .unwrap()
            .contains("once the animation is over"),
        "{waiting}"
    );
    let rows = comparison(&browser).await;
    let modulo = core_plan(StrategyKind::Modulo, &s3, &s4, 1_000_000);
    for (strategy, expected) in [("ring", ring.moved), ("modulo", modulo.moved)] {
        let shown = rows.iter().find(|(name, _)| name == strategy).unwrap().1;
        assert_eq!(shown, expected, "{strategy}");
    }
    settle().await;
    browser.screenshot("explorer-ring-1m").await;
    // Back under the cap, every key is drawn again.
    browser.enter("#key-count", "2000").await;
    moved_after(&browser, "Ring · 3 → 4 shards · 2,000 keys").await;
    assert!(
        browser
            .eval("return document.querySelector('#drawn-sample') === null")
            .await
            == true
    );
    browser.close().await;
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist` and chromium: run `cargo xtask test e2e`"]
async fn a_refused_layout_shows_the_cores_message() {
    let (_server, browser) = open_page(1440, 1000).await;
    browser.click("#strategy-maglev").await;
    moved_after(&browser, "Maglev").await;
    browser.enter("#table-size", "1000").await;
    let message = browser
        .wait_for(
            "the refusal",
            10,
            "return document.querySelector('#layout-error')?.textContent",
        )
        .await;
    assert!(
        message
            .as_str()
            .unwrap()
            .contains("Maglev table size 1000 is not a prime number"),
        "{message}"
    );
    let beside = browser
        .eval("return document.querySelector('#controls-error')?.textContent")
        .await;
    assert!(
        beside.as_str().unwrap().contains("not a prime number"),
        "{beside}"
    );
    browser.eval("window.scrollTo(0, 0); return true").await;
    browser.screenshot("explorer-refused-layout").await;
    // A prime table too costly to fill over four shards: the core's bound, in its words.
    browser.enter("#table-size", "16777213").await;
    let costly = browser
        .wait_for(
            "the cost refusal",
            10,
            "const text = document.querySelector('#layout-error')?.textContent;
             return text && text.includes('table size × shards') && text",
        )
        .await;
    assert!(
        costly.as_str().unwrap().contains("at most 20000000"),
        "{costly}"
    );
    // A good value brings the stage back.
    browser.enter("#table-size", "65537").await;
    moved_after(&browser, "Maglev · 3 → 4 shards").await;
    browser.close().await;
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist` and chromium: run `cargo xtask test e2e`"]
async fn without_a_bridge_the_page_says_so_instead_of_failing() {
    let (_server, browser) = open_page(1440, 1000).await;
    let badge = browser
        .wait_for(
            "the bridge badge",
            10,
            "const b = document.querySelector('#bridge-status');
             return b.classList.contains('offline') && b.textContent",
        )
        .await;
    assert!(badge.as_str().unwrap().contains("no bridge"), "{badge}");
    browser.click("#tab-live").await;
    let notice = browser
        .wait_for(
            "the notice",
            10,
            "return document.querySelector('#no-bridge')?.textContent",
        )
        .await;
    assert!(
        notice
            .as_str()
            .unwrap()
            .contains("No bridge answers at this address")
    );
    assert!(
        notice
            .as_str()
            .unwrap()
            .contains("ecoshard-bridge -- serve")
    );
    assert!(
        notice
            .as_str()
            .unwrap()
            .contains("/api/health answered 404")
    );
    browser.screenshot("live-without-bridge").await;
    browser.close().await;
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist`, the ecoshard binary and chromium: run `cargo xtask test e2e`"]
async fn the_page_shows_what_ecoshard_plan_prints() {
    let (_server, browser) = open_page(1440, 1200).await;
    browser.enter("#key-count", "300").await;
    for strategy in StrategyKind::ALL {
        let name = strategy.name();
        browser.click(&format!("#strategy-{name}")).await;
        let moved = moved_after(
            &browser,
            &format!("{} · 3 → 4 shards · 300 keys", strategy_title(strategy)),
        )
        .await;
        // The command the page names, run as written.
        let cli = browser.text(".cli").await;
        let expected = format!("$ ecoshard plan --strategy {name} --from 3 --to 4 --keys 300");
        if strategy == StrategyKind::BoundedLoad {
            assert_eq!(cli, format!("{expected} --load-factor {PAGE_LOAD_FACTOR}"));
        } else {
            assert_eq!(
                cli, expected,
                "the page names the command that prints its numbers"
            );
        }
        let output = std::process::Command::new(ecoshard_binary())
            .args(cli.trim_start_matches("$ ecoshard ").split_whitespace())
            .args(["--format", "json"])
            .output()
            .expect("running ecoshard plan");
        assert!(output.status.success(), "ecoshard plan failed");
        let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(moved, printed["moved"].as_u64().unwrap(), "{name}");
        let shown = browser
            .eval(
                "return [document.querySelector('#moved-percent').textContent,
                         document.querySelector('#ideal-percent').textContent,
                         document.querySelector('#max-over-mean strong').dataset.value]",
            )
            .await;
        let percent = |fraction: &Value| format!("{:.1} %", fraction.as_f64().unwrap() * 100.0);
        assert_eq!(shown[0], percent(&printed["moved_fraction"]), "{name}");
        assert_eq!(
            shown[1],
            format!("ideal minimum {}", percent(&printed["ideal_fraction"])),
            "{name}"
        );
        assert_eq!(
            shown[2],
            format!("{:.3}", printed["max_over_mean_after"].as_f64().unwrap()),
            "{name}"
        );
    }
    browser.close().await;
}
