//! `ecoshard serve` with a local cluster of its own, for the live-view
//! browser tests (`live.rs`, `live_nodes.rs` include this file): started on
//! free ports in this suite's ranges, stopped (and its PostgreSQL servers
//! with it) when dropped, passed or panicked; and PostgreSQL queried
//! directly, to check what the page shows.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{dist_dir, target_dir};

/// `ecoshard serve` on free ports with its own cluster directory; stopped
/// (SIGTERM, so it stops its PostgreSQL servers) and removed when dropped.
pub struct Bridge {
    child: Option<Child>,
    binary: PathBuf,
    http_port: u16,
    pub url: String,
    pg_port: u16,
    dir: PathBuf,
    extra_args: Vec<String>,
}

/// The first of `count` free ports from `base`, in steps of 10, staying
/// below `base + 100` (the live tests' ranges: HTTP 18500–18599, PostgreSQL
/// 26500–26599; the tests run one at a time). `ECOSHARD_TEST_PORT_OFFSET`
/// (0–9) shifts the search, for two checkouts' tests at once.
fn free_port_run(base: u16, count: u16) -> u16 {
    let offset = std::env::var("ECOSHARD_TEST_PORT_OFFSET")
        .ok()
        .and_then(|offset| offset.parse::<u16>().ok())
        .map_or(0, |offset| offset.min(9));
    let base = base + offset;
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
    pub fn start(name: &str, extra_args: &[&str]) -> Bridge {
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
    pub fn spawn(&mut self) {
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
    pub fn stop(&mut self) {
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
    pub fn psql(&self, sql: &str) -> String {
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

impl Bridge {
    /// Every user's shard as PostgreSQL holds them, over the shards named,
    /// as (user_id, shard) rows (a row found twice would appear twice).
    pub fn placement(&self, shards: &[&str]) -> Vec<(String, String)> {
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
