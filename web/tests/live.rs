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
}

fn free_port_run(base: u16, count: u16) -> u16 {
    (0..300)
        .map(|step| base + step * 10)
        .find(|port| {
            (0..count)
                .all(|offset| std::net::TcpListener::bind(("127.0.0.1", port + offset)).is_ok())
        })
        .expect("free ports for the test cluster")
}

impl Bridge {
    fn start() -> Bridge {
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
        let dir = std::env::temp_dir().join(format!("ecoshard-e2e-live-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut bridge = Bridge {
            child: None,
            binary,
            http_port,
            url: format!("http://127.0.0.1:{http_port}/"),
            pg_port,
            dir,
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
    let mut bridge = Bridge::start();
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
