//! `ecoshard serve` with a local cluster of its own, for the live-view
//! browser tests (`live.rs`, `live_nodes.rs` include this file): started on
//! free ports in this suite's ranges ([`free_ports`]), stopped (and its
//! PostgreSQL servers with it) when dropped, passed or panicked; a second
//! bridge joining its cluster ([`Bridge::join`]); and PostgreSQL queried
//! directly, to check what the page shows.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{dist_dir, ecoshard_binary, free_ports, wait_until};

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
    /// Whether dropping it removes the cluster directory (not a joined
    /// bridge's: the first one's).
    owns_dir: bool,
}

impl Bridge {
    /// `ecoshard serve` with its own cluster in a directory named after
    /// `name`, with `extra_args` (`--auto-failover`, `--rebalance-batch N`…).
    pub async fn start(name: &str, extra_args: &[&str]) -> Bridge {
        let binary = ecoshard_binary();
        let http_port = free_ports(18_500, 1);
        // With `--clusters N`, cluster cI's nodes are on the block of 10
        // ports 10 × (I - 1) on: every block's first ports free.
        let clusters = extra_args
            .windows(2)
            .find(|pair| pair[0] == "--clusters")
            .and_then(|pair| pair[1].parse::<u16>().ok())
            .unwrap_or(1);
        let pg_port = free_ports(26_500, 10 * (clusters - 1) + 3);
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
            owns_dir: true,
        };
        bridge.spawn().await;
        bridge
    }

    /// A second `ecoshard serve` over this one's cluster, on a port of its
    /// own, with this one's arguments but its `--name`, then `extra_args`
    /// (its own `--name`…): it joins the running cluster and starts
    /// nothing. Drop it before this one.
    pub async fn join(&self, extra_args: &[&str]) -> Bridge {
        let mut inherited = Vec::new();
        let mut args = self.extra_args.iter();
        while let Some(arg) = args.next() {
            if arg == "--name" {
                args.next();
            } else {
                inherited.push(arg.clone());
            }
        }
        let http_port = free_ports(18_500, 1);
        let mut joined = Bridge {
            child: None,
            binary: self.binary.clone(),
            http_port,
            url: format!("http://127.0.0.1:{http_port}/"),
            pg_port: self.pg_port,
            dir: self.dir.clone(),
            extra_args: [inherited, to_strings(extra_args)].concat(),
            owns_dir: false,
        };
        joined.spawn().await;
        joined
    }

    /// Where it listens: `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.http_port)
    }

    /// Starts `ecoshard serve` (reusing the cluster directory) and waits
    /// until it answers.
    pub async fn spawn(&mut self) {
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
        let healthy = async || self.healthy().then_some(());
        if wait_until(Duration::from_secs(120), healthy)
            .await
            .is_none()
        {
            let log = std::fs::read_to_string(self.dir.join("bridge.log")).unwrap_or_default();
            panic!("the bridge did not become healthy; its log:\n{log}");
        }
    }

    /// Stops the bridge as Ctrl-C would (it stops its PostgreSQL servers too).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        // Reaped by a thread of its own; killed when it takes too long.
        let (exited, exit) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = child.wait();
            let _ = exited.send(());
        });
        if exit.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            let _ = exit.recv_timeout(Duration::from_secs(5));
        }
    }

    /// Kills the bridge at once (SIGKILL), as a crash would: it stops
    /// nothing and says goodbye to no one.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
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

fn to_strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| arg.to_string()).collect()
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
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
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

impl Bridge {
    /// The body of a `GET` of `path` on the bridge (one HTTP/1.1 request,
    /// read to its end); panics on any status but 200.
    pub fn get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.http_port))
            .expect("connecting to the bridge");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("the answer");
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
        // The JSON answers are sent whole or chunked: take the JSON part.
        let start = body.find(['{', '[']).unwrap_or(0);
        let end = body.rfind(['}', ']']).map_or(body.len(), |end| end + 1);
        body[start..end].to_string()
    }
}
