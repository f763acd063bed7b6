//! `GET /metrics` scraped on a real cluster of its own: the text parses as
//! Prometheus' format, and its counters and gauges move as the bridge
//! works — reads, writes, a standby stopped and started, a rebalance job,
//! a failover — with request counts labelled by route template.

mod common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{
    LIMIT, bridge_with, control, eventually_some, get, post, post_json, send, start_cluster,
    wait_streaming,
};
use ecoshard_bridge::AppState;
use ecoshard_core::wire::{JobState, RebalanceJob};

/// This binary's cluster, on ports from 31000.
const PORT: u16 = 31000;

/// One scrape: every sample, by metric name and labels.
#[derive(Debug)]
struct Scrape {
    samples: BTreeMap<(String, BTreeMap<String, String>), f64>,
}

impl Scrape {
    /// The sample `name` whose labels are exactly `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels = labels
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        self.samples.get(&(name.to_string(), labels)).copied()
    }

    /// The sample `name` with `labels`, which must be there.
    fn must(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in the scrape: {self:#?}"))
    }

    /// The sum of every sample `name`, whatever its labels.
    fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|((sample, _), _)| sample == name)
            .map(|(_, value)| value)
            .sum()
    }

    /// Every value of label `label` among the samples `name`.
    fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        self.samples
            .keys()
            .filter(|(sample, _)| sample == name)
            .filter_map(|(_, labels)| labels.get(label).cloned())
            .collect()
    }
}

/// Parses Prometheus' text format (the OpenMetrics flavour this bridge
/// sends): `name{key="value",…} number` lines, `#` lines, `# EOF` last.
fn parse(text: &str) -> Scrape {
    assert_eq!(text.lines().last(), Some("# EOF"), "{text}");
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            number => number
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, parse_labels(labels.trim_end_matches('}'))),
            None => (series, BTreeMap::new()),
        };
        let previous = samples.insert((name.to_string(), labels), value);
        assert!(previous.is_none(), "a series twice: {line}");
    }
    Scrape { samples }
}

/// `key="value",…` (values here hold no quotes or commas).
fn parse_labels(labels: &str) -> BTreeMap<String, String> {
    labels
        .split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').expect("key=value");
            (key.to_string(), value.trim_matches('"').to_string())
        })
        .collect()
}

async fn scrape(state: &AppState) -> Scrape {
    let answer = get(state, "/metrics").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let content_type = answer.headers[header::CONTENT_TYPE].to_str().unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    parse(&answer.text())
}

/// Polls scrapes until `holds` says yes; the last scrape either way.
async fn scrape_until(state: &AppState, holds: impl Fn(&Scrape) -> bool) -> Scrape {
    let found = eventually_some(LIMIT, || async {
        let scrape = scrape(state).await;
        holds(&scrape).then_some(scrape)
    })
    .await;
    match found {
        Some(scrape) => scrape,
        None => scrape(state).await,
    }
}

#[tokio::test]
async fn metrics_follow_reads_writes_nodes_a_job_and_a_failover() {
    let local = start_cluster("metrics", PORT, false);
    let state = bridge_with(&local, "t_metrics", |config| {
        config.control = control(&local);
        config.auto_failover = true;
    })
    .await;
    wait_streaming(&state).await;
    let first = scrape(&state).await;
    assert_eq!(first.must("ecoshard_writes_total", &[]), 0.0);
    assert_eq!(first.must("ecoshard_failovers_total", &[]), 0.0);
    assert_eq!(
        first.must("ecoshard_node_primary", &[("node", "primary")]),
        1.0
    );
    for node in ["primary", "standby-1", "standby-2"] {
        assert_eq!(first.must("ecoshard_node_up", &[("node", node)]), 1.0);
    }
    for job_state in ["running", "done", "failed"] {
        let labels = [("state", job_state)];
        assert_eq!(first.must("ecoshard_rebalance_state", &labels), 0.0);
    }

    writes_and_reads_are_counted(&state, &first).await;
    a_stopped_standby_is_down_then_up(&state).await;
    a_job_reports_its_rows_and_state(&state).await;
    a_failover_is_counted(&state).await;
}

