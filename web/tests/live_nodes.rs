//! Failure simulation from the page against a real bridge and its local
//! cluster: a standby stopped and started (marked down, reads reroute, none
//! fails), the primary stopped (writes answer 503, the page counts them),
//! bounded-load refused, with `--auto-failover` a crashed primary
//! replaced by a standby and back as a standby itself — the roles always as
//! the bridge reports them — and, on a bridge with a token, a page opened by
//! the printed URL that keeps the token for its changes.
//!
//! Needs what `live.rs` needs; `cargo xtask test e2e` runs it.

// Native only: the tests drive a browser from the host.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/bridge.rs"]
mod bridge;
mod support;

use std::time::Duration;

use bridge::Bridge;
use support::{Browser, number};

/// `data-{name}` of the node card of `node`.
async fn node_data(browser: &Browser, node: &str, name: &str) -> String {
    browser
        .eval(&format!(
            "return document.querySelector('.node[data-node=\"{node}\"]')?.dataset['{name}'] ?? ''"
        ))
        .await
        .as_str()
        .unwrap()
        .to_string()
}

/// Reads that failed since the bridge started, as the traffic card says.
async fn failed_reads(browser: &Browser) -> u64 {
    let header = browser.text("#traffic .card-head .small").await;
    let before = header
        .split(" failed reads")
        .next()
        .and_then(|head| head.rsplit(" · ").next())
        .unwrap_or_else(|| panic!("no failed reads in {header:?}"));
    number(before)
}

/// Steady-traffic read-backs acknowledged, as the page counts them.
async fn read_backs(browser: &Browser) -> u64 {
    let status = browser.text("#steady-status").await;
    let counted = status
        .split(" read-backs")
        .next()
        .and_then(|head| head.rsplit(" and ").next())
        .unwrap_or_else(|| panic!("no read-backs in {status:?}"));
    number(counted)
}

