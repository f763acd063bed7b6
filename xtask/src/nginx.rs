//! NGINX in front of several local bridges, unprivileged: its config filled
//! in from `nginx/local.conf` under a prefix of its own in `target/`, run in
//! the foreground in a process group of its own by a small shell that stops it
//! when this process ends, however it ends (its stdin closes).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt as _;

use anyhow::{Context, bail};

use crate::setup::NGINX;
use crate::util::root;

/// Starts NGINX, waits for its stdin to close, then stops it (fast).
const KEEPER: &str = r#"nginx="$1"; prefix="$2"
"$nginx" -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" &
pid=$!
cat >/dev/null
kill -TERM "$pid" 2>/dev/null
wait "$pid"
"#;

/// A running NGINX; dropping it (or this process ending) stops it.
pub(crate) struct Balancer {
    stdin: Option<ChildStdin>,
    keeper: Child,
    prefix: PathBuf,
}

impl Balancer {
    /// NGINX on `listen` in front of `bridges`, its files under `prefix`;
    /// once it answers.
    pub(crate) fn start(
        prefix: &Path,
        listen: SocketAddr,
        bridges: &[SocketAddr],
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(prefix.join("temp"))
            .with_context(|| format!("creating {}", prefix.display()))?;
        let config = config(listen, bridges)?;
        std::fs::write(prefix.join("nginx.conf"), config).context("writing nginx.conf")?;
        let test = Command::new(NGINX)
            .arg("-t")
            .arg("-q")
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .arg("-e")
            .arg(prefix.join("error.log"))
            .output()
            .with_context(|| format!("cannot run {NGINX}: run `cargo xtask setup`"))?;
        if !test.status.success() {
            bail!(
                "nginx -t refused the config in {}: {}",
                prefix.display(),
                String::from_utf8_lossy(&test.stderr).trim()
            );
        }
        let mut keeper = Command::new("sh")
            .arg("-c")
            .arg(KEEPER)
            .arg("ecoshard-nginx")
            .arg(NGINX)
            .arg(prefix)
            .stdin(Stdio::piped())
            // Out of the terminal's process group: it stops NGINX when this
            // process ends, Ctrl-C or not.
            .process_group(0)
            .spawn()
            .context("starting nginx")?;
        let stdin = keeper.stdin.take().context("nginx's keeper has no stdin")?;
        let balancer = Balancer {
            stdin: Some(stdin),
            keeper,
            prefix: prefix.to_path_buf(),
        };
        balancer.wait_listening(listen)?;
        Ok(balancer)
    }

    fn wait_listening(&self, listen: SocketAddr) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(listen).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "nginx does not listen on {listen}: {}",
                    std::fs::read_to_string(self.prefix.join("error.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        // Closing stdin tells the keeper to stop NGINX.
        drop(self.stdin.take());
        let _ = self.keeper.wait();
    }
}

/// `nginx/local.conf` filled in: NGINX on `listen`, the upstreams `bridges`,
/// the shared rules of `nginx/proxy.conf`.
pub(crate) fn config(listen: SocketAddr, bridges: &[SocketAddr]) -> anyhow::Result<String> {
    let template = std::fs::read_to_string(root().join("nginx/local.conf"))
        .context("reading nginx/local.conf")?;
    let upstreams: Vec<String> = bridges
        .iter()
        .map(|bridge| format!("        server {bridge} max_fails=1 fail_timeout=5s;"))
        .collect();
    Ok(template
        .replace("@LISTEN@", &listen.to_string())
        .replace("@UPSTREAMS@", &upstreams.join("\n"))
        .replace(
            "@PROXY_CONF@",
            &root().join("nginx/proxy.conf").display().to_string(),
        ))
}
