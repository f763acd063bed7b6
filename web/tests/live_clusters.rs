//! The live view over several clusters, against a real `ecoshard serve
//! --clusters 2 --standbys 1`: each cluster shown as a group with its nodes
//! and the shards it holds, each standby's lag chart under its cluster's
//! name, each cluster's reads on its own nodes' cards, and a standby of
//! `c2` stopped and started from the page, down under `c2` alone while `c1`
//! is unaffected.
//!
//! Needs what `live.rs` needs; `cargo xtask test e2e` runs it.

// Native only: the tests drive a browser from the host.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/bridge.rs"]
mod bridge;
mod support;

use bridge::Bridge;
use support::Browser;

/// The node card of `node` in the group of `cluster`, as a CSS selector.
fn card(cluster: &str, node: &str) -> String {
    format!(".cluster-group[data-cluster=\"{cluster}\"] .node[data-node=\"{node}\"]")
}

/// `data-up` of each node card in the group of `cluster`, in page order.
async fn nodes_up(browser: &Browser, cluster: &str) -> Vec<(String, String)> {
    let found = browser
        .eval(&format!(
            "return Array.from(document.querySelectorAll('.cluster-group[data-cluster=\"{cluster}\"] .node'))
                 .map(n => [n.dataset.node, n.dataset.up]);"
        ))
        .await;
    found
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_string(),
                pair[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn up(nodes: &[(&str, &str)]) -> Vec<(String, String)> {
    nodes
        .iter()
        .map(|(name, up)| (name.to_string(), up.to_string()))
        .collect()
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist`, the ecoshard binary, PostgreSQL and chromium: run `cargo xtask test e2e`"]
async fn two_clusters_show_apart_and_a_standby_stopped_in_c2_leaves_c1_alone() {
    let bridge = Bridge::start("clusters", &["--clusters", "2", "--standbys", "1"]).await;
    let browser = Browser::start(1440, 1500).await;
    browser.goto(&format!("{}#live", bridge.url)).await;
    browser
        .until(
            "two clusters, every node up, each standby streaming",
            90,
            "const groups = Array.from(document.querySelectorAll('.cluster-group'));
             const nodes = Array.from(document.querySelectorAll('.cluster-group .node'));
             return groups.length === 2 && nodes.length === 4 && nodes.every(n => n.dataset.up === 'true')
                 && nodes.filter(n => n.dataset.role === 'standby')
                      .every(n => n.querySelector('.node-metrics').textContent.includes('streaming'));",
        )
        .await;
    let both_up = up(&[("primary", "true"), ("standby-1", "true")]);
    assert_eq!(nodes_up(&browser, "c1").await, both_up);
    assert_eq!(nodes_up(&browser, "c2").await, both_up);
    assert!(
        browser
            .text("#cluster-settings")
            .await
            .contains("2 local clusters")
    );
    // Three shards given as a count, round-robin over the two clusters:
    // each group names what it holds.
    assert_eq!(
        browser
            .text(".cluster-group[data-cluster=\"c1\"] .cluster-shards")
            .await,
        "holds s0, s2 (2 of 3 shards)"
    );
    assert_eq!(
        browser
            .text(".cluster-group[data-cluster=\"c2\"] .cluster-shards")
            .await,
        "holds s1 (1 of 3 shards)"
    );
    // One lag chart per standby, c2's under its cluster's name.
    browser
        .until(
            "c2's standby charted",
            20,
            "return Number(document.querySelector('.lag-chart[data-node=\"c2/standby-1\"]')?.dataset.samples) > 1
                 && Number(document.querySelector('.lag-chart[data-node=\"standby-1\"]')?.dataset.samples) > 1",
        )
        .await;
    // Steady traffic reads each key back on its shard's cluster: each
    // group's cards count their own cluster's reads (c2's standby-1 is
    // not c1's), with a rate while it runs.
    browser.click("#steady-toggle").await;
    browser
        .until(
            "reads served and at a rate on each cluster's cards",
            60,
            "const group = c => Array.from(document.querySelectorAll(`.cluster-group[data-cluster=\"${c}\"] .node`));
             const served = n => Number(n.querySelector('.node-reads .muted').textContent.replace(/[^0-9]/g, ''));
             const rate = n => Number(n.querySelector('.reads-rate').dataset.rate);
             return ['c1', 'c2'].every(c => group(c).some(n => served(n) > 0 && rate(n) > 0));",
        )
        .await;
    let listed = browser
        .eval(
            "return Array.from(document.querySelectorAll('#read-counters .bar-row')).map(r => r.dataset.node);",
        )
        .await;
    assert_eq!(
        listed,
        serde_json::json!(["primary", "standby-1", "c2/primary", "c2/standby-1"]),
        "the traffic card lists every cluster's nodes"
    );
    browser.screenshot("live-two-clusters").await;
    browser.click("#steady-toggle").await;

    // Stop c2's standby from the page: down under c2, c1 untouched.
    browser
        .click(&format!(
            "{} [data-action=\"stop\"]",
            card("c2", "standby-1")
        ))
        .await;
    browser
        .until(
            "c2's standby-1 down",
            30,
            &format!(
                "return document.querySelector('{}').dataset.up === 'false'",
                card("c2", "standby-1").replace('\'', "\\'")
            ),
        )
        .await;
    browser
        .until(
            "the bridge's answer in the log, under c2",
            10,
            "return Array.from(document.querySelectorAll('#activity li'))
             .some(li => li.textContent.startsWith('c2: stopped standby-1'))",
        )
        .await;
    assert_eq!(
        nodes_up(&browser, "c2").await,
        up(&[("primary", "true"), ("standby-1", "false")])
    );
    assert_eq!(nodes_up(&browser, "c1").await, both_up);
    let c1_streaming = browser
        .text(&format!("{} .node-metrics", card("c1", "standby-1")))
        .await;
    assert!(c1_streaming.contains("streaming"), "{c1_streaming}");
    // The bridge says the same: c1's standby streams, c2's is gone.
    let view: serde_json::Value =
        serde_json::from_str(&bridge.get("/api/cluster")).expect("the cluster view");
    let standby_up = |cluster: usize| view["clusters"][cluster]["nodes"][1]["up"].clone();
    assert_eq!((standby_up(0), standby_up(1)), (true.into(), false.into()));
    browser
        .screenshot("live-two-clusters-c2-standby-down")
        .await;

    // Start it again from the page.
    browser
        .click(&format!(
            "{} [data-action=\"start\"]",
            card("c2", "standby-1")
        ))
        .await;
    browser
        .until(
            "c2's standby-1 up again",
            60,
            &format!(
                "return document.querySelector('{}').dataset.up === 'true'",
                card("c2", "standby-1").replace('\'', "\\'")
            ),
        )
        .await;
    assert_eq!(nodes_up(&browser, "c1").await, both_up);
    browser.close().await;
}

/// `data-value` of `css`, as a number.
async fn value(browser: &Browser, css: &str) -> u64 {
    let found = browser
        .eval(&format!(
            "return document.querySelector('{css}')?.dataset.value ?? null"
        ))
        .await;
    let text = found
        .as_str()
        .unwrap_or_else(|| panic!("no {css}"))
        .to_string();
    text.parse().unwrap()
}

/// The cluster moves the page shows: moving between servers (the
/// headline), within, across, with shards.
async fn shown_moves(browser: &Browser) -> [u64; 4] {
    [
        value(browser, "#moved-count").await,
        value(browser, "#moved-within").await,
        value(browser, "#moved-across").await,
        value(browser, "#shard-moves").await,
    ]
}

/// The same numbers from the core's plan, natively, over the explorer's
/// 2,000 numbered keys, between ring layouts placing `s0`, `s1`, … on the
/// clusters given; the headline counts the keys that change shard and those
/// carried with their shard to another cluster.
fn planned_moves(before: &[&str], after: &[&str]) -> [u64; 4] {
    use ecoshard_core::{DEFAULT_KEY_PREFIX, Layout, Shard, StrategyKind, plan_numbered};
    let layout = |clusters: &[&str]| {
        let shards = clusters
            .iter()
            .enumerate()
            .map(|(index, cluster)| Shard::new(format!("s{index}")).on_cluster(*cluster))
            .collect();
        Layout::new(StrategyKind::Ring, shards).build().unwrap()
    };
    let plan = plan_numbered(&layout(before), &layout(after), DEFAULT_KEY_PREFIX, 2_000);
    let summary = plan.summary();
    let with_shards = summary.shard_moves.iter().map(|shard| shard.keys).sum();
    [
        summary.moved + with_shards,
        summary.moved_within_cluster,
        summary.moved_across_clusters,
        with_shards,
    ]
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist`, the ecoshard binary, PostgreSQL and chromium: run `cargo xtask test e2e`"]
async fn the_explorer_places_shards_on_two_clusters_as_the_core_plans_and_the_bridge_refusal_is_its_sentence()
 {
    let bridge = Bridge::start("placement", &["--clusters", "2", "--standbys", "1"]).await;
    let browser = Browser::start(1440, 1500).await;
    browser.goto(&bridge.url).await;
    browser.wait_for_element("#moved-count", 30).await;
    assert_eq!(
        browser
            .eval("return document.querySelector('#cluster-moves')")
            .await,
        serde_json::Value::Null,
        "one cluster: no word of clusters"
    );

    // Propose a placement: c2 added, s2 and s3 moved onto it whole.
    browser.click("#propose-placement").await;
    browser.wait_for_element("#cluster-moves", 10).await;
    let (c1, c2) = (["c1"; 4], ["c1", "c1", "c2", "c2"]);
    let expected = planned_moves(&c1, &c2);
    assert_eq!(expected[1] + expected[2], 0, "no key changes shard");
    assert!(expected[3] > 0, "s2 and s3 take their keys along");
    assert_eq!(
        expected[0], expected[3],
        "the headline counts them as moving"
    );
    assert_eq!(shown_moves(&browser).await, expected);
    let kicker = browser.text(".summary .kicker").await;
    assert!(kicker.contains("4 shards on 1 → 2 clusters"), "{kicker}");
    assert_eq!(browser.text("#verdict").await, "only whole shards move");
    let note = browser.text("#verdict-note").await;
    assert!(note.starts_with("No key changes shard; even so"), "{note}");
    let moved_shards = browser
        .eval(
            "return Array.from(document.querySelectorAll('.shard-move')).map(s => s.dataset.shard)",
        )
        .await;
    assert_eq!(moved_shards, serde_json::json!(["s2", "s3"]));
    browser.screenshot("explorer-two-clusters-proposed").await;

    // A shard added over the two clusters: s4 on c1 (round-robin by its
    // position), keys moving within c1 and across from c2.
    browser.click("#add-shard").await;
    let expected = planned_moves(&c2, &["c1", "c1", "c2", "c2", "c1"]);
    assert!(expected[1] > 0 && expected[2] > 0, "{expected:?}");
    browser
        .until(
            "the plan of s4 added",
            10,
            &format!(
                "return document.querySelector('#moved-count')?.dataset.value === '{}'",
                expected[0]
            ),
        )
        .await;
    assert_eq!(shown_moves(&browser).await, expected);
    browser
        .screenshot("explorer-two-clusters-shard-added")
        .await;

    // Applying it: s2 and s3 would change cluster while s4 takes keys, and
    // the bridge does the two in separate steps, and says so; the page
    // shows its sentence and the layout in force stays.
    browser.click("#tab-live").await;
    browser.wait_for_element("#apply-layout", 30).await;
    browser
        .until(
            "the apply button ready",
            30,
            "return !document.querySelector('#apply-layout').disabled",
        )
        .await;
    browser.click("#apply-layout").await;
    let refusal = browser.wait_for_element("#apply-refusal", 20).await;
    let code = browser
        .eval("return document.querySelector('#apply-refusal').dataset.code")
        .await;
    assert_eq!(code, "placement_and_keys");
    let text = refusal.text().await.unwrap();
    assert!(text.contains("do it in two steps"), "{text}");
    let layout: serde_json::Value = serde_json::from_str(&bridge.get("/api/layout")).unwrap();
    assert_eq!(layout["version"], 1, "{layout}");
    browser.screenshot("live-two-clusters-apply-refused").await;
    browser.close().await;
}

/// `fetch` from the page, as JSON: `method` `path` with `body` (JSON
/// text), answered as `[status, body]`.
async fn fetch_json(
    browser: &Browser,
    method: &str,
    path: &str,
    body: &str,
) -> (u64, serde_json::Value) {
    let answer = browser
        .eval(&format!(
            "return fetch('{path}', {{method: '{method}', headers: {{'content-type': 'application/json'}},
                                      body: JSON.stringify({body})}})
                 .then(async answer => [answer.status, await answer.json()])"
        ))
        .await;
    (answer[0].as_u64().unwrap(), answer[1].clone())
}

/// The phases as the page lists them, in order.
const PHASES: [&str; 6] = [
    "setting up",
    "copying",
    "catching up",
    "cutover",
    "verifying",
    "cleanup",
];

/// The marks the phase list carries at `phase`: the phases before it
/// ticked, it marked, the rest to come; every one ticked once moved.
fn marks_at(phase: &str) -> String {
    let at = PHASES
        .iter()
        .position(|listed| *listed == phase)
        .unwrap_or(PHASES.len());
    (0..PHASES.len())
        .map(|index| match index.cmp(&at) {
            std::cmp::Ordering::Less => "done",
            std::cmp::Ordering::Equal => "now",
            std::cmp::Ordering::Greater => "next",
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist`, the ecoshard binary, PostgreSQL and chromium: run `cargo xtask test e2e`"]
async fn a_placement_change_from_the_explorer_shows_its_phases_and_ends_with_the_shard_on_its_new_cluster()
 {
    let bridge = Bridge::start("phases", &["--clusters", "2", "--standbys", "1"]).await;
    let browser = Browser::start(1440, 1800).await;
    browser.goto(&bridge.url).await;
    browser.wait_for_element("#load-database", 60).await;
    // Some thousands of users over both clusters; s1 (on c2) holds a share.
    let (status, bulk) = fetch_json(
        &browser,
        "POST",
        "/api/users/bulk",
        r#"{"count": 6000, "prefix": "ph"}"#,
    )
    .await;
    assert_eq!(status, 201, "{bulk}");
    let on_s1 = bulk["shards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|shard| shard["shard"] == "s1")
        .and_then(|shard| shard["keys"].as_u64())
        .unwrap();
    assert!(on_s1 > 0, "{bulk}");

    // The explorer takes the database's layout (s0, s2 on c1; s1 on c2),
    // then one cluster: s1 moves whole onto c1, no key changes shard.
    browser.click("#load-database").await;
    browser.wait_for_element("#loaded-database", 30).await;
    browser.enter("#cluster-count", "1").await;
    browser.click("#tab-live").await;
    browser
        .until(
            "the apply button ready",
            30,
            "return !document.querySelector('#apply-layout')?.disabled",
        )
        .await;
    // Every state of the move the page shows: its phase and its marks.
    browser
        .eval(
            "window.movesSeen = [];
             const record = () => {
                 const shown = document.querySelector('#moving-shard');
                 if (!shown) return;
                 const marks = Array.from(shown.querySelectorAll('.phases li')).map(li => li.className).join(' ');
                 const last = window.movesSeen[window.movesSeen.length - 1];
                 if (!last || last[0] !== shown.dataset.phase || last[1] !== marks) {
                     window.movesSeen.push([shown.dataset.phase, marks]);
                 }
             };
             new MutationObserver(record).observe(document.body,
                 {subtree: true, childList: true, attributes: true, characterData: true});
             return true",
        )
        .await;
    browser.click("#apply-layout").await;
    browser
        .until(
            "the move under way",
            30,
            "return document.querySelector('#moving-shard')?.dataset.shard === 's1'",
        )
        .await;
    assert_eq!(browser.text("#move-route").await, "s1: c2 → c1");
    browser.screenshot("live-shard-move-running").await;
    browser
        .until(
            "the job done",
            120,
            "return document.querySelector('#job')?.dataset.state === 'done'
                 && document.querySelector('#moving-shard')?.dataset.phase === 'moved'",
        )
        .await;

    // The phases advanced, never back, each shown with its marks, from
    // setting up (the PUT's answer) to moved.
    let seen: Vec<(String, String)> =
        serde_json::from_value(browser.eval("return window.movesSeen").await).unwrap();
    eprintln!("phases seen: {seen:?}");
    assert_eq!(
        seen.first().map(|(phase, _)| phase.as_str()),
        Some("setting up")
    );
    assert_eq!(seen.last().map(|(phase, _)| phase.as_str()), Some("moved"));
    let position = |phase: &str| {
        PHASES
            .iter()
            .position(|listed| *listed == phase)
            .unwrap_or(6)
    };
    for pair in seen.windows(2) {
        assert!(position(&pair[0].0) <= position(&pair[1].0), "{seen:?}");
    }
    for (phase, marks) in &seen {
        assert_eq!(*marks, marks_at(phase), "{seen:?}");
    }
    assert_eq!(
        browser.text("#move-ended").await,
        format!(
            "✓ s1 moved from c2 to c1: {} rows",
            ecoshard_core::thousands(on_s1)
        )
    );
    let copied = browser.text("#move-copied").await;
    assert!(
        copied.starts_with(&format!("{0} / {0} rows", ecoshard_core::thousands(on_s1))),
        "{copied}"
    );
    let pause = browser.text("#write-pause").await;
    assert!(pause.starts_with("writes to s1 paused "), "{pause}");
    // The groups list it on its new cluster, as the bridge has it.
    browser
        .until(
            "c1 holding every shard",
            30,
            "return document.querySelector('.cluster-group[data-cluster=\"c1\"] .cluster-shards')?.textContent
                 === 'holds s0, s1, s2 (3 of 3 shards)'",
        )
        .await;
    assert_eq!(
        browser
            .text(".cluster-group[data-cluster=\"c2\"] .cluster-shards")
            .await,
        "holds no shards"
    );
    let layout: serde_json::Value = serde_json::from_str(&bridge.get("/api/layout")).unwrap();
    assert_eq!(
        layout["placement"],
        serde_json::json!(["c1", "c1", "c1"]),
        "{layout}"
    );
    browser.screenshot("live-shard-move-done").await;
    browser.close().await;
}
