//! Shared by the browser tests and benchmarks, one of each: a tiny static
//! file server for the built page, headless Chromium driven through
//! chromedriver, waiting for a condition ([`wait_until`]) or an element
//! ([`Browser::wait_for_element`]), free ports ([`free_ports`]), the
//! `ecoshard` binary, and numbers as the page prints them.
//!
//! Chromium and chromedriver come from Debian (`/usr/bin/chromium`,
//! `/usr/bin/chromedriver`); `cargo xtask setup` installs them. The page comes
//! from `cargo xtask dist` (`ECOSHARD_DIST`, else `<target>/dist`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Where chromedriver's port is looked for (see [`free_ports`]).
const CHROMEDRIVER_PORTS: u16 = 17_400;

/// How often [`wait_until`] asks again.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// Asks `probe` every 50 ms until it answers `Some`, for at most `timeout`;
/// `None` when time ran out (the caller says what it waited for). Every
/// wait of these tests and benchmarks is this one.
pub async fn wait_until<T>(
    timeout: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// The first of `base`, `base + 10`, … `base + 90` where `count` loopback
/// ports in a row are free (the suite's ranges: chromedriver 17400–17499,
/// the bridge's HTTP 18500–18599, its PostgreSQL 26500–26599).
/// `ECOSHARD_TEST_PORT_OFFSET` (0–9) shifts the search, for two checkouts'
/// tests at once; within one process each call starts one step further on,
/// so tests started together do not pick the same ports.
pub fn free_ports(base: u16, count: u16) -> u16 {
    static CALLS: AtomicU16 = AtomicU16::new(0);
    let offset = std::env::var("ECOSHARD_TEST_PORT_OFFSET")
        .ok()
        .and_then(|offset| offset.parse::<u16>().ok())
        .map_or(0, |offset| offset.min(9));
    let first = CALLS.fetch_add(1, Ordering::SeqCst) % 10;
    (0..10)
        .map(|step| base + offset + (first + step) % 10 * 10)
        .find(|port| (0..count).all(|next| TcpListener::bind(("127.0.0.1", port + next)).is_ok()))
        .unwrap_or_else(|| panic!("no {count} free ports in a row from {base}"))
}

/// The `ecoshard` binary (`ECOSHARD_BIN`, else `<target>/debug/ecoshard`).
pub fn ecoshard_binary() -> PathBuf {
    let binary = std::env::var_os("ECOSHARD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug").join("ecoshard"));
    assert!(
        binary.is_file(),
        "{} is missing: build it first (cargo build -p ecoshard-bridge)",
        binary.display()
    );
    binary
}

/// A number as the page prints it (`2,330`, `≈ 2,330`, `12 rows`): its digits.
pub fn number(text: &str) -> u64 {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number in {text:?}"))
}

/// The built page's directory.
pub fn dist_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ECOSHARD_DIST") {
        return PathBuf::from(dir);
    }
    target_dir().join("dist")
}

/// Cargo's target directory (`CARGO_TARGET_DIR` or the workspace's `target/`).
pub fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}

/// Where screenshots go: `<target>/screenshots` beside the page.
pub fn screenshot_dir() -> PathBuf {
    let dist = dist_dir();
    let dir = dist.parent().map_or_else(
        || target_dir().join("screenshots"),
        |parent| parent.join("screenshots"),
    );
    std::fs::create_dir_all(&dir).expect("creating the screenshot directory");
    dir
}

