//! NGINX in front of `ecoshard serve` processes, as `cargo xtask demo
//! --bridges N` runs it: `nginx/local.conf` filled in under a directory of
//! its own, `nginx/proxy.conf` included, in the foreground under a small
//! shell that stops it when this process ends (its stdin closes), however
//! it ends. Also one HTTP/1.0 request whose answer names the bridge.

#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use super::blocking::{ANSWER_WITHIN, eventually};

/// Debian's NGINX, which `cargo xtask setup` installs.
pub const NGINX: &str = "/usr/sbin/nginx";

/// Starts NGINX, waits for its stdin to close, then stops it (fast).
const KEEPER: &str = r#"nginx="$1"; prefix="$2"
"$nginx" -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" &
pid=$!
cat >/dev/null
kill -TERM "$pid" 2>/dev/null
wait "$pid"
"#;

/// A running NGINX; dropped, it stops and its directory is deleted.
pub struct Balancer {
    stdin: Option<ChildStdin>,
    keeper: Child,
    prefix: PathBuf,
    /// Where it listens: `127.0.0.1:PORT`.
    pub addr: String,
}

impl Balancer {
    /// NGINX on `addr` in front of the bridges on `bridges`, once it
    /// answers; panics, saying how to install it, when there is no NGINX.
    pub fn start(addr: &str, bridges: &[String]) -> Balancer {
        assert!(
            std::path::Path::new(NGINX).exists(),
            "{NGINX} is missing: run `cargo xtask setup` (it installs Debian's nginx)"
        );
        let prefix = std::env::temp_dir().join(format!(
            "ecoshard-nginx-{}-{}",
            std::process::id(),
            addr.replace([':', '.'], "-")
        ));
        std::fs::create_dir_all(prefix.join("temp")).expect("nginx's directory");
        std::fs::write(prefix.join("nginx.conf"), config(addr, bridges)).expect("nginx.conf");
        let mut keeper = Command::new("sh")
            .arg("-c")
            .arg(KEEPER)
            .arg("ecoshard-nginx")
            .arg(NGINX)
            .arg(&prefix)
            .stdin(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start nginx");
        let stdin = keeper.stdin.take();
        let balancer = Balancer {
            stdin,
            keeper,
            prefix,
            addr: addr.to_string(),
        };
        let listening = eventually(Duration::from_secs(10), || {
            std::net::TcpStream::connect(addr).is_ok()
        });
        assert!(listening, "nginx does not listen: {}", balancer.log());
        balancer
    }

    /// NGINX's error log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.keeper.wait();
        if std::thread::panicking() {
            eprintln!("--- nginx's error log ---\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.prefix);
    }
}

/// `nginx/local.conf` with its blanks filled in.
fn config(addr: &str, bridges: &[String]) -> String {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let template =
        std::fs::read_to_string(workspace.join("nginx/local.conf")).expect("nginx/local.conf");
    let upstreams: Vec<String> = bridges
        .iter()
        .map(|bridge| format!("        server {bridge} max_fails=1 fail_timeout=5s;"))
        .collect();
    template
        .replace("@LISTEN@", addr)
        .replace("@UPSTREAMS@", &upstreams.join("\n"))
        .replace(
            "@PROXY_CONF@",
            &workspace.join("nginx/proxy.conf").display().to_string(),
        )
}

/// An answer through the load balancer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// `X-Ecoshard-Bridge`: the bridge that answered.
    pub bridge: Option<String>,
    pub body: String,
}

/// One HTTP/1.0 request with an optional JSON body; `None` when there is
/// no answer within [`ANSWER_WITHIN`].
pub fn call(addr: &str, method: &str, path: &str, body: Option<&str>) -> Option<Reply> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(ANSWER_WITHIN)).ok()?;
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
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let bridge = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("x-ecoshard-bridge")
            .then(|| value.trim().to_string())
    });
    Some(Reply {
        status,
        bridge,
        body: body.to_string(),
    })
}
