//! "Load a data set" in a real browser against a real bridge (`ecoshard
//! serve` and its local cluster): a click writes 100,000 users with `COPY`,
//! the page says how many and how fast, PostgreSQL holds them, and the
//! database's row count on the page reaches them.
//!
//! Needs `cargo xtask dist`, the `ecoshard` binary, PostgreSQL and Chromium,
//! so it is `#[ignore]`d in plain `cargo test`; `cargo xtask test e2e` runs it.

// Native only: the tests drive a browser from the host.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/bridge.rs"]
mod bridge;
mod support;

use bridge::Bridge;
use support::Browser;

#[tokio::test]
#[ignore = "needs `cargo xtask dist`, the ecoshard binary, PostgreSQL and chromium: run `cargo xtask test e2e`"]
async fn loading_a_data_set_writes_a_hundred_thousand_rows_and_the_page_counts_them() {
    let mut bridge = Bridge::start("load", &[]).await;
    let browser = Browser::start(1440, 1500).await;
    browser.goto(&format!("{}#live", bridge.url)).await;
    browser
        .wait_for(
            "the live stream",
            30,
            "const b = document.querySelector('#bridge-status');
             return b && b.classList.contains('online') && b.textContent",
        )
        .await;
    browser.click("#load-100000").await;
    let inserted = browser
        .wait_for(
            "the data set",
            60,
            "return document.querySelector('#load-outcome')?.dataset.inserted",
        )
        .await;
    assert_eq!(inserted, "100000");
    let outcome = browser
        .eval("return document.querySelector('#load-outcome').textContent")
        .await;
    let outcome = outcome.as_str().unwrap();
    assert!(
        outcome.starts_with("Wrote 100,000 users (") && outcome.contains(" rows/s."),
        "{outcome}"
    );
    let stored = bridge.psql(
        "SELECT (SELECT count(*) FROM shard_s0.users) + (SELECT count(*) FROM shard_s1.users) \
         + (SELECT count(*) FROM shard_s2.users)",
    );
    assert_eq!(stored, "100000", "the rows in PostgreSQL");
    // The page's row count (the servers' estimate, a second to ~10 s behind).
    let shown = browser
        .wait_for(
            "the page's row count",
            60,
            "const text = document.querySelector('#database-layout')?.textContent || '';
             return text.includes('100,000 rows') && text",
        )
        .await;
    assert!(shown.as_str().unwrap().contains("100,000 rows"), "{shown}");
    bridge.stop();
}
