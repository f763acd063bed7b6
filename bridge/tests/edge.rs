//! The bridge's HTTP edge, against a real cluster of this binary's own:
//! cross-site and DNS-rebinding requests refused, the token beyond loopback,
//! connections that never finish a request closed while the bridge answers,
//! request heads over the limits answered with the JSON error shape, event-
//! stream slots that clients which never read cannot hold, and arbitrary
//! input answered with a 4xx JSON error that writes nothing.

mod common;
mod rows;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::blocking::{BIN, Serve};
use common::{
    Answer, SharedCluster, bridge_with, control, eventually, eventually_some, free_ports, get, send,
};
use ecoshard_bridge::ServerOptions;
use ecoshard_bridge::Token;
use ecoshard_bridge::{AppState, BridgeConfig};
use ecoshard_core::wire::{ApiErrorBody, LayoutView, NodeAction};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// This binary's cluster, PostgreSQL on ports from 27000; its HTTP from 19000.
static CLUSTER: SharedCluster = SharedCluster::new("edge", 27000, false);
const HTTP_PORT: u16 = 19000;

/// A wait that only a hang reaches.
const HANG: Duration = Duration::from_secs(120);

/// A bridge on its own database (4 connections per node), configured
/// further by `configure`.
async fn bridge(database: &str, configure: impl FnOnce(&mut BridgeConfig)) -> AppState {
    bridge_with(&CLUSTER.get(), database, |config| {
        config.pool_size = 4;
        configure(config);
    })
    .await
}

/// The bridge served on a port of its own until the test ends.
async fn serve(state: &AppState, options: ServerOptions) -> SocketAddr {
    serve_on(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        state,
        options,
    )
}

/// The bridge served on `listener` until the test ends.
fn serve_on(listener: TcpListener, state: &AppState, options: ServerOptions) -> SocketAddr {
    let addr = listener.local_addr().unwrap();
    tokio::spawn(ecoshard_bridge::serve_with(
        listener,
        state.clone(),
        options,
        std::future::pending(),
    ));
    addr
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

/// Sends `bytes` on a new connection, then reads until the server closes it.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    until_closed(&mut stream).await
}

/// Everything the server sends until it closes the connection.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    tokio::time::timeout(HANG, stream.read_to_end(&mut answer))
        .await
        .expect("the server never closed the connection")
        .expect("reading the answer");
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status and the body of a raw answer.
fn status_and_body(answer: &str) -> (u16, &str) {
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    (
        status,
        answer.split_once("\r\n\r\n").map_or("", |(_, body)| body),
    )
}

