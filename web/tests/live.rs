//! The live view in a real browser against a real bridge: `ecoshard serve`
//! starts its local cluster (a PostgreSQL primary and two streaming standbys)
//! and serves the built page; the test uses the page as a person would and
//! checks the database directly.
//!
//! Needs `cargo xtask dist`, the `ecoshard` binary (`ECOSHARD_BIN`, else
//! `<target>/debug/ecoshard`), PostgreSQL's server binaries and Chromium, so
//! it is `#[ignore]`d in plain `cargo test`; `cargo xtask test e2e` runs it.

// Native only: the tests drive a browser from the host.
#![cfg(not(target_arch = "wasm32"))]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Browser, dist_dir, target_dir};

/// `ecoshard serve` on free ports with its own cluster directory; stopped
/// (SIGTERM, so it stops its PostgreSQL servers) and removed when dropped.
struct Bridge {
    child: Option<Child>,
    binary: PathBuf,
    http_port: u16,
    url: String,
    pg_port: u16,
    dir: PathBuf,
    extra_args: Vec<String>,
}

/// The first of `count` free ports from `base`, in steps of 10, staying
/// below `base + 100` (this file's ranges: HTTP 18500–18599, PostgreSQL
/// 26500–26599; the tests run one at a time).
fn free_port_run(base: u16, count: u16) -> u16 {
    (0..10)
        .map(|step| base + step * 10)
        .find(|port| {
            (0..count)
                .all(|offset| std::net::TcpListener::bind(("127.0.0.1", port + offset)).is_ok())
        })
        .expect("free ports for the test cluster")
}

