//! The bridge's HTTP edge, against a real cluster of this binary's own:
//! cross-site and DNS-rebinding requests refused, and the token beyond
//! loopback.

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{Answer, free_ports, get, send};
use ecoshard_bridge::api::Token;
use ecoshard_bridge::{AppState, BridgeConfig, ClusterOptions, LocalCluster, Topology};
use ecoshard_core::wire::{ApiErrorBody, LayoutView, NodeAction};
use ecoshard_core::{Layout, StrategyKind};

/// This binary's ports: PostgreSQL from 27000, HTTP from 19000.
const PG_PORT: u16 = 27000;
const HTTP_PORT: u16 = 19000;

/// A wait that only a hang reaches.
const HANG: Duration = Duration::from_secs(120);

static CLUSTER: OnceLock<Arc<LocalCluster>> = OnceLock::new();

/// The cluster of this binary (a node's stop and start need it as an `Arc`).
fn the_cluster() -> Arc<LocalCluster> {
    Arc::clone(CLUSTER.get_or_init(|| {
        let port = free_ports(PG_PORT, 3);
        let dir = std::env::temp_dir().join(format!("ecoshard-test-edge-{}", std::process::id()));
        let mut options = ClusterOptions::new(&dir, port);
        options.remove_on_exit = true;
        Arc::new(
            LocalCluster::start(&options)
                .unwrap_or_else(|error| panic!("starting the test cluster: {error}")),
        )
    }))
}

/// A bridge on its own database, configured further by `configure`.
async fn bridge(database: &str, configure: impl FnOnce(&mut BridgeConfig)) -> AppState {
    let cluster = the_cluster();
    let mut config = BridgeConfig {
        initial_layout: Layout::with_count(StrategyKind::Ring, 3).unwrap(),
        pool_size: 4,
        ..BridgeConfig::new(Topology::local(&cluster, database))
    };
    configure(&mut config);
    AppState::start(config)
        .await
        .unwrap_or_else(|error| panic!("starting the bridge on {database}: {error}"))
}

/// A request to the app with these headers and body.
async fn request(
    state: &AppState,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(state, request.body(Body::from(body.to_string())).unwrap()).await
}

fn error_code(answer: &Answer) -> String {
    answer.parse::<ApiErrorBody>().error.code
}

/// The issue's attack: any page the user visits posting to the bridge.
#[tokio::test]
async fn a_cross_site_request_cannot_stop_a_node() {
    let cluster = the_cluster();
    let state = bridge("e_origin", |config| config.local = Some(the_cluster())).await;
    let stop = "/api/nodes/standby-2/stop";
    let form = ("content-type", "application/x-www-form-urlencoded");
    let json = ("content-type", "application/json");
    let page = ("host", "127.0.0.1:8080");
    let refused: [&[(&str, &str)]; 7] = [
        &[("origin", "http://evil.example"), form],
        &[("origin", "null"), ("content-type", "text/plain")],
        &[("origin", "http://evil.example"), json],
        &[("content-type", "text/plain")],
        &[],
        &[page, ("origin", "http://127.0.0.1:9999"), json],
        &[("sec-fetch-site", "cross-site"), json],
    ];
    for headers in refused {
        let answer = request(&state, "POST", stop, headers, "").await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{headers:?}: {}",
            answer.text()
        );
        assert_eq!(error_code(&answer), "cross_origin", "{headers:?}");
    }
    let preflight = request(
        &state,
        "OPTIONS",
        stop,
        &[
            ("origin", "http://evil.example"),
            ("access-control-request-method", "POST"),
        ],
        "",
    )
    .await;
    assert_eq!(preflight.status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&preflight), "cross_origin");
    assert!(
        !preflight
            .headers
            .keys()
            .any(|name| name.as_str().starts_with("access-control-allow")),
        "{:?}",
        preflight.headers
    );
    assert!(
        cluster.is_node_running("standby-2").unwrap(),
        "a refused request stopped standby-2"
    );
    // A program (JSON type, no Origin) and the page (its own origin) are
    // served; starting a running node changes nothing.
    let allowed: [&[(&str, &str)]; 2] = [&[json], &[page, ("origin", "http://127.0.0.1:8080")]];
    for headers in allowed {
        let answer = request(&state, "POST", "/api/nodes/standby-2/start", headers, "").await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{headers:?}: {}",
            answer.text()
        );
        assert!(!answer.parse::<NodeAction>().changed);
    }
}