/// The issue's attack: any page the user visits posting to the bridge.
#[tokio::test]
async fn a_cross_site_request_cannot_stop_a_node() {
    let cluster = CLUSTER.get();
    let state = bridge("e_origin", |config| config.control = control(&cluster)).await;
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
        assert_eq!(answer.error_code(), "cross_origin", "{headers:?}");
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
    assert_eq!(preflight.error_code(), "cross_origin");
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
    assert_eq!(rebound.error_code(), "misdirected_host");
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
        assert_eq!(answer.error_code(), "unauthorized");
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

#[test]
fn beyond_loopback_serve_prints_a_token_once_and_changes_need_it() {
    use std::process::Command;
    let cluster = CLUSTER.get();
    let nodes = cluster.nodes();
    let url = |port: u16| format!("postgres://ecoshard@127.0.0.1:{port}/e_cli");
    let port = free_ports(HTTP_PORT, 1);
    let addr = format!("127.0.0.1:{port}");
    let databases = [
        "--primary",
        &url(nodes[0].port),
        "--replica",
        &url(nodes[1].port),
    ];
    let serve = Serve::start_with(&format!("0.0.0.0:{port}"), &databases, |command| {
        command
            .env("PGPASSFILE", cluster.passfile())
            .env_remove("ECOSHARD_TOKEN");
    });
    let prefix = format!("bridge listening on http://0.0.0.0:{port}/#token=");
    let line = common::blocking::eventually_some(HANG, || {
        let log = serve.log();
        log.lines()
            .find(|line| line.starts_with(&prefix))
            .map(str::to_string)
    })
    .expect("serve printed no URL with a token");
    let token: String = line[prefix.len()..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    assert_eq!(token.len(), 64, "{line}");

    let user = r#"{"user_id":"cli_1"}"#;
    let (status, body) = common::blocking::http(&addr, "POST", "/api/users", Some(user)).unwrap();
    assert_eq!(status, 401, "{body}");
    let apply = |token: Option<&str>| {
        let mut command = Command::new(BIN);
        command
            .args(["apply", "--url", &format!("http://{addr}")])
            .args(["--strategy", "ring", "--shards", "4", "--format", "json"])
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

    let (_, log) = serve.stop();
    let printed = log.lines().filter(|line| line.contains(&token)).count();
    assert_eq!(printed, 1, "the token is printed once only: {log}");
}

#[tokio::test]
async fn half_sent_requests_are_closed_while_health_answers() {
    let state = bridge("e_slow", |_| {}).await;
    let options = ServerOptions {
        read_timeout: Duration::from_secs(1),
        ..ServerOptions::default()
    };
    let addr = serve(&state, options).await;
    let mut halves = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
            .await
            .unwrap();
        halves.push(stream);
    }
    let health = exchange(
        addr,
        b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_and_body(&health).0, 200, "{health}");
    for stream in &mut halves {
        let answer = until_closed(stream).await;
        assert!(!answer.contains("200 OK"), "{answer}");
    }
    // A kept-alive connection that sends nothing more is closed as well.
    let idle = exchange(addr, b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    assert_eq!(status_and_body(&idle).0, 200, "{idle}");
    // A body that stops coming: 408, nothing written.
    let stalled = exchange(
        addr,
        b"POST /api/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"user_id\":",
    )
    .await;
    let (status, body) = status_and_body(&stalled);
    assert_eq!(status, 408, "{stalled}");
    let error: ApiErrorBody = serde_json::from_str(body).unwrap();
    assert_eq!(error.error.code, "body_timeout");
}

/// Reads one answer with a `content-length` from a kept-alive connection.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .and_then(|length| length.trim().parse().ok())
                .expect("a content-length");
            if body.len() >= length {
                return text;
            }
        }
        let read = tokio::time::timeout(HANG, stream.read(&mut buffer))
            .await
            .expect("an answer")
            .unwrap();
        assert!(read > 0, "closed before the answer: {text}");
        bytes.extend_from_slice(&buffer[..read]);
    }
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_with_a_503() {
    let state = bridge("e_cap", |_| {}).await;
    let options = ServerOptions {
        max_connections: 4,
        ..ServerOptions::default()
    };
    let addr = serve(&state, options).await;
    let health = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(health).await.unwrap();
        assert_eq!(status_and_body(&read_answer(&mut stream).await).0, 200);
        held.push(stream);
    }
    let mut over = TcpStream::connect(addr).await.unwrap();
    let refused = until_closed(&mut over).await;
    let (status, body) = status_and_body(&refused);
    assert_eq!(status, 503, "{refused}");
    let error: ApiErrorBody = serde_json::from_str(body).unwrap();
    assert_eq!(error.error.code, "too_many_connections");
    // A connection that goes frees its place.
    drop(held.pop());
    let freed = eventually(HANG, || async {
        let answer = exchange(
            addr,
            b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        .await;
        status_and_body(&answer).0 == 200
    })
    .await;
    assert!(freed, "no place freed");
}

#[tokio::test]
async fn heads_over_the_limits_get_the_json_error_shape() {
    let state = bridge("e_heads", |_| {}).await;
    let addr = serve(&state, ServerOptions::default()).await;
    let head = |target: &str, headers: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{headers}\r\n")
    };
    let long_uri = format!("/api/users/{}", "a".repeat(10 * 1024));
    let many: String = (0..150).map(|i| format!("X-Field-{i}: {i}\r\n")).collect();
    let big = format!("X-Big: {}\r\n", "b".repeat(40 * 1024));
    let cases = [
        (head(&long_uri, ""), 414, "uri_too_long"),
        (head("/api/health", &many), 431, "headers_too_large"),
        (head("/api/health", &big), 431, "headers_too_large"),
        (head("/", &many), 431, "headers_too_large"),
    ];
    for (request, status, code) in cases {
        let answer = exchange(addr, request.as_bytes()).await;
        let (got, body) = status_and_body(&answer);
        assert_eq!(got, status, "{}", &answer[..answer.len().min(300)]);
        let error: ApiErrorBody = serde_json::from_str(body)
            .unwrap_or_else(|error| panic!("not the JSON error shape ({error}): {body:?}"));
        assert_eq!(error.error.code, code);
    }
    // Beyond hyper's own bound (docs/api.md), hyper answers by itself.
    let huge = format!("X-Huge: {}\r\n", "h".repeat(300 * 1024));
    let answer = exchange(addr, head("/api/health", &huge).as_bytes()).await;
    assert_eq!(
        status_and_body(&answer).0,
        431,
        "{}",
        &answer[..answer.len().min(300)]
    );
    let health = exchange(addr, head("/api/health", "").as_bytes()).await;
    assert_eq!(status_and_body(&health).0, 200);
}

