//! The live view in a real browser against a real bridge: `ecoshard serve`
//! starts its local cluster (a PostgreSQL primary and two streaming standbys)
//! and serves the built page; the tests use the page as a person would and
//! check the database directly — traffic, applying the explorer's layout,
//! loading the database's layout and keys into the explorer, and the
//! explorer's keys inserted twice.
//! Stopping nodes and failover are in `live_nodes.rs`.
//!
//! Needs `cargo xtask dist`, the `ecoshard` binary (`ECOSHARD_BIN`, else
//! `<target>/debug/ecoshard`), PostgreSQL's server binaries and Chromium, so
//! it is `#[ignore]`d in plain `cargo test`; `cargo xtask test e2e` runs it.

// Native only: the tests drive a browser from the host.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/bridge.rs"]
mod bridge;
mod support;

use std::time::Duration;

use bridge::Bridge;
use support::{Browser, number, wait_until};

#[tokio::test]
#[ignore = "needs `cargo xtask dist`, the ecoshard binary, PostgreSQL and chromium: run `cargo xtask test e2e`"]
async fn live_view_streams_lag_inserts_rows_and_shows_reads() {
    let mut bridge = Bridge::start("traffic", &[]).await;
    let browser = Browser::start(1440, 1500).await;
    browser.goto(&format!("{}#live", bridge.url)).await;

    // The stream opens and lag samples arrive for both standbys.
    let badge = browser
        .wait_for(
            "the live stream",
            30,
            "const b = document.querySelector('#bridge-status');
             return b && b.classList.contains('online') && b.textContent",
        )
        .await;
    assert!(badge.as_str().unwrap().contains("live"), "{badge}");
    browser
        .wait_for(
            "lag samples for both standbys",
            30,
            "const charts = Array.from(document.querySelectorAll('.lag-chart'));
             return charts.length === 2 && charts.every(c => Number(c.dataset.samples) >= 8);",
        )
        .await;
    let nodes = browser
        .eval(
            "return Array.from(document.querySelectorAll('.node'))
                 .map(n => [n.dataset.node, n.dataset.up])",
        )
        .await;
    assert_eq!(
        nodes,
        serde_json::json!([
            ["primary", "true"],
            ["standby-1", "true"],
            ["standby-2", "true"]
        ])
    );

    // Insert one user from the form; the row is in its shard's table on the primary.
    let user_id = format!("e2e_{}", std::process::id());
    browser.enter("#insert-id", &user_id).await;
    let inserted = browser
        .wait_for(
            "the insert",
            20,
            "return document.querySelector('#last-insert')?.textContent",
        )
        .await;
    let inserted = inserted.as_str().unwrap().to_string();
    assert!(
        inserted.starts_with(&format!("{user_id} → shard ")),
        "{inserted}"
    );
    let shard = inserted
        .split("shard ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string();
    let rows = bridge.psql(&format!(
        "SELECT count(*) FROM \"shard_{shard}\".users WHERE user_id = '{user_id}'"
    ));
    assert_eq!(rows, "1", "the row is on shard {shard} in PostgreSQL");

    // Bulk insert, then reads of the last inserted user: each says who served it,
    // and the per-node counters move.
    browser.click("#insert-bulk").await;
    browser
        .wait_for(
            "the bulk insert",
            30,
            "return Array.from(document.querySelectorAll('#activity li'))
                 .some(li => li.textContent.startsWith('inserted 1,000 users'))",
        )
        .await;
    // Reads served, as the per-node counters add them up.
    const READS_COUNTED: &str =
        "return Array.from(document.querySelectorAll('#read-counters .bar-count'))
         .reduce((sum, count) => sum + Number(count.textContent.replace(/,/g, '')), 0)";
    let reads_before = browser.eval(READS_COUNTED).await.as_u64().unwrap();
    let mut served_by = std::collections::BTreeSet::new();
    for _ in 0..6 {
        browser.click("#read-one").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let node = browser
            .wait_for(
                "a read",
                10,
                "return document.querySelector('#served-by')?.textContent",
            )
            .await;
        served_by.insert(node.as_str().unwrap().to_string());
    }
    assert!(
        served_by
            .iter()
            .all(|node| node.starts_with("standby-") || node == "primary"),
        "{served_by:?}"
    );
    // Every one of the six reads reached the bridge and was counted.
    browser
        .until(
            "six more reads in the counters",
            10,
            &format!(
                "return ({}) >= {}",
                READS_COUNTED.trim_start_matches("return "),
                reads_before + 6
            ),
        )
        .await;

    // A request the bridge refuses reads as its sentence, not a blank page.
    browser.enter("#bulk-count", "1000000").await;
    let refusal = browser
        .wait_for(
            "the refusal",
            10,
            "return document.querySelector('#activity li.error')?.textContent",
        )
        .await;
    assert!(
        refusal.as_str().unwrap().contains("count must be 1 to"),
        "{refusal}"
    );

    // A steady rate of real inserts (and read-backs), started and stopped.
    let writes = async || {
        let header = browser.text("#traffic .card-head .small").await;
        number(header.split(" writes").next().unwrap())
    };
    let before = writes().await;
    browser.click("#steady-toggle").await;
    let ten_more = async || (writes().await >= before + 10).then_some(());
    wait_until(Duration::from_secs(20), ten_more)
        .await
        .expect("steady inserts did not arrive");
    browser.click("#steady-toggle").await;
    let stopped = browser
        .eval("return document.querySelector('#steady-toggle').textContent")
        .await;
    assert_eq!(stopped, "Start steady /s");

    tokio::time::sleep(Duration::from_millis(1_500)).await;
    browser.screenshot("live-cluster").await;

    // The stream drops when the bridge stops; the page says so and reconnects
    // by itself when a bridge is back at the same address.
    bridge.stop();
    let lost = browser
        .wait_for(
            "the page to notice the stream dropped",
            20,
            "const b = document.querySelector('#bridge-status');
             return b.classList.contains('warning') && b.textContent",
        )
        .await;
    assert!(lost.as_str().unwrap().contains("reconnecting"), "{lost}");
    bridge.spawn().await;
    browser
        .wait_for(
            "the stream to come back",
            60,
            "const b = document.querySelector('#bridge-status');
             return b.classList.contains('online')",
        )
        .await;
    let samples = |node: &'static str| {
        let browser = &browser;
        async move {
            browser
                .eval(&format!(
                    "return Number(document.querySelector('.lag-chart[data-node=\"{node}\"]').dataset.samples)"
                ))
                .await
                .as_u64()
                .unwrap()
        }
    };
    let resumed = samples("standby-1").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(samples("standby-1").await > resumed, "ticks flow again");
    browser.close().await;
    drop(bridge);
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist`, the ecoshard binary, PostgreSQL and chromium: run `cargo xtask test e2e`"]
async fn applying_the_explorers_layout_moves_exactly_the_planned_rows() {
    use ecoshard_core::{Layout, StrategyKind};

    // Two rows per transaction: the job takes long enough (a second or
    // two) for the stream to show it moving.
    let bridge = Bridge::start("apply", &["--rebalance-batch", "2"]).await;
    let browser = Browser::start(1440, 1500).await;
    browser.goto(&bridge.url).await;

    // The explorer: ring, 3 → 4 shards (its opening change), over 10,000 keys.
    browser.wait_for_element("#moved-count", 30).await;
    browser.enter("#key-count", "10000").await;
    browser.until(
        "10,000 keys in the explorer",
        20,
        "return document.querySelector('.summary .kicker')?.textContent.includes('Ring · 3 → 4 shards · 10,000 keys')",
    )
    .await;
    let explorer_moved: u64 = browser
        .eval("return document.querySelector('#moved-count').dataset.value")
        .await
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // The live tab: the database is in ring over 3 shards (version 1).
    browser.click("#tab-live").await;
    browser.until(
        "the database's layout",
        60,
        "return document.querySelector('#database-layout')?.textContent.startsWith('v1 · Ring over 3 shards')",
    )
    .await;
    // Put the explorer's own keys in the database: user_0 … user_9999.
    browser.click("#insert-explorer-keys").await;
    browser
        .until(
            "the explorer's keys inserted",
            30,
            "return Array.from(document.querySelectorAll('#activity li'))
             .some(li => li.textContent.startsWith('inserted the explorer\\'s 10,000 keys (user_0 … user_9999)'))",
        )
        .await;
    // In, the button and the hint give way to saying so.
    browser
        .until(
            "the keys said to be in",
            10,
            "return !!document.querySelector('#explorer-keys-in') && !document.querySelector('#insert-explorer-keys')",
        )
        .await;
    browser
        .until(
            "the rows counted",
            20,
            "return document.querySelector('#database-layout').textContent.endsWith('10,000 rows')",
        )
        .await;
    // Before applying, the page predicts with the core from the database's
    // layout: the same change as the explorer shows, so the same count.
    let predicted: u64 = browser
        .eval("return document.querySelector('#prediction').dataset.moved")
        .await
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(predicted, explorer_moved);
    let before = bridge.placement(&["s0", "s1", "s2"]);
    assert_eq!(before.len(), 10_000);
    // The core, natively, over the ids PostgreSQL holds.
    let ring3 = Layout::with_count(StrategyKind::Ring, 3).unwrap();
    let ring4 = Layout::with_count(StrategyKind::Ring, 4).unwrap();
    let router4 = ring4.build().unwrap();
    let expected = ecoshard_core::plan(
        &ring3.build().unwrap(),
        &router4,
        before.iter().map(|(user_id, _)| user_id.as_bytes()),
    );
    assert_eq!(expected.moved, predicted);
    browser.screenshot("live-rebalance-ready").await;

    // Apply, and follow the job the stream reports until it is done.
    browser.click("#apply-layout").await;
    let mut states = Vec::new();
    let mut caught_running = false;
    let finished = async || {
        let job = browser
            .eval(
                "const job = document.querySelector('#job');
                 return job ? [job.dataset.state, Number(job.dataset.moved), Number(job.dataset.total)] : null",
            )
            .await;
        let job = job.as_array()?;
        let state = job[0].as_str().unwrap().to_string();
        let (moved, total) = (job[1].as_u64().unwrap(), job[2].as_u64().unwrap());
        if states.last() != Some(&state) {
            states.push(state.clone());
        }
        if state == "running" && moved > total / 3 && moved < total && !caught_running {
            caught_running = true;
            browser.screenshot("live-rebalance-running").await;
        }
        (state == "done" || state == "failed").then_some(())
    };
    if wait_until(Duration::from_secs(120), finished)
        .await
        .is_none()
    {
        panic!("the job never finished: {states:?}");
    }
    assert_eq!(
        states.last().map(String::as_str),
        Some("done"),
        "{states:?}"
    );
    eprintln!(
        "job states seen by the page: {states:?} (progress caught mid-way: {caught_running})"
    );

    let planned = number(&browser.text("#planned-rows").await);
    let moved = number(&browser.text("#real-rows").await);
    let predicted_rows = browser.text("#predicted-rows").await;
    assert_eq!(browser.text("#moved-verdict").await, "✓ exactly as planned");
    assert_eq!(
        browser
            .eval("return document.querySelector('#prediction-note').dataset.agrees")
            .await,
        "true"
    );
    assert!(
        !predicted_rows.starts_with('≈'),
        "the same keys: no estimate but the count ({predicted_rows})"
    );

    // PostgreSQL: every row once, each in the shard the core says, and
    // exactly the planned ones changed shard.
    let after = bridge.placement(&["s0", "s1", "s2", "s3"]);
    assert_eq!(after.len(), 10_000, "no row lost or doubled");
    let before: std::collections::BTreeMap<_, _> = before.into_iter().collect();
    let mut changed = 0;
    for (user_id, shard) in &after {
        assert_eq!(
            &router4.locate_shard(user_id.as_bytes()).name,
            shard,
            "{user_id}"
        );
        if before[user_id] != *shard {
            changed += 1;
        }
    }
    assert_eq!(moved, changed, "the page's moved count is PostgreSQL's");
    assert_eq!(moved, planned);
    assert_eq!(planned, expected.moved);
    assert_eq!(number(&predicted_rows), planned);

    // The database is in the explorer's layout now: nothing left to apply.
    browser.until(
        "the new layout in force",
        20,
        "return document.querySelector('#database-layout').textContent.startsWith('v2 · Ring over 4 shards')
             && document.querySelector('#apply-layout').disabled
             && document.querySelector('#apply-layout').textContent === 'In force'",
    )
    .await;
    // Let the progress bar's transition finish.
    tokio::time::sleep(Duration::from_millis(600)).await;
    browser.screenshot("live-rebalance-done").await;

    // Rows that are not the explorer's keys (1,000 with a fresh prefix), and
    // a fifth shard: the explorer's prediction is now an estimate, and the
    // page says why it differs from the plan, which PostgreSQL still matches.
    browser.click("#insert-bulk").await;
    browser
        .until(
            "1,000 more rows counted",
            30,
            "return document.querySelector('#database-layout').textContent.endsWith('11,000 rows')",
        )
        .await;
    browser.click("#tab-explore").await;
    browser.click("#add-shard").await;
    browser.click("#tab-live").await;
    browser.until(
        "ring over 5 shards to apply",
        20,
        "return document.querySelector('#target-layout')?.textContent.startsWith('Ring over 5 shards')
             && !document.querySelector('#apply-layout').disabled",
    )
    .await;
    let shards4 = ["s0", "s1", "s2", "s3"];
    let before = bridge.placement(&shards4);
    assert_eq!(before.len(), 11_000);
    browser.click("#apply-layout").await;
    browser
        .until(
            "the second job done",
            120,
            "const job = document.querySelector('#job');
         return job && job.dataset.id !== '1' && job.dataset.state === 'done'",
        )
        .await;
    let planned = number(&browser.text("#planned-rows").await);
    let moved = number(&browser.text("#real-rows").await);
    let estimate = browser.text("#predicted-rows").await;
    assert!(estimate.starts_with("≈ "), "{estimate}");
    let note = browser.text("#prediction-note").await;
    assert!(
        note.contains("the plan counts the ids the database really holds"),
        "{note}"
    );
    let after = bridge.placement(&["s0", "s1", "s2", "s3", "s4"]);
    assert_eq!(after.len(), 11_000, "no row lost or doubled");
    let before: std::collections::BTreeMap<_, _> = before.into_iter().collect();
    let changed = after
        .iter()
        .filter(|(user_id, shard)| before[user_id] != *shard)
        .count() as u64;
    assert_eq!(moved, changed, "the page's moved count is PostgreSQL's");
    assert_eq!(moved, planned);
    tokio::time::sleep(Duration::from_millis(600)).await;
    browser.screenshot("live-rebalance-estimate").await;
    browser.close().await;
    drop(bridge);
}

/// `fetch` from the page, as JSON: `method` `path` with `body` (JSON text,
/// or `null`), answered as `[status, body]`.
async fn fetch_json(
    browser: &Browser,
    method: &str,
    path: &str,
    body: &str,
) -> (u64, serde_json::Value) {
    let answer = browser
        .eval(&format!(
            "const body = {body};
             return fetch('{path}', {{method: '{method}', headers: {{'content-type': 'application/json'}},
                                     body: body === null ? undefined : JSON.stringify(body)}})
                 .then(async answer => [answer.status, await answer.json()])"
        ))
        .await;
    (answer[0].as_u64().unwrap(), answer[1].clone())
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist`, the ecoshard binary, PostgreSQL and chromium: run `cargo xtask test e2e`"]
async fn loading_the_databases_layout_and_keys_shows_them_and_plans_as_the_core_does() {
    use ecoshard_core::Shard;
    use ecoshard_core::wire::LayoutView;

    let bridge = Bridge::start("sample", &[]).await;
    let browser = Browser::start(1440, 1500).await;
    browser.goto(&bridge.url).await;
    browser.wait_for_element("#load-database", 60).await;

    // The database: ring over eu ×2, us, ap (v2), and 20,000 users.
    let weighted = r#"{"strategy": "ring", "shards": [{"name": "eu", "weight": 2},
                       {"name": "us", "weight": 1}, {"name": "ap", "weight": 1}]}"#;
    let (status, job) = fetch_json(&browser, "PUT", "/api/layout", weighted).await;
    assert_eq!(status, 202, "{job}");
    browser
        .until(
            "the layout's job done",
            60,
            &format!(
                "return fetch('/api/rebalance/{}').then(a => a.json()).then(job => job.state === 'done')",
                job["id"]
            ),
        )
        .await;
    let (status, generated) = fetch_json(
        &browser,
        "POST",
        "/api/users/generate",
        r#"{"count": 20000, "prefix": "sm"}"#,
    )
    .await;
    assert_eq!(status, 201, "{generated}");
    // The sample's shares follow the row estimates: wait until they hold all.
    browser
        .until(
            "the row estimates",
            60,
            "return fetch('/api/stats').then(a => a.json())
                 .then(stats => stats.rows.reduce((sum, shard) => sum + shard.keys, 0) === 20000)",
        )
        .await;

    // What the page gets from GET /api/sample, kept for the comparison below.
    browser
        .eval(
            "window.samples = [];
             const fetched = window.fetch;
             window.fetch = function (request, init) {
                 const url = typeof request === 'string' ? request : request.url;
                 return fetched.call(this, request, init).then(answer => {
                     if (url.includes('/api/sample')) {
                         answer.clone().json().then(sample => window.samples.push(sample));
                     }
                     return answer;
                 });
             };
             return true",
        )
        .await;
    browser.click("#load-database").await;
    let loaded = browser
        .wait_for(
            "what the explorer loaded",
            30,
            "return document.querySelector('#loaded-database')?.textContent",
        )
        .await;
    assert_eq!(
        loaded,
        "Loaded: Ring over 3 shards (eu ×2, us, ap), 2,000 of 20,000 keys sampled from the \
         database, v2."
    );
    let shown = browser
        .eval(
            "return [document.querySelector('.strategy.selected .strategy-name').textContent,
                     Array.from(document.querySelectorAll('#shard-chips .chip'))
                         .map(chip => chip.textContent.replace('×', '').trim()),
                     document.querySelector('.summary .kicker').textContent]",
        )
        .await;
    assert!(shown[0].as_str().unwrap().starts_with("Ring"), "{shown}");
    assert_eq!(shown[1], serde_json::json!(["eu", "us", "ap"]), "{shown}");
    assert!(shown[2].as_str().unwrap().contains("2,000 keys"), "{shown}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    browser.screenshot("explorer-loaded-database").await;

    // The ids the explorer placed: 2,000 distinct ones the database holds,
    // each in the shard the loaded layout gives it.
    let samples = browser.eval("return window.samples").await;
    assert_eq!(samples.as_array().unwrap().len(), 1, "one sample asked");
    let ids: Vec<String> = serde_json::from_value(samples[0]["ids"].clone()).unwrap();
    assert_eq!(ids.len(), 2_000);
    let (_, view) = fetch_json(&browser, "GET", "/api/layout", "null").await;
    let view: LayoutView = serde_json::from_value(view).unwrap();
    let router = view.layout.build().unwrap();
    let stored: std::collections::BTreeMap<String, String> =
        bridge.placement(&["eu", "us", "ap"]).into_iter().collect();
    assert_eq!(stored.len(), 20_000);
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "no id sampled twice");
    for id in &ids {
        assert_eq!(
            stored.get(id),
            Some(&router.locate_shard(id.as_bytes()).name),
            "{id}"
        );
    }

    // A shard added in the explorer: its numbers are the core's plan over
    // those ids, from the database's layout to the same plus s3.
    browser.click("#add-shard").await;
    browser
        .until(
            "the explorer's next layout",
            20,
            "return document.querySelector('.summary .kicker')?.textContent.includes('3 → 4 shards')",
        )
        .await;
    let explorer_moved: u64 = browser
        .eval("return document.querySelector('#moved-count').dataset.value")
        .await
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut next = view.layout.clone();
    next.shards.push(Shard::new(view.layout.next_shard_name()));
    let expected = ecoshard_core::plan(
        &router,
        &next.build().unwrap(),
        ids.iter().map(|id| id.as_bytes()),
    );
    assert_eq!(expected.total, 2_000);
    assert!(expected.moved > 0);
    assert_eq!(explorer_moved, expected.moved);
    browser.close().await;
    drop(bridge);
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist`, the ecoshard binary, PostgreSQL and chromium: run `cargo xtask test e2e`"]
async fn the_explorers_keys_inserted_twice_are_said_to_be_in_and_nothing_changes() {
    const INSERTED: &str = "return Array.from(document.querySelectorAll('#activity li'))
         .map(li => li.textContent)
         .filter(text => text.includes('the explorer\\'s 2,000 keys'))";
    const TOTAL: &str = "SELECT (SELECT count(*) FROM shard_s0.users) + (SELECT count(*) FROM shard_s1.users) \
         + (SELECT count(*) FROM shard_s2.users)";
    let bridge = Bridge::start("twice", &[]).await;
    let browser = Browser::start(1440, 1500).await;
    browser.goto(&format!("{}#live", bridge.url)).await;
    browser.click("#insert-explorer-keys").await;
    browser
        .until(
            "the explorer's keys in",
            30,
            "return !!document.querySelector('#explorer-keys-in')",
        )
        .await;
    assert_eq!(bridge.psql(TOTAL), "2000");
    let layout_before = bridge.psql("SELECT max(version) FROM ecoshard.layout");

    // A new visit to the page offers the insert again; pressed, it says the
    // keys are in already, writes nothing and refuses nothing.
    browser.client.refresh().await.expect("reloading the page");
    browser.click("#insert-explorer-keys").await;
    let lines = browser
        .wait_for(
            "the second insert's answer",
            30,
            &format!(
                "const lines = ({}); return lines.length > 0 && lines",
                INSERTED.trim_start_matches("return ")
            ),
        )
        .await;
    assert_eq!(
        lines,
        serde_json::json!([
            "the explorer's 2,000 keys (user_0 … user_1999) are in the database already: nothing written"
        ])
    );
    browser
        .until(
            "the keys said to be in",
            10,
            "return !!document.querySelector('#explorer-keys-in')
                 && !document.querySelector('#insert-explorer-keys')",
        )
        .await;
    let page = browser.eval("return document.body.innerText").await;
    let page = page.as_str().unwrap();
    assert!(
        !page.contains("with the same keys, the explorer's prediction is the plan"),
        "the hint to insert them is gone:\n{page}"
    );
    let errors = browser
        .eval("return document.querySelectorAll('#activity li.error').length")
        .await;
    assert_eq!(errors, 0);
    assert_eq!(bridge.psql(TOTAL), "2000", "nothing written");
    assert_eq!(
        bridge.psql("SELECT max(version) FROM ecoshard.layout"),
        layout_before
    );
    browser.screenshot("live-explorer-keys-twice").await;
    browser.close().await;
    drop(bridge);
}