async fn writes_and_reads_are_counted(state: &AppState, before: &Scrape) {
    let bulk = post_json(state, "/api/users/bulk", r#"{"count":100,"prefix":"m"}"#).await;
    assert_eq!(bulk.status, StatusCode::CREATED, "{}", bulk.text());
    let one = post_json(state, "/api/users", r#"{"user_id":"solo"}"#).await;
    assert_eq!(one.status, StatusCode::CREATED, "{}", one.text());
    let reads_before = before.sum("ecoshard_reads_total");
    for index in 0..10 {
        let read = get(state, &format!("/api/users/m{index}?consistency=strong")).await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.text());
    }
    let missing = get(state, "/api/users/nobody?consistency=strong").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let unrouted = get(state, "/api/no/such/route").await;
    assert_eq!(unrouted.status, StatusCode::NOT_FOUND);

    let after = scrape(state).await;
    assert_eq!(after.must("ecoshard_writes_total", &[]), 101.0);
    // Strong reads are the primary's: ten found and the missing one (a
    // node that answers "not found" served the read).
    assert_eq!(after.sum("ecoshard_reads_total") - reads_before, 11.0);
    let primary_reads = after.must("ecoshard_reads_total", &[("node", "primary")]);
    let primary_before = before.must("ecoshard_reads_total", &[("node", "primary")]);
    assert_eq!(primary_reads - primary_before, 11.0);
    let read_route = [
        ("method", "GET"),
        ("route", "/api/users/{id}"),
        ("status", "200"),
    ];
    assert_eq!(
        after.must("ecoshard_http_requests_total", &read_route),
        10.0
    );
    assert_eq!(
        after.must("ecoshard_http_request_duration_seconds_count", &read_route),
        10.0
    );
    let slowest = [read_route.as_slice(), &[("le", "+Inf")]].concat();
    let bucket = "ecoshard_http_request_duration_seconds_bucket";
    assert_eq!(after.must(bucket, &slowest), 10.0);
    let not_found = [
        ("method", "GET"),
        ("route", "/api/users/{id}"),
        ("status", "404"),
    ];
    assert_eq!(after.must("ecoshard_http_requests_total", &not_found), 1.0);
    let unmatched = [("method", "GET"), ("route", "unmatched"), ("status", "404")];
    assert_eq!(after.must("ecoshard_http_requests_total", &unmatched), 1.0);
    let written = [
        ("method", "POST"),
        ("route", "/api/users"),
        ("status", "201"),
    ];
    assert_eq!(after.must("ecoshard_http_requests_total", &written), 1.0);
    // Templates only: no raw path (no user id) ever becomes a label.
    let routes = after.label_values("ecoshard_http_requests_total", "route");
    assert!(
        routes
            .iter()
            .all(|route| !route.contains("m0") && !route.contains("nobody")),
        "{routes:?}"
    );
    // The standbys stream: their lag in bytes is reported.
    for standby in ["standby-1", "standby-2"] {
        let lagging = after.must("ecoshard_standby_lag_bytes", &[("node", standby)]);
        assert!(lagging >= 0.0, "{standby}: {lagging}");
    }
}

async fn a_stopped_standby_is_down_then_up(state: &AppState) {
    let stopped = post(state, "/api/nodes/standby-2/stop").await;
    assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.text());
    let down = scrape_until(state, |scrape| {
        scrape.value("ecoshard_node_up", &[("node", "standby-2")]) == Some(0.0)
    })
    .await;
    assert_eq!(
        down.must("ecoshard_node_up", &[("node", "standby-2")]),
        0.0,
        "standby-2 never reported down"
    );
    assert_eq!(down.must("ecoshard_node_up", &[("node", "standby-1")]), 1.0);
    let started = post(state, "/api/nodes/standby-2/start").await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    let up = scrape_until(state, |scrape| {
        scrape.value("ecoshard_node_up", &[("node", "standby-2")]) == Some(1.0)
    })
    .await;
    assert_eq!(
        up.must("ecoshard_node_up", &[("node", "standby-2")]),
        1.0,
        "standby-2 never reported up again"
    );
    wait_streaming(state).await;
}

async fn a_job_reports_its_rows_and_state(state: &AppState) {
    let request = Request::put("/api/layout")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"strategy":"ring","shards":5}"#))
        .unwrap();
    let answer = send(state, request).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let started: RebalanceJob = answer.parse();
    let done = eventually_some(LIMIT, || async {
        let job: RebalanceJob = get(state, &format!("/api/rebalance/{}", started.id))
            .await
            .parse();
        (job.state == JobState::Done).then_some(job)
    })
    .await
    .expect("the job ends");
    assert!(done.moved > 0, "{done:?}");
    let scrape = scrape(state).await;
    assert_eq!(scrape.must("ecoshard_rebalance_job", &[]), done.id as f64);
    let moved = scrape.must("ecoshard_rebalance_rows_moved", &[]);
    assert_eq!(moved, done.moved as f64);
    let planned = scrape.must("ecoshard_rebalance_rows_planned", &[]);
    assert_eq!(planned, done.total as f64);
    let states = [("done", 1.0), ("running", 0.0), ("failed", 0.0)];
    for (job_state, expected) in states {
        let labels = [("state", job_state)];
        assert_eq!(scrape.must("ecoshard_rebalance_state", &labels), expected);
    }
    assert_eq!(
        scrape.must("ecoshard_layout_version", &[]),
        done.to_version as f64
    );
}

async fn a_failover_is_counted(state: &AppState) {
    let stopped = post(state, "/api/nodes/primary/stop?mode=immediate").await;
    assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.text());
    let after = scrape_until(state, |scrape| {
        scrape.value("ecoshard_failovers_total", &[]) == Some(1.0)
    })
    .await;
    assert_eq!(
        after.must("ecoshard_failovers_total", &[]),
        1.0,
        "no failover counted"
    );
    assert_eq!(
        after.must("ecoshard_node_primary", &[("node", "primary")]),
        0.0
    );
    let primaries = ["standby-1", "standby-2"]
        .map(|node| after.must("ecoshard_node_primary", &[("node", node)]));
    assert_eq!(primaries.iter().sum::<f64>(), 1.0, "{primaries:?}");
    assert_eq!(after.must("ecoshard_node_up", &[("node", "primary")]), 0.0);
}