/// An event-stream client over hyper: the status, and then `ticks` ticks.
async fn listen(addr: SocketAddr, ticks: usize) -> Result<usize, StatusCode> {
    use futures::StreamExt as _;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(
            Request::get("/api/events")
                .header(header::HOST, "127.0.0.1")
                .body(http_body_util::Empty::<axum::body::Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    if response.status() != StatusCode::OK {
        return Err(response.status());
    }
    let mut body = http_body_util::BodyStream::new(response.into_body());
    let mut text = String::new();
    let mut seen = 0;
    while seen < ticks {
        let frame = tokio::time::timeout(HANG, body.next())
            .await
            .expect("a tick")
            .expect("the stream stays open")
            .unwrap();
        if let Some(data) = frame.data_ref() {
            text.push_str(&String::from_utf8_lossy(data));
        }
        seen = text.matches("event: tick\n").count();
    }
    Ok(seen)
}

#[tokio::test]
async fn clients_that_never_read_cannot_hold_every_event_stream_slot() {
    let state = bridge("e_events", |_| {}).await;
    // On loopback Linux grows a connection's send buffer to megabytes, which
    // would take minutes of ticks to fill: the accepted sockets inherit a
    // small one from the listener.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(4096).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = serve_on(
        socket.listen(1024).unwrap(),
        &state,
        ServerOptions::default(),
    );
    let mut stalled = Vec::new();
    for _ in 0..64 {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(1024).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        stream
            .write_all(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut status = [0u8; 12];
        tokio::time::timeout(HANG, stream.read_exact(&mut status))
            .await
            .expect("an answer")
            .unwrap();
        assert_eq!(&status, b"HTTP/1.1 200");
        stalled.push(stream);
    }
    assert_eq!(state.event_clients().len(), 64);
    // Every slot is taken; a page that reads gets in once the queues of
    // the clients that never read have stayed full.
    let ticks = eventually_some(HANG, || async {
        match listen(addr, 3).await {
            Ok(ticks) => Some(ticks),
            Err(StatusCode::TOO_MANY_REQUESTS) => None,
            Err(other) => panic!("{other}"),
        }
    })
    .await;
    let ticks = ticks.expect("the newcomer never got a slot");
    assert_eq!(ticks, 3);
    drop(stalled);
}

/// Where the fuzz test puts its arbitrary piece: a JSON body, a path
/// segment or a query string of one route.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// Arbitrary bytes as the JSON body of `METHOD PATH`, often an object
    /// of these fields.
    Body(&'static str, &'static str, &'static [&'static str]),
    /// An arbitrary path segment in place of `{}`.
    Segment(&'static str, &'static str),
    /// An arbitrary query string after `PATH?`.
    Query(&'static str, &'static str),
}

