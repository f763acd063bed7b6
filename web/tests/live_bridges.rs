//! The live view through a load balancer, as `cargo xtask demo --bridges 2`
//! runs it: one local cluster, a first `ecoshard serve` that starts it, a
//! second that joins it, NGINX in front of both (the bridge suite's helper,
//! `support/balanced.rs`); the page opened at NGINX's address lists both
//! bridges, live, one of them the page's own; the joined one killed, the
//! page (its stream through NGINX on the first if it was on the killed
//! one) shows it lapsed and says so in the activity.
//!
//! Needs what `live.rs` needs, and Debian's nginx; `cargo xtask test e2e`
//! runs it.

// Native only: the tests drive a browser from the host.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/balanced.rs"]
mod balanced;
#[path = "support/bridge.rs"]
mod bridge;
mod support;

use std::collections::BTreeSet;

use balanced::balancer::{Balancer, call};
use bridge::Bridge;
use support::{Browser, free_ports};

#[tokio::test]
#[ignore = "needs `cargo xtask dist`, the ecoshard binary, PostgreSQL, nginx and chromium: run `cargo xtask test e2e`"]
async fn the_page_through_the_load_balancer_shows_both_bridges() {
    let first = Bridge::start("bridges", &["--name", "bridge-1"]).await;
    let mut joined = first.join(&["--name", "bridge-2"]).await;
    let balancer = Balancer::start(
        &format!("127.0.0.1:{}", free_ports(18_500, 1)),
        &[first.addr(), joined.addr()],
    );
    // Requests through NGINX reach both bridges: each answer names its own.
    let answered: BTreeSet<String> = (0..10)
        .filter_map(|_| call(&balancer.addr, "GET", "/api/health", None)?.bridge)
        .collect();
    assert_eq!(
        answered,
        BTreeSet::from(["bridge-1".to_string(), "bridge-2".to_string()])
    );

    let browser = Browser::start(1440, 1200).await;
    browser
        .goto(&format!("http://{}/#live", balancer.addr))
        .await;
    browser
        .until(
            "both bridges listed and live, every node up and each standby streaming",
            90,
            "const bridges = Array.from(document.querySelectorAll('#bridges .bridge'));
             const nodes = Array.from(document.querySelectorAll('#topology .node[data-node]'));
             return bridges.length === 2 && bridges.every(b => b.dataset.live === 'true')
                 && nodes.length === 3 && nodes.every(n => n.dataset.up === 'true')
                 && nodes.filter(n => n.dataset.role === 'standby')
                      .every(n => n.querySelector('.node-metrics').textContent.includes('streaming'));",
        )
        .await;
    let listed = browser
        .eval(
            "return Array.from(document.querySelectorAll('#bridges .bridge'))
                 .map(b => [b.dataset.bridge, b.querySelector('.node-role').textContent]);",
        )
        .await;
    let address = |bridge: &Bridge| format!("{} · routes by v1 (in force)", bridge.addr());
    assert_eq!(
        listed,
        serde_json::json!([
            ["bridge-1", address(&first)],
            ["bridge-2", address(&joined)]
        ])
    );
    // Exactly one is the bridge streaming to this page; no job, no runner.
    let this = browser
        .eval("return Array.from(document.querySelectorAll('#bridges .bridge.is-this')).map(b => b.dataset.bridge);")
        .await;
    assert_eq!(this.as_array().map(Vec::len), Some(1), "{this}");
    assert_eq!(
        browser.text("#bridges .bridge.is-this .tag").await,
        "this bridge"
    );
    let heartbeats = browser
        .eval("return Array.from(document.querySelectorAll('#bridges .bridge-heartbeat')).map(h => h.textContent);")
        .await;
    for heartbeat in heartbeats.as_array().unwrap() {
        let text = heartbeat.as_str().unwrap();
        assert!(
            text.starts_with("heartbeat ") && text.ends_with(" s ago"),
            "{text}"
        );
    }
    browser.screenshot("live-two-bridges").await;

    joined.kill();
    browser
        .until(
            "bridge-2 lapsed, bridge-1 live and the page's own",
            60,
            "const card = name => document.querySelector(`#bridges .bridge[data-bridge=\"${name}\"]`);
             return card('bridge-2')?.dataset.live === 'false' && card('bridge-1')?.dataset.live === 'true'
                 && card('bridge-1').classList.contains('is-this');",
        )
        .await;
    assert_eq!(
        browser
            .text("#bridges .bridge[data-bridge=\"bridge-2\"] .pill")
            .await,
        "lapsed"
    );
    browser
        .until(
            "the lapse in the activity",
            10,
            "return Array.from(document.querySelectorAll('#activity li'))
                 .some(li => li.textContent.startsWith('bridge bridge-2 lapsed'));",
        )
        .await;
    browser.screenshot("live-two-bridges-one-lapsed").await;
    browser.close().await;
}