/// Waits for the stream, three nodes up and both standbys streaming.
async fn wait_for_a_healthy_cluster(browser: &Browser) {
    browser
        .until(
            "three nodes up, both standbys streaming",
            60,
            "const nodes = Array.from(document.querySelectorAll('.node'));
         return nodes.length === 3 && nodes.every(n => n.dataset.up === 'true')
             && nodes.filter(n => n.dataset.role === 'standby')
                  .every(n => n.querySelector('.node-metrics').textContent.includes('streaming'));",
        )
        .await;
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist`, the ecoshard binary, PostgreSQL and chromium: run `cargo xtask test e2e`"]
async fn nodes_stopped_from_the_page_show_down_reads_reroute_and_writes_get_503s() {
    let bridge = Bridge::start("nodes", &[]).await;
    let browser = Browser::start(1440, 1500).await;
    browser.goto(&format!("{}#live", bridge.url)).await;
    wait_for_a_healthy_cluster(&browser).await;
    // Auto-failover is off here, and the page says so.
    assert!(
        browser
            .text("#cluster-settings")
            .await
            .contains("auto-failover off")
    );
    browser.enter("#insert-id", "e2e_known").await;
    browser
        .until(
            "the insert",
            20,
            "return document.querySelector('#last-insert')?.textContent.startsWith('e2e_known')",
        )
        .await;

    // Steady traffic: 10 inserts and 10 read-backs a second.
    browser.click("#steady-toggle").await;
    browser.until(
        "reads on both standbys",
        30,
        "return ['standby-1', 'standby-2'].every(name =>
             Number(document.querySelector(`.node[data-node=\"${name}\"] .reads-rate`).dataset.rate) > 0)",
    )
    .await;
    let failed_before = failed_reads(&browser).await;

    // Stop standby-1: marked down, its reads go to the others, none fail.
    browser
        .click(".node[data-node=\"standby-1\"] [data-action=\"stop\"]")
        .await;
    browser.until(
        "standby-1 down",
        30,
        "return document.querySelector('.node[data-node=\"standby-1\"]').dataset.up === 'false'",
    )
    .await;
    browser
        .until(
            "the bridge's answer in the log",
            10,
            "return Array.from(document.querySelectorAll('#activity li'))
             .some(li => li.textContent.startsWith('stopped standby-1'))",
        )
        .await;
    browser.until(
        "reads rerouted",
        30,
        "const rate = name => Number(document.querySelector(`.node[data-node=\"${name}\"] .reads-rate`).dataset.rate);
         return rate('standby-1') === 0 && rate('standby-2') > 0",
    )
    .await;
    let read_backs_before = read_backs(&browser).await;
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..20 {
        served.insert(browser.text("#served-by").await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!served.contains("standby-1"), "{served:?}");
    // Reads went on meanwhile: what was seen was not one stale answer.
    assert!(
        read_backs(&browser).await > read_backs_before,
        "no read-back while standby-1 was down"
    );
    assert_eq!(
        failed_reads(&browser).await,
        failed_before,
        "no read failed"
    );
    browser.screenshot("live-standby-down").await;

    // Start it again: up, and back in the read rotation.
    browser
        .click(".node[data-node=\"standby-1\"] [data-action=\"start\"]")
        .await;
    browser
        .until(
            "standby-1 up",
            60,
            "return document.querySelector('.node[data-node=\"standby-1\"]').dataset.up === 'true'",
        )
        .await;
    browser.until(
        "standby-1 serving reads again",
        60,
        "return Number(document.querySelector('.node[data-node=\"standby-1\"] .reads-rate').dataset.rate) > 0",
    )
    .await;
    assert_eq!(
        failed_reads(&browser).await,
        failed_before,
        "no read failed"
    );

    // Stop the primary: writes answer 503, the page says why and counts them.
    browser
        .click(".node[data-node=\"primary\"] [data-action=\"stop\"]")
        .await;
    browser
        .until(
            "the primary-down banner with refused writes",
            30,
            "return document.querySelector('#primary-banner') !== null
             && document.querySelector('#writes-refused') !== null",
        )
        .await;
    browser
        .until(
            "a 503 in the log",
            10,
            "return Array.from(document.querySelectorAll('#activity li.error'))
             .some(li => li.textContent.startsWith('Insert refused (503 primary_unavailable)'))",
        )
        .await;
    browser.click("#steady-toggle").await;
    // Reads go on from the standbys.
    browser.enter("#read-id", "e2e_known").await;
    browser.until(
        "a read while the primary is down",
        20,
        "return document.querySelector('#last-read')?.textContent.startsWith('e2e_known served by standby-')",
    )
    .await;
    browser.screenshot("live-primary-down").await;

    // Start it again: writes go through.
    browser
        .click(".node[data-node=\"primary\"] [data-action=\"start\"]")
        .await;
    browser
        .until(
            "the primary up and the banner gone",
            60,
            "return document.querySelector('.node[data-node=\"primary\"]').dataset.up === 'true'
             && document.querySelector('#primary-banner') === null",
        )
        .await;
    browser.enter("#insert-id", "e2e_after_restart").await;
    browser.until(
        "an insert after the restart",
        30,
        "return document.querySelector('#last-insert')?.textContent.startsWith('e2e_after_restart → shard ')",
    )
    .await;
    assert!(browser.text("#last-insert").await.contains(" on primary "));

    // Bounded-load: the page warns before sending, and shows the bridge's
    // refusal when sent anyway; the database keeps its layout.
    browser.click("#tab-explore").await;
    browser.click("#strategy-bounded-load").await;
    browser.click("#tab-live").await;
    browser.wait_for_element("#bounded-warning", 10).await;
    browser.click("#apply-layout").await;
    browser.until(
        "the refusal",
        20,
        "return document.querySelector('#apply-refusal')?.dataset.code === 'unsupported_strategy'",
    )
    .await;
    let refusal = browser.text("#apply-refusal").await;
    assert!(
        refusal.contains("400 unsupported_strategy")
            && refusal.contains("Bounded-load is not applied to the database")
            && refusal.contains("Nothing changed in the database."),
        "{refusal}"
    );
    assert_eq!(bridge.psql("SELECT count(*) FROM ecoshard.layout"), "1");
    browser.screenshot("live-bounded-load-refused").await;
    browser.close().await;
    drop(bridge);
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist`, the ecoshard binary, PostgreSQL and chromium: run `cargo xtask test e2e`"]
async fn with_auto_failover_a_crashed_primary_is_replaced_and_comes_back_as_a_standby() {
    let bridge = Bridge::start("failover", &["--auto-failover"]).await;
    let browser = Browser::start(1440, 1500).await;
    browser.goto(&format!("{}#live", bridge.url)).await;
    wait_for_a_healthy_cluster(&browser).await;
    assert!(
        browser
            .text("#cluster-settings")
            .await
            .contains("auto-failover on")
    );
    assert_eq!(node_data(&browser, "primary", "role").await, "primary");
    browser.click("#steady-toggle").await;
    browser
        .until(
            "steady inserts",
            20,
            "return document.querySelector('#last-insert')?.textContent.includes(' on primary ')",
        )
        .await;

    // Crash the primary: a standby is promoted, and the page shows the roles
    // the bridge reports, whatever the nodes are called.
    browser
        .click(".node[data-node=\"primary\"] [data-action=\"crash\"]")
        .await;
    let promoted = browser
        .wait_for(
            "the failover",
            60,
            "const line = document.querySelector('#last-failover');
             return line && line.dataset.from === 'primary' && line.dataset.to",
        )
        .await;
    let promoted = promoted.as_str().unwrap().to_string();
    assert!(promoted.starts_with("standby-"), "{promoted}");
    browser.until(
        "the roles swapped",
        30,
        &format!(
            "const node = name => document.querySelector(`.node[data-node=\"${{name}}\"]`);
             return node('{promoted}').dataset.role === 'primary' && node('{promoted}').dataset.up === 'true'
                 && node('primary').dataset.role === 'standby' && node('primary').dataset.up === 'false'"
        ),
    )
    .await;
    assert_eq!(
        browser
            .text(&format!(".node[data-node=\"{promoted}\"] .tag"))
            .await,
        "promoted"
    );
    assert_eq!(
        browser.text(".node[data-node=\"primary\"] .tag").await,
        "former primary"
    );
    // The promoted node is drawn as the primary: first, before the arrow.
    let first = browser
        .eval("return document.querySelector('.nodes > .node').dataset.node")
        .await;
    assert_eq!(first, promoted.as_str());
    // Writes go to it.
    browser.until(
        "steady inserts on the new primary",
        30,
        &format!(
            "return document.querySelector('#last-insert')?.textContent.includes(' on {promoted} ')"
        ),
    )
    .await;
    assert!(browser.text("#last-failover").await.starts_with(&format!(
        "failover: {promoted} promoted in place of primary"
    )));
    browser.screenshot("live-failover").await;

    // The old primary, started from the page, comes back as a standby.
    browser
        .click(".node[data-node=\"primary\"] [data-action=\"start\"]")
        .await;
    browser
        .until(
            "the old primary back as a standby",
            90,
            "const node = document.querySelector('.node[data-node=\"primary\"]');
         return node.dataset.up === 'true' && node.dataset.role === 'standby'
             && node.querySelector('.node-metrics').textContent.includes('streaming')",
        )
        .await;
    browser.click("#steady-toggle").await;
    browser.screenshot("live-failover-old-primary-back").await;
    browser.close().await;
    drop(bridge);
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist`, the ecoshard binary, PostgreSQL and chromium: run `cargo xtask test e2e`"]
async fn the_page_opened_by_the_printed_url_keeps_the_token_for_its_changes() {
    const TOKEN: &str = "e2e-token-0123456789abcdef";
    let bridge = Bridge::start("token", &["--token", TOKEN]).await;
    let browser = Browser::start(1440, 1500).await;
    // The URL as the bridge prints it: the token in the fragment.
    browser.goto(&format!("{}#token={TOKEN}", bridge.url)).await;
    browser.click("#tab-live").await;
    wait_for_a_healthy_cluster(&browser).await;
    let address = browser.eval("return location.href").await;
    assert_eq!(address, format!("{}#live", bridge.url).as_str());
    // A change from the page carries the token.
    browser.enter("#insert-id", "e2e_token").await;
    browser
        .until(
            "the insert",
            20,
            "return document.querySelector('#last-insert')?.textContent.startsWith('e2e_token')",
        )
        .await;
    // The same change without it is refused.
    let refused = browser
        .eval(
            "return fetch('/api/users', {method: 'POST', headers: {'content-type': 'application/json'},
                                         body: JSON.stringify({user_id: 'e2e_no_token'})})
                   .then(answer => answer.status)",
        )
        .await;
    assert_eq!(refused, 401);
    browser.close().await;
    drop(bridge);
}