const TARGETS: [Target; 14] = [
    Target::Body("POST", "/api/users", &["user_id", "name", "email"]),
    Target::Body("POST", "/api/users/bulk", &["count", "prefix"]),
    Target::Segment("GET", "/api/users/{}"),
    Target::Query("GET", "/api/users/user_1"),
    Target::Segment("GET", "/api/rebalance/{}"),
    Target::Segment("POST", "/api/nodes/{}/stop"),
    Target::Query("POST", "/api/nodes/standby-1/stop"),
    Target::Segment("POST", "/api/nodes/{}/start"),
    Target::Segment("GET", "/api/{}"),
    Target::Query("GET", "/api/health"),
    Target::Query("GET", "/api/cluster"),
    Target::Query("GET", "/api/layout"),
    Target::Query("GET", "/api/stats"),
    // Last: a valid layout starts a job, which later rounds wait for.
    Target::Body(
        "PUT",
        "/api/layout",
        &[
            "strategy",
            "shards",
            "seed",
            "vnodes",
            "table_size",
            "load_factor",
        ],
    ),
];

/// Bodies: arbitrary bytes; JSON objects of the endpoint's `fields` (and
/// others) with arbitrary values; valid bodies with bytes spliced in.
fn bodies(fields: &'static [&'static str]) -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        (-5i64..20).prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "[a-z0-9_]{0,12}".prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "ring",
            "modulo",
            "jump",
            "maglev",
            "rendezvous",
            "bounded-load"
        ])
        .prop_map(serde_json::Value::from),
    ];
    let value = leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..3)
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    });
    let field = prop_oneof![
        9 => prop::sample::select(fields).prop_map(str::to_string),
        1 => any::<String>(),
    ];
    let object = prop::collection::btree_map(field, value, 0..5).prop_map(|map| {
        serde_json::to_vec(&serde_json::Value::Object(map.into_iter().collect())).unwrap()
    });
    let valid = prop::sample::select(vec![
        r#"{"user_id":"fz_a","name":"Ana","email":"ana@ecomarket.example"}"#,
        r#"{"count":3,"prefix":"fz_b"}"#,
        r#"{"strategy":"ring","shards":[{"name":"s0","weight":1}],"vnodes":160}"#,
    ]);
    let spliced = (
        valid,
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<u8>(), 1..4),
    )
        .prop_map(|(valid, at, bytes)| {
            let mut body = valid.as_bytes().to_vec();
            let at = at.index(body.len() + 1);
            body.splice(at..at, bytes);
            body
        });
    prop_oneof![prop::collection::vec(any::<u8>(), 0..256), object, spliced]
}

/// Path segments and query strings: arbitrary bytes percent-encoded, or
/// arbitrary text of the characters a URI takes as they are.
fn pieces() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let encoded = prop::collection::vec(any::<u8>(), 0..64).prop_map(|bytes| {
        bytes
            .iter()
            .map(|byte| format!("%{byte:02X}"))
            .collect::<String>()
    });
    prop_oneof![
        encoded,
        "[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,64}",
        "(consistency|lsn|mode|x)=[a-z0-9/%-]{0,20}(&(consistency|lsn|mode)=[a-z0-9/%-]{0,20})?",
    ]
}