#[tokio::test]
async fn a_rebinding_host_name_is_refused_and_allowed_names_are_served() {
    let state = bridge("e_host", |config| {
        config.allowed_hosts = vec!["bridge.example".to_string()];
    })
    .await;
    let json = ("content-type", "application/json");
    let layout = r#"{"strategy":"ring","shards":4}"#;
    let rebound = request(
        &state,
        "PUT",
        "/api/layout",
        &[("host", "attacker.example"), json],
        layout,
    )
    .await;
    assert_eq!(
        rebound.status,
        StatusCode::MISDIRECTED_REQUEST,
        "{}",
        rebound.text()
    );
    assert_eq!(error_code(&rebound), "misdirected_host");
    assert!(
        rebound.text().contains("--allowed-host"),
        "{}",
        rebound.text()
    );
    let page = request(&state, "GET", "/", &[("host", "attacker.example:8080")], "").await;
    assert_eq!(page.status, StatusCode::MISDIRECTED_REQUEST);
    let version = get(&state, "/api/layout")
        .await
        .parse::<LayoutView>()
        .version;
    assert_eq!(version, 1, "the refused layout was applied");
    for host in [
        "bridge.example:8080",
        "BRIDGE.example",
        "localhost:8080",
        "[::1]:8080",
        "10.1.2.3",
    ] {
        let answer = request(&state, "GET", "/api/health", &[("host", host)], "").await;
        assert_eq!(answer.status, StatusCode::OK, "{host}");
    }
}

#[tokio::test]
async fn with_a_token_changes_need_it_and_reads_do_not() {
    let secret = "edge-test-token-0123456789";
    let state = bridge("e_token", |config| {
        config.token = Some(Token::parse(secret).unwrap());
    })
    .await;
    let json = ("content-type", "application/json");
    let user = r#"{"user_id":"tok_1"}"#;
    let bearer = format!("Bearer {secret}");
    let wrong = format!("Bearer {secret}x");
    for headers in [vec![json], vec![json, ("authorization", wrong.as_str())]] {
        let answer = request(&state, "POST", "/api/users", &headers, user).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text());
        assert_eq!(error_code(&answer), "unauthorized");
        assert_eq!(answer.headers[header::WWW_AUTHENTICATE], "Bearer");
        assert!(!answer.text().contains(secret));
    }
    let inserted = request(
        &state,
        "POST",
        "/api/users",
        &[json, ("authorization", &bearer)],
        user,
    )
    .await;
    assert_eq!(inserted.status, StatusCode::CREATED, "{}", inserted.text());
    let read = get(&state, "/api/users/tok_1?consistency=strong").await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text());
    assert_eq!(get(&state, "/").await.status, StatusCode::OK);
}

/// Lines of a child's stderr, as they come, and all of them at the end.
fn stderr_lines(
    child: &mut std::process::Child,
) -> (
    std::sync::mpsc::Receiver<String>,
    std::thread::JoinHandle<Vec<String>>,
) {
    use std::io::BufRead as _;
    let stderr = child.stderr.take().expect("piped stderr");
    let (lines, receiver) = std::sync::mpsc::channel();
    let all = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line.clone());
            all.push(line);
        }
        all
    });
    (receiver, all)
}

#[test]
fn beyond_loopback_serve_prints_a_token_once_and_changes_need_it() {
    use std::process::{Command, Stdio};
    let cluster = the_cluster();
    let nodes = cluster.nodes();
    let url = |port: u16| format!("postgres://ecoshard@127.0.0.1:{port}/e_cli");
    let port = free_ports(HTTP_PORT, 1);
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecoshard"))
        .args(["serve", "--listen", &format!("0.0.0.0:{port}")])
        .args([
            "--primary",
            &url(nodes[0].port),
            "--replica",
            &url(nodes[1].port),
        ])
        .env("PGPASSFILE", cluster.passfile())
        .env_remove("ECOSHARD_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ecoshard serve");
    let (lines, all_lines) = stderr_lines(&mut child);
    let serve = common::blocking::Serve {
        child,
        data_dir: None,
    };
    let prefix = format!("bridge listening on http://0.0.0.0:{port}/#token=");
    let line = loop {
        let line = lines
            .recv_timeout(HANG)
            .expect("serve printed no URL with a token");
        if line.starts_with(&prefix) {
            break line;
        }
    };
    let token: String = line[prefix.len()..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    assert_eq!(token.len(), 64, "{line}");

    let user = r#"{"user_id":"cli_1"}"#;
    let (status, body) = common::blocking::http(&addr, "POST", "/api/users", Some(user)).unwrap();
    assert_eq!(status, 401, "{body}");
    let apply = |token: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ecoshard"));
        command
            .args(["apply", "--url", &format!("http://{addr}")])
            .args(["--strategy", "ring", "--shards", "3", "--format", "json"])
            .env_remove("ECOSHARD_TOKEN");
        if let Some(token) = token {
            command.args(["--token", token]);
        }
        command.output().unwrap()
    };
    let refused = apply(None);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unauthorized"));
    let applied = apply(Some(&token));
    assert!(applied.status.success(), "{applied:?}");
    let job: serde_json::Value = serde_json::from_slice(&applied.stdout).unwrap();
    assert_eq!(job["state"], "done", "{job}");

    drop(serve);
    let all = all_lines.join().unwrap();
    let printed = all.iter().filter(|line| line.contains(&token)).count();
    assert_eq!(printed, 1, "the token is printed once only: {all:#?}");
}