/// Serves a directory over HTTP on 127.0.0.1 until dropped. Only files; any
/// other path (`/api/...` included) is a 404, as from a plain static host.
pub struct StaticServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl StaticServer {
    pub fn start(root: &Path) -> StaticServer {
        assert!(
            root.join("index.html").is_file(),
            "{} has no index.html: build the page first with `cargo xtask dist`",
            root.display()
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the static server");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let root = root.to_path_buf();
        let stopping = Arc::clone(&stop);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let root = root.clone();
                    std::thread::spawn(move || serve_one(stream, &root));
                }
            }
        });
        StaticServer { addr, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_one(stream: TcpStream, root: &Path) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Skip the headers.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|read| read > 2) {
        line.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let relative = if path == "/" {
        "index.html"
    } else {
        path.trim_start_matches('/')
    };
    let file = root.join(relative);
    let mut stream = stream;
    match std::fs::read(&file) {
        Ok(body) if !relative.contains("..") => {
            let mime = match file.extension().and_then(|e| e.to_str()) {
                Some("html") => "text/html; charset=utf-8",
                Some("js") => "text/javascript",
                Some("wasm") => "application/wasm",
                Some("css") => "text/css",
                _ => "application/octet-stream",
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {mime}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
        _ => {
            let body = "not found";
            let head = format!(
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body.as_bytes());
        }
    }
}

/// Headless Chromium under chromedriver, with a fresh profile; all of it is
/// stopped and removed when dropped, whether the test passed or panicked.
///
/// chromedriver runs in a process group of its own, which the Chromium it
/// launches (browser, renderers, GPU and utility processes) joins; ending the
/// session closes Chromium politely, and killing the group afterwards makes
/// sure nothing outlives the test even when the session could not be ended.
pub struct Browser {
    pub client: Client,
    driver: ProcessGroup,
    profile: PathBuf,
}

static PROFILES: AtomicU64 = AtomicU64::new(0);

impl Browser {
    /// Starts chromedriver and a headless Chromium whose page viewport is
    /// `width × height` CSS pixels.
    pub async fn start(width: u32, height: u32) -> Browser {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: install Debian's chromium and chromium-driver \
                 (`cargo xtask setup`, or apt-get install chromium chromium-driver)"
            );
        }
        let port = free_ports(CHROMEDRIVER_PORTS, 1);
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("starting chromedriver");
        // From here on, a panic (chromedriver never listening, no session)
        // still kills the group.
        let mut group = ProcessGroup(Some(driver));
        let listening = async || TcpStream::connect(("127.0.0.1", port)).ok();
        wait_until(Duration::from_secs(20), listening)
            .await
            .expect("chromedriver did not start listening");
        let profile = std::env::temp_dir().join(format!(
            "ecoshard-chromium-{}-{}",
            std::process::id(),
            PROFILES.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&profile);
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--disable-quic",
                    "--disable-dev-shm-usage",
                    "--force-device-scale-factor=1",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("opening a Chromium session through chromedriver");
        // The window is larger than the page's viewport by its frame: make the
        // viewport itself `width × height`, as on a screen of that size.
        let frame = client
            .execute(
                "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]",
                Vec::new(),
            )
            .await
            .expect("reading the window's frame");
        let (extra_width, extra_height) = (
            frame[0].as_u64().unwrap_or(0) as u32,
            frame[1].as_u64().unwrap_or(0) as u32,
        );
        client
            .set_window_size(width + extra_width, height + extra_height)
            .await
            .expect("sizing the window");
        Browser {
            client,
            driver: ProcessGroup(group.0.take()),
            profile,
        }
    }

    /// Ends the session (closing Chromium), then kills what is left of
    /// chromedriver's process group.
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.client.clone().close()).await;
        // Drop kills the group and removes the profile.
    }

    /// Runs a script and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|error| panic!("script failed: {error}\n{script}"))
    }

    /// Loads `url` in the window.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|error| panic!("loading {url}: {error}"));
    }

    /// Waits (up to `seconds`) until `script` returns something truthy other
    /// than `false`/`null`/`""`, and returns it; else panics with `what` and
    /// the page's text.
    pub async fn wait_for(&self, what: &str, seconds: u64, script: &str) -> Value {
        let truthy = async || {
            let value = self.eval(script).await;
            let done = !matches!(value, Value::Null | Value::Bool(false))
                && value != Value::String(String::new());
            done.then_some(value)
        };
        match wait_until(Duration::from_secs(seconds), truthy).await {
            Some(value) => value,
            None => self.give_up(what).await,
        }
    }

    /// Waits (up to `seconds`) until `script` returns something truthy.
    pub async fn until(&self, what: &str, seconds: u64, script: &str) {
        self.wait_for(what, seconds, script).await;
    }

    /// Waits (up to `seconds`) until an element matches `css`, and returns
    /// the first that does; else panics with the page's text.
    pub async fn wait_for_element(&self, css: &str, seconds: u64) -> Element {
        let found = async || self.client.find(Locator::Css(css)).await.ok();
        match wait_until(Duration::from_secs(seconds), found).await {
            Some(element) => element,
            None => self.give_up(css).await,
        }
    }

    /// Panics: timed out waiting for `what`, with the page's text.
    async fn give_up(&self, what: &str) -> ! {
        let body = self.eval("return document.body.innerText").await;
        panic!("timed out waiting for {what}; page text:\n{body}");
    }

    /// The text of the first element matching `css` (empty when none).
    pub async fn text(&self, css: &str) -> String {
        let script = format!(
            "return document.querySelector({})?.textContent ?? ''",
            Value::String(css.to_string())
        );
        self.eval(&script)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Clicks the first element matching `css` (waiting up to 10 s for one).
    pub async fn click(&self, css: &str) {
        self.wait_for_element(css, 10)
            .await
            .click()
            .await
            .unwrap_or_else(|error| panic!("clicking {css}: {error}"));
    }

    /// Types `text` into the field and presses Enter.
    pub async fn enter(&self, css: &str, text: &str) {
        let field = self.wait_for_element(css, 10).await;
        field.clear().await.expect("clearing a field");
        field
            .send_keys(&format!("{text}\u{E007}"))
            .await
            .expect("typing into a field");
    }

    /// Replaces the field's text by typing `text` over it (select all, then
    /// the keys), without Enter and without leaving the field.
    pub async fn type_over(&self, css: &str, text: &str) {
        let field = self.wait_for_element(css, 10).await;
        // Control down, "a", Control up: select what the field holds.
        field
            .send_keys(&format!("\u{E009}a\u{E009}{text}"))
            .await
            .expect("typing into a field");
    }

    /// Saves a PNG screenshot as `<target>/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("taking a screenshot");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("writing a screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.driver.kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A child that leads its own process group; dropping it (or `kill`) sends
/// SIGKILL to the whole group and reaps the leader.
struct ProcessGroup(Option<Child>);

impl ProcessGroup {
    fn kill(&mut self) {
        let Some(mut leader) = self.0.take() else {
            return;
        };
        // The group id is the leader's pid (process_group(0)).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", leader.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = leader.kill();
        let _ = leader.wait();
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}