/// The fuzz test's request for `piece` on `target`.
fn fuzz_request(target: Target, piece: &[u8]) -> Option<Request<Body>> {
    let (method, uri, body) = match target {
        Target::Body(method, path, _) => (method, path.to_string(), piece.to_vec()),
        Target::Segment(method, path) => (
            method,
            path.replace("{}", &String::from_utf8_lossy(piece)),
            Vec::new(),
        ),
        Target::Query(method, path) => (
            method,
            format!("{path}?{}", String::from_utf8_lossy(piece)),
            Vec::new(),
        ),
    };
    // What no client can send (hyper refuses it before the app sees it).
    let uri: axum::http::Uri = uri.parse().ok()?;
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .ok()
}

/// Rows a 2xx answer says it wrote, and the job it started, if any.
fn written(answer: &Answer) -> (i64, Option<u64>) {
    match answer.status {
        StatusCode::CREATED => (answer.json()["inserted"].as_i64().unwrap_or(1), None),
        StatusCode::ACCEPTED => (0, answer.json()["id"].as_u64()),
        _ => (0, None),
    }
}

#[test]
fn arbitrary_input_gets_a_4xx_json_answer_and_writes_nothing() {
    use proptest::strategy::Strategy as _;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Without the local cluster, so that no fuzzed name can stop a node; a
    // node action still parses its path and query before it answers 409.
    let state = runtime.block_on(bridge("e_fuzz", |_| {}));
    let primary = runtime.block_on(common::connect(&CLUSTER.get(), "primary", "e_fuzz"));
    let config = Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    };
    for target in TARGETS {
        let before = runtime
            .block_on(rows::count(&primary))
            .expect("rows counted");
        let inserted = std::sync::atomic::AtomicI64::new(0);
        let job = std::sync::Mutex::new(None);
        let pieces = match target {
            Target::Body(_, _, fields) => bodies(fields).boxed(),
            Target::Segment(..) | Target::Query(..) => {
                pieces().prop_map(String::into_bytes).boxed()
            }
        };
        let mut runner = TestRunner::new(config.clone());
        let outcome = runner.run(&pieces, |piece| {
            let Some(request) = fuzz_request(target, &piece) else {
                return Ok(());
            };
            let answer = runtime.block_on(send(&state, request));
            let shown = String::from_utf8_lossy(&piece).into_owned();
            if answer.status.is_success() {
                let (rows, started) = written(&answer);
                inserted.fetch_add(rows, std::sync::atomic::Ordering::Relaxed);
                if started.is_some() {
                    *job.lock().unwrap() = started;
                }
                return Ok(());
            }
            if !answer.status.is_client_error() {
                return Err(TestCaseError::fail(format!(
                    "{shown:?}: {} {}",
                    answer.status,
                    answer.text()
                )));
            }
            match serde_json::from_slice::<ApiErrorBody>(&answer.body) {
                Ok(error) if !error.error.code.is_empty() && !error.error.message.is_empty() => {
                    Ok(())
                }
                _ => Err(TestCaseError::fail(format!(
                    "{shown:?}: {} without the JSON error shape: {}",
                    answer.status,
                    answer.text()
                ))),
            }
        });
        if let Err(failure) = outcome {
            panic!("{target:?}: {failure}");
        }
        if let Some(id) = job.lock().unwrap().take() {
            runtime.block_on(wait_job(&state, id));
        }
        let after = runtime
            .block_on(rows::count(&primary))
            .expect("rows counted");
        let inserted = inserted.into_inner();
        assert_eq!(
            after,
            before + inserted,
            "{target:?}: rows written beyond the 2xx answers"
        );
        let health = runtime.block_on(get(&state, "/api/health"));
        assert_eq!(health.status, StatusCode::OK, "{target:?}");
    }
}

async fn wait_job(state: &AppState, id: u64) {
    let ended = eventually_some(HANG, || async {
        let job = get(state, &format!("/api/rebalance/{id}")).await.json();
        (job["state"] != "running").then_some(job)
    })
    .await;
    let job = ended.unwrap_or_else(|| panic!("job {id} never ended"));
    assert_eq!(job["state"], "done", "{job}");
}
