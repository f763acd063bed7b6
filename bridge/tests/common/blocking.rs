//! Blocking helpers for the tests and benchmarks that drive the `ecoshard`
//! binary (rather than the app in-process): one HTTP/1.0 request, the
//! binary run and refused, free loopback ports, a condition polled until it
//! holds, the cluster's view, `ecoshard serve` stopped on drop, a data
//! directory deleted on drop, a PostgreSQL server hung (SIGSTOP) until
//! dropped. The benchmarks include this file by path.

#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ecoshard_core::wire::{ClusterView, NodeRole};

/// The `ecoshard` binary of this build.
pub const BIN: &str = env!("CARGO_BIN_EXE_ecoshard");

/// The binary [`Serve`] starts: this build's, or the one
/// `ECOSHARD_BENCH_BIN` names (a benchmark comparing builds side by side).
pub fn serve_binary() -> std::path::PathBuf {
    std::env::var_os("ECOSHARD_BENCH_BIN").map_or_else(|| BIN.into(), Into::into)
}

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
/// while one of them is still starting its servers. Every base stays below
/// 32768, where Linux's ephemeral range starts, so no outgoing connection
/// takes a port between the pick and a server's bind seconds later.
pub fn free_ports(base: u16, count: u16) -> u16 {
    assert!(
        base < 32_000,
        "test ports from {base}: inside the ephemeral range"
    );
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

/// `ecoshard ARGS`, with no input and no colour preference: its output.
pub fn ecoshard(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .expect("run ecoshard")
}

/// `ecoshard ARGS` refused: exit code `code` and one line on stderr, which
/// contains `expected`.
pub fn check_refused(args: &[&str], code: i32, expected: &str) {
    let output = ecoshard(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
}

/// Polls `condition` every 20 ms until it holds or `limit` passes; whether
/// it held. The blocking twin of `common::eventually`.
pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    eventually_some(limit, || condition().then_some(())).is_some()
}

/// Polls `probe` every 20 ms until it gives a value or `limit` passes.
pub fn eventually_some<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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

/// Whether every node of `view` is up and every standby streams from the
/// primary (whichever node that is now).
pub fn all_streaming(view: &ClusterView) -> bool {
    view.nodes.iter().all(|node| {
        node.up
            && (node.role == NodeRole::Primary
                || node
                    .lag
                    .as_ref()
                    .is_some_and(|lag| lag.state.as_deref() == Some("streaming")))
    })
}

/// How long `ecoshard serve` may take to answer (it may start a cluster).
const SERVE_START: Duration = Duration::from_secs(120);

/// How long a SIGTERMed `ecoshard serve` may take to exit before SIGKILL.
const SERVE_STOP: Duration = Duration::from_secs(30);

/// An `ecoshard serve` process, its stderr kept in a log file (shown when
/// the test fails). Dropped, it is stopped: SIGTERM (which stops the
/// servers it started), SIGKILL if it still runs [`SERVE_STOP`] later; then
/// its data directory is deleted, if given.
pub struct Serve {
    child: Child,
    log: PathBuf,
    /// Deleted once the process has exited.
    pub data_dir: Option<PathBuf>,
}

impl Serve {
    /// `ecoshard serve --listen ADDR ARGS`, once `GET /api/cluster` answers
    /// 200; panics, with its log, if it exits first or never answers.
    pub fn start(addr: &str, args: &[&str]) -> Serve {
        Serve::start_with(addr, args, |_| {})
    }

    /// [`Serve::start`] with the command configured further (its
    /// environment; its stderr elsewhere than the log file).
    pub fn start_with(addr: &str, args: &[&str], configure: impl FnOnce(&mut Command)) -> Serve {
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let log = std::env::temp_dir().join(format!(
            "ecoshard-serve-{}-{}.log",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let mut command = Command::new(serve_binary());
        command
            .arg("serve")
            .args(["--listen", addr])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("serve's log file"));
        configure(&mut command);
        let child = command.spawn().expect("start ecoshard serve");
        let mut serve = Serve {
            child,
            log,
            data_dir: None,
        };
        let answering = eventually(SERVE_START, || {
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!("serve exited early: {status}");
            }
            http(addr, "GET", "/api/cluster", None).is_some_and(|(status, _)| status == 200)
        });
        assert!(answering, "serve never answered on {addr}");
        serve
    }

    /// Its process id (to signal it: SIGSTOP, SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it wrote on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM: its exit status (SIGKILL past [`SERVE_STOP`]) and its log.
    pub fn stop(mut self) -> (ExitStatus, String) {
        let status = self.terminate();
        (status, self.log())
    }

    /// SIGKILL, as by a crash: nothing of the bridge runs on (its watchdog
    /// stops the servers it started).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn terminate(&mut self) -> ExitStatus {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + SERVE_STOP;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().expect("waiting for ecoshard serve")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.terminate();
        if std::thread::panicking() {
            eprintln!("--- ecoshard serve's log ---\n{}", self.log());
        }
        let _ = std::fs::remove_file(&self.log);
        if let Some(data_dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(data_dir);
        }
    }
}

/// A data directory of the temporary directory, empty at first, whose
/// servers are stopped (`ecoshard cluster down`) and files deleted on drop,
/// however the test ends.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    /// `ecoshard-NAME-PID` in the temporary directory, left over files removed.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ecoshard-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Scratch { dir }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new(BIN)
            .args(["cluster", "down", "--data-dir"])
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
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
