//! `cargo xtask demo`: the main job, from a fresh clone.
//!
//! Installs what is missing (wasm32 target, wasm-bindgen CLI, PostgreSQL),
//! builds the page into `target/dist`, builds the `ecoshard` binary in release
//! mode and installs it (`cargo install --path bridge --locked`, so the
//! README's `ecoshard …` commands work from any terminal), then runs
//! `ecoshard serve`: it starts (or reuses) a local PostgreSQL primary and two
//! streaming standbys on loopback, serves the page and the API, and prints
//! the URL. Ctrl-C stops the bridge and the servers it started. Arguments
//! after `demo` go to `ecoshard serve` (e.g. `--listen 127.0.0.1:9090`).
//!
//! `--bridges N` (N > 1) runs N bridges on the ports after `--listen`'s
//! (8081, 8082, … by default), the first starting the clusters, the others
//! joining them, and NGINX on `--listen` itself in front of them (its config
//! under `target/nginx`); Ctrl-C stops them all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::setup::{self, Needs};
use crate::util::{cargo, exec, target_dir};

/// Where the demo listens unless `--listen` says otherwise.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let (bridges, args) = take_option(args, "--bridges");
    let bridges: u16 = match bridges {
        None => 1,
        Some(count) => count
            .parse()
            .ok()
            .filter(|count| (1..=32).contains(count))
            .with_context(|| format!("--bridges takes 1 to 32, not {count:?}"))?,
    };
    setup::run(Needs {
        nginx: bridges > 1,
        ..Needs::demo()
    })?;
    let dist = crate::dist::build(false)?;
    // Builds into target/release (the workspace's target directory, as with
    // `cargo build --release`), then copies the binary into cargo's bin directory.
    exec(cargo().args([
        "install", "--path", "bridge", "--locked", "--bin", "ecoshard",
    ]))?;
    say_where_it_is(&install_bin_dir());
    let ecoshard = target_dir()?.join("release/ecoshard");
    if bridges > 1 {
        return balanced(&ecoshard, &dist, bridges, &args);
    }
    exec(
        std::process::Command::new(&ecoshard)
            .arg("serve")
            .arg("--web-dir")
            .arg(&dist)
            .args(&args),
    )
}

/// `bridges` bridges behind NGINX: the first starts (or reuses) the
/// clusters, the others join them once it answers.
fn balanced(ecoshard: &Path, dist: &Path, bridges: u16, args: &[String]) -> anyhow::Result<()> {
    let (listen, args) = take_option(args, "--listen");
    let listen = listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen: SocketAddr = listen
        .parse()
        .with_context(|| format!("--listen takes an address and port, not {listen:?}"))?;
    if !listen.ip().is_loopback() {
        bail!("with --bridges the load balancer listens on loopback only, not {listen}");
    }
    let addrs: Vec<SocketAddr> = (1..=bridges)
        .map(|index| SocketAddr::new(listen.ip(), listen.port() + index))
        .collect();
    let serve = |addr: &SocketAddr| -> anyhow::Result<Child> {
        let mut command = Command::new(ecoshard);
        command
            .arg("serve")
            .arg("--web-dir")
            .arg(dist)
            .arg("--listen")
            .arg(addr.to_string())
            .args(&args);
        command
            .spawn()
            .with_context(|| format!("starting {}", ecoshard.display()))
    };
    let mut children = vec![serve(&addrs[0])?];
    wait_answering(&mut children[0], addrs[0])?;
    for addr in &addrs[1..] {
        children.push(serve(addr)?);
    }
    for (child, addr) in children.iter_mut().zip(&addrs).skip(1) {
        wait_answering(child, *addr)?;
    }
    let balancer = crate::nginx::Balancer::start(&target_dir()?.join("nginx"), listen, &addrs)?;
    eprintln!("\nload balancer (NGINX): http://{listen}/  ← open this");
    for (index, addr) in addrs.iter().enumerate() {
        eprintln!("  bridge {}: http://{addr}/", index + 1);
    }
    eprintln!("Ctrl-C stops the bridges, NGINX and the servers the first bridge started\n");
    for child in &mut children {
        let _ = child.wait();
    }
    drop(balancer);
    Ok(())
}

/// Waits until the bridge on `addr` answers `GET /api/health` (it may be
/// starting a cluster first); fails when it exits meanwhile.
fn wait_answering(child: &mut Child, addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("the bridge on {addr} exited ({status})");
        }
        if health(addr) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the bridge on {addr} did not answer within 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether `GET /api/health` on `addr` answers 200.
fn health(addr: SocketAddr) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /api/health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.split_whitespace().nth(1) == Some("200")
}

/// `args` without `name VALUE` (or `name=VALUE`), and that value.
fn take_option(args: &[String], name: &str) -> (Option<String>, Vec<String>) {
    let mut value = None;
    let mut rest = Vec::with_capacity(args.len());
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == name {
            value = iter.next().cloned();
        } else if let Some(inline) = arg.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            value = Some(inline.to_string());
        } else {
            rest.push(arg.clone());
        }
    }
    (value, rest)
}

/// Where `cargo install` puts binaries: `$CARGO_INSTALL_ROOT/bin`, else
/// `$CARGO_HOME/bin`, else `~/.cargo/bin` (an `install.root` in a cargo
/// config is not looked at).
fn install_bin_dir() -> PathBuf {
    let root = std::env::var_os("CARGO_INSTALL_ROOT")
        .or_else(|| std::env::var_os("CARGO_HOME"))
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"));
    root.join("bin")
}

fn say_where_it_is(bin_dir: &std::path::Path) {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir == bin_dir));
    if on_path {
        eprintln!(
            "installed {}: `ecoshard --help` works in any terminal",
            bin_dir.join("ecoshard").display()
        );
    } else {
        eprintln!(
            "installed {}; {} is not on your PATH: add it (rustup's ~/.cargo/env does) to type `ecoshard`",
            bin_dir.join("ecoshard").display(),
            bin_dir.display()
        );
    }
}
