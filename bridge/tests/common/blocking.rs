//! Blocking helpers for the tests and benchmarks that drive a running
//! `ecoshard serve` process (rather than the app in-process): one HTTP/1.0
//! request, free loopback ports, the cluster's view, a process stopped on
//! drop, a PostgreSQL server hung (SIGSTOP) until dropped. The benchmarks
//! include this file by path.

#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use ecoshard_core::wire::{ClusterView, NodeRole};

/// How long [`http`] waits for an answer.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// One HTTP/1.0 request with an optional JSON body, waiting at most
/// `within` for the answer: status and body, or `None` when there is none.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    within: Duration,
) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(within)).ok()?;
    let _ = stream.set_nodelay(true);
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// [`request`], answered within [`ANSWER_WITHIN`].
pub fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> Option<(u16, String)> {
    request(addr, method, path, body, ANSWER_WITHIN)
}

/// The first of `base`, `base + 10`, … (200 tries) where `count` loopback
/// ports in a row are free. `ECOSHARD_TEST_PORT_OFFSET` (0–9) shifts every
/// search, so test runs of two checkouts at once never pick the same ports
/// while one of them is still starting its servers.
pub fn free_ports(base: u16, count: u16) -> u16 {
    let base = base + port_offset();
    (0..200)
        .map(|step| base + step * 10)
        .find(|port| {
            (0..count)
                .all(|offset| std::net::TcpListener::bind(("127.0.0.1", port + offset)).is_ok())
        })
        .unwrap_or_else(|| panic!("no free ports from {base}"))
}

/// `ECOSHARD_TEST_PORT_OFFSET`, 0 when unset (at most 9).
pub fn port_offset() -> u16 {
    std::env::var("ECOSHARD_TEST_PORT_OFFSET")
        .ok()
        .and_then(|offset| offset.parse::<u16>().ok())
        .map_or(0, |offset| offset.min(9))
}

/// `GET /api/cluster`.
pub fn cluster_view(addr: &str) -> ClusterView {
    let (status, body) = http(addr, "GET", "/api/cluster", None).expect("GET /api/cluster");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("cluster JSON")
}

/// The node that is primary in `view`.
pub fn primary_of(view: &ClusterView) -> String {
    view.nodes
        .iter()
        .find(|node| node.role == NodeRole::Primary)
        .map(|node| node.name.clone())
        .expect("a primary")
}

/// An `ecoshard serve` process: SIGTERM (which stops the servers it
/// started) and a wait on drop, then its data directory deleted if given.
pub struct Serve {
    pub child: Child,
    pub data_dir: Option<PathBuf>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        if let Some(data_dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(data_dir);
        }
    }
}

/// A number from the environment variable `name`, else `default`.
pub fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// A PostgreSQL server hung, as by a stalled machine: its postmaster (the
/// pid in `postmaster.pid` of its data directory) and every process it
/// started, stopped with SIGSTOP. Connections to it are accepted by the
/// kernel and never answered. Dropping it sends SIGCONT, so a test or
/// benchmark that fails never leaves stopped servers behind.
pub struct Frozen {
    pids: Vec<u32>,
}

impl Frozen {
    /// Stops the server of the data directory `data`.
    pub fn stop(data: &Path) -> Frozen {
        let text = std::fs::read_to_string(data.join("postmaster.pid"))
            .unwrap_or_else(|error| panic!("{}: {error}", data.display()));
        let postmaster: u32 = text
            .lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .expect("a pid on the first line of postmaster.pid");
        // The postmaster first: stopped, it starts no new process.
        let mut frozen = Frozen {
            pids: vec![postmaster],
        };
        signal("STOP", &frozen.pids);
        let children = children_of(postmaster);
        signal("STOP", &children);
        frozen.pids.extend(children);
        frozen
    }

    /// The processes stopped.
    pub fn pids(&self) -> &[u32] {
        &self.pids
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("CONT", &self.pids);
    }
}

/// Processes whose parent is `parent`, from `/proc`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // `pid (comm) state ppid …`: the command may hold spaces and
            // parentheses, the fields after its last ')' do not.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let after = &stat[stat.rfind(')')? + 1..];
                    after.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

fn signal(name: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids.iter().map(u32::to_string))
        .status();
    if !status.as_ref().is_ok_and(|status| status.success()) {
        eprintln!("kill -{name} {pids:?} failed: {status:?}");
    }
}