impl Bridge {
    /// `ecoshard serve` with its own cluster in a directory named after
    /// `name`, with `extra_args` (`--auto-failover`, `--rebalance-batch N`…).
    fn start(name: &str, extra_args: &[&str]) -> Bridge {
        let binary = std::env::var_os("ECOSHARD_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| target_dir().join("debug").join("ecoshard"));
        assert!(
            binary.is_file(),
            "{} is missing: build the bridge first (cargo build -p ecoshard-bridge)",
            binary.display()
        );
        let http_port = free_port_run(18_500, 1);
        let pg_port = free_port_run(26_500, 3);
        let dir =
            std::env::temp_dir().join(format!("ecoshard-e2e-live-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut bridge = Bridge {
            child: None,
            binary,
            http_port,
            url: format!("http://127.0.0.1:{http_port}/"),
            pg_port,
            dir,
            extra_args: extra_args.iter().map(|arg| arg.to_string()).collect(),
        };
        bridge.spawn();
        bridge
    }

    /// Starts `ecoshard serve` (reusing the cluster directory) and waits
    /// until it answers.
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("bridge.log"))
            .unwrap();
        let child = Command::new(&self.binary)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{}", self.http_port),
            ])
            .arg("--data-dir")
            .arg(self.dir.join("cluster"))
            .args(["--pg-port", &self.pg_port.to_string()])
            .arg("--web-dir")
            .arg(dist_dir())
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting ecoshard serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.healthy() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("bridge.log")).unwrap_or_default();
                panic!("the bridge did not become healthy; its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Stops the bridge as Ctrl-C would (it stops its PostgreSQL servers too).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn healthy(&self) -> bool {
        use std::io::{Read, Write};
        let port = self.url.trim_end_matches('/').rsplit(':').next().unwrap();
        let Ok(mut stream) = std::net::TcpStream::connect(format!("127.0.0.1:{port}")) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = "GET /api/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.1 200")
    }

    /// A query on the primary through psql, as the `ecoshard` role.
    fn psql(&self, sql: &str) -> String {
        let psql = psql_binary();
        let output = Command::new(&psql)
            .args([
                "-X",
                "-A",
                "-t",
                "-h",
                "127.0.0.1",
                "-p",
                &self.pg_port.to_string(),
                "-U",
                "ecoshard",
                "-d",
                "ecomarket",
                "-c",
                sql,
            ])
            .env("PGPASSFILE", self.dir.join("cluster").join("pgpass"))
            .output()
            .expect("running psql");
        assert!(
            output.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}

fn psql_binary() -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL is installed");
    versions
        .flatten()
        .map(|version| version.path().join("bin/psql"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| Path::new("psql").to_path_buf())
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist`, the ecoshard binary, PostgreSQL and chromium: run `cargo xtask test e2e`"]
async fn live_view_streams_lag_inserts_rows_and_shows_reads() {
    let mut bridge = Bridge::start("traffic", &[]);
    let browser = Browser::start(1440, 1500).await;
    browser
        .client
        .goto(&format!("{}#live", bridge.url))
        .await
        .expect("loading the page from the bridge");

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
    browser
        .wait_for(
            "read counters",
            10,
            "return Array.from(document.querySelectorAll('#read-counters .bar-row'))
                 .some(row => Number(row.querySelector('.bar-count').textContent.replace(/,/g, '')) > 0)",
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
    let writes = || async {
        let text = browser
            .eval("return document.querySelector('#traffic .card-head .small').textContent")
            .await;
        text.as_str()
            .unwrap()
            .split(" writes")
            .next()
            .unwrap()
            .replace(',', "")
            .parse::<u64>()
            .unwrap()
    };
    let before = writes().await;
    browser.click("#steady-toggle").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while writes().await < before + 10 {
        assert!(Instant::now() < deadline, "steady inserts did not arrive");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
    bridge.spawn();
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

impl Bridge {
    /// Every user's shard as PostgreSQL holds them, over the shards named,
    /// as (user_id, shard) rows (a row found twice would appear twice).
    fn placement(&self, shards: &[&str]) -> Vec<(String, String)> {
        let sql = shards
            .iter()
            .map(|shard| format!("SELECT '{shard}', user_id FROM \"shard_{shard}\".users"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        self.psql(&sql)
            .lines()
            .map(|line| {
                let (shard, user_id) = line.split_once('|').expect("shard|user_id");
                (user_id.to_string(), shard.to_string())
            })
            .collect()
    }
}

/// A number as the page prints it (`2,330`, `≈ 2,330`).
fn number(value: &serde_json::Value) -> u64 {
    let text: String = value
        .as_str()
        .unwrap_or_else(|| panic!("not text: {value}"))
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    text.parse()
        .unwrap_or_else(|_| panic!("not a number: {value}"))
}

/// Waits until `script` is true, with the page's text in the panic.
async fn until(browser: &Browser, what: &str, seconds: u64, script: &str) {
    browser.wait_for(what, seconds, script).await;
}

async fn text(browser: &Browser, css: &str) -> String {
    browser
        .eval(&format!(
            "return document.querySelector({})?.textContent ?? ''",
            serde_json::Value::String(css.to_string())
        ))
        .await
        .as_str()
        .unwrap()
        .to_string()
}

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
    let header = text(browser, "#traffic .card-head .small").await;
    let before = header
        .split(" failed reads")
        .next()
        .and_then(|head| head.rsplit(" · ").next())
        .unwrap_or_else(|| panic!("no failed reads in {header:?}"));
    before.replace(',', "").trim().parse().unwrap()
}

/// Waits for the stream, three nodes up and both standbys streaming.
async fn wait_for_a_healthy_cluster(browser: &Browser) {
    until(
        browser,
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
async fn applying_the_explorers_layout_moves_exactly_the_planned_rows() {
    use ecoshard_core::{Layout, StrategyKind};

    // Two rows per transaction: the job takes long enough (a second or
    // two) for the stream to show it moving.
    let bridge = Bridge::start("apply", &["--rebalance-batch", "2"]);
    let browser = Browser::start(1440, 1500).await;
    browser
        .client
        .goto(&bridge.url)
        .await
        .expect("loading the page from the bridge");

    // The explorer: ring, 3 → 4 shards (its opening change), over 10,000 keys.
    until(
        &browser,
        "the explorer",
        30,
        "return document.querySelector('#moved-count') !== null",
    )
    .await;
    browser.enter("#key-count", "10000").await;
    until(
        &browser,
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
    until(
        &browser,
        "the database's layout",
        60,
        "return document.querySelector('#database-layout')?.textContent.startsWith('v1 · Ring over 3 shards')",
    )
    .await;
    // Put the explorer's own keys in the database: user_0 … user_9999.
    browser.click("#insert-explorer-keys").await;
    until(
        &browser,
        "the explorer's keys inserted",
        30,
        "return Array.from(document.querySelectorAll('#activity li'))
             .some(li => li.textContent.startsWith('inserted 10,000 users (user_0 …)'))",
    )
    .await;
    until(
        &browser,
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
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = browser
            .eval(
                "const job = document.querySelector('#job');
                 return job ? [job.dataset.state, Number(job.dataset.moved), Number(job.dataset.total)] : null",
            )
            .await;
        if let Some(job) = job.as_array() {
            let state = job[0].as_str().unwrap().to_string();
            let (moved, total) = (job[1].as_u64().unwrap(), job[2].as_u64().unwrap());
            if states.last() != Some(&state) {
                states.push(state.clone());
            }
            if state == "running" && moved > total / 3 && moved < total && !caught_running {
                caught_running = true;
                browser.screenshot("live-rebalance-running").await;
            }
            if state == "done" || state == "failed" {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the job never finished: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        states.last().map(String::as_str),
        Some("done"),
        "{states:?}"
    );
    eprintln!(
        "job states seen by the page: {states:?} (progress caught mid-way: {caught_running})"
    );

    let planned = number(
        &browser
            .eval("return document.querySelector('#planned-rows').textContent")
            .await,
    );
    let moved = number(
        &browser
            .eval("return document.querySelector('#real-rows').textContent")
            .await,
    );
    let predicted_rows = text(&browser, "#predicted-rows").await;
    assert_eq!(
        text(&browser, "#moved-verdict").await,
        "✓ exactly as planned"
    );
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
    assert_eq!(number(&serde_json::Value::String(predicted_rows)), planned);

    // The database is in the explorer's layout now: nothing left to apply.
    until(
        &browser,
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
    browser.close().await;
    drop(bridge);
}

#[tokio::test]
#[ignore = "needs `cargo xtask dist`, the ecoshard binary, PostgreSQL and chromium: run `cargo xtask test e2e`"]
async fn nodes_stopped_from_the_page_show_down_reads_reroute_and_writes_get_503s() {
    let bridge = Bridge::start("nodes", &[]);
    let browser = Browser::start(1440, 1500).await;
    browser
        .client
        .goto(&format!("{}#live", bridge.url))
        .await
        .expect("loading the page from the bridge");
    wait_for_a_healthy_cluster(&browser).await;
    // Auto-failover is off here, and the page says so.
    assert!(
        text(&browser, "#cluster-settings")
            .await
            .contains("auto-failover off")
    );
    browser.enter("#insert-id", "e2e_known").await;
    until(
        &browser,
        "the insert",
        20,
        "return document.querySelector('#last-insert')?.textContent.startsWith('e2e_known')",
    )
    .await;

    // Steady traffic: 10 inserts and 10 read-backs a second.
    browser.click("#steady-toggle").await;
    until(
        &browser,
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
    until(
        &browser,
        "standby-1 down",
        30,
        "return document.querySelector('.node[data-node=\"standby-1\"]').dataset.up === 'false'",
    )
    .await;
    until(
        &browser,
        "the bridge's answer in the log",
        10,
        "return Array.from(document.querySelectorAll('#activity li'))
             .some(li => li.textContent.startsWith('stopped standby-1'))",
    )
    .await;
    until(
        &browser,
        "reads rerouted",
        30,
        "const rate = name => Number(document.querySelector(`.node[data-node=\"${name}\"] .reads-rate`).dataset.rate);
         return rate('standby-1') === 0 && rate('standby-2') > 0",
    )
    .await;
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..20 {
        served.insert(text(&browser, "#served-by").await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!served.contains("standby-1"), "{served:?}");
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
    until(
        &browser,
        "standby-1 up",
        60,
        "return document.querySelector('.node[data-node=\"standby-1\"]').dataset.up === 'true'",
    )
    .await;
    until(
        &browser,
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
    until(
        &browser,
        "the primary-down banner with refused writes",
        30,
        "return document.querySelector('#primary-banner') !== null
             && document.querySelector('#writes-refused') !== null",
    )
    .await;
    until(
        &browser,
        "a 503 in the log",
        10,
        "return Array.from(document.querySelectorAll('#activity li.error'))
             .some(li => li.textContent.startsWith('Insert refused (503 primary_unavailable)'))",
    )
    .await;
    browser.click("#steady-toggle").await;
    // Reads go on from the standbys.
    browser.enter("#read-id", "e2e_known").await;
    until(
        &browser,
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
    until(
        &browser,
        "the primary up and the banner gone",
        60,
        "return document.querySelector('.node[data-node=\"primary\"]').dataset.up === 'true'
             && document.querySelector('#primary-banner') === null",
    )
    .await;
    browser.enter("#insert-id", "e2e_after_restart").await;
    until(
        &browser,
        "an insert after the restart",
        30,
        "return document.querySelector('#last-insert')?.textContent.startsWith('e2e_after_restart → shard ')",
    )
    .await;
    assert!(
        text(&browser, "#last-insert")
            .await
            .contains(" on primary ")
    );

    // Bounded-load: the page warns before sending, and shows the bridge's
    // refusal when sent anyway; the database keeps its layout.
    browser.click("#tab-explore").await;
    browser.click("#strategy-bounded-load").await;
    browser.click("#tab-live").await;
    until(
        &browser,
        "the bounded-load warning",
        10,
        "return document.querySelector('#bounded-warning') !== null",
    )
    .await;
    browser.click("#apply-layout").await;
    until(
        &browser,
        "the refusal",
        20,
        "return document.querySelector('#apply-refusal')?.dataset.code === 'unsupported_strategy'",
    )
    .await;
    let refusal = text(&browser, "#apply-refusal").await;
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
    let bridge = Bridge::start("failover", &["--auto-failover"]);
    let browser = Browser::start(1440, 1500).await;
    browser
        .client
        .goto(&format!("{}#live", bridge.url))
        .await
        .expect("loading the page from the bridge");
    wait_for_a_healthy_cluster(&browser).await;
    assert!(
        text(&browser, "#cluster-settings")
            .await
            .contains("auto-failover on")
    );
    assert_eq!(node_data(&browser, "primary", "role").await, "primary");
    browser.click("#steady-toggle").await;
    until(
        &browser,
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
    until(
        &browser,
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
        text(&browser, &format!(".node[data-node=\"{promoted}\"] .tag")).await,
        "promoted"
    );
    assert_eq!(
        text(&browser, ".node[data-node=\"primary\"] .tag").await,
        "former primary"
    );
    // The promoted node is drawn as the primary: first, before the arrow.
    let first = browser
        .eval("return document.querySelector('.nodes > .node').dataset.node")
        .await;
    assert_eq!(first, promoted.as_str());
    // Writes go to it.
    until(
        &browser,
        "steady inserts on the new primary",
        30,
        &format!(
            "return document.querySelector('#last-insert')?.textContent.includes(' on {promoted} ')"
        ),
    )
    .await;
    assert!(text(&browser, "#last-failover").await.starts_with(&format!(
        "failover: {promoted} promoted in place of primary"
    )));
    browser.screenshot("live-failover").await;

    // The old primary, started from the page, comes back as a standby.
    browser
        .click(".node[data-node=\"primary\"] [data-action=\"start\"]")
        .await;
    until(
        &browser,
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
