//! `GET /metrics` in Prometheus' text format (OpenMetrics 1.0, from the
//! official client, `prometheus-client`): the HTTP requests this edge
//! counted (by method, route template and status, with latency histograms),
//! and what the service reports at the moment of the scrape (nodes, lag,
//! rows per shard, reads, writes, failovers, the rebalance job). Each
//! bridge has its own registry: there is no global recorder, so several
//! bridges can run in one process (as the tests do) without mixing their
//! counts.

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ecoshard_core::wire::{JobState, NodeRole};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::AppState;
use super::error::ApiError;
use crate::service::metrics::Report;

/// What `GET /metrics` answers with (Prometheus asks for it first).
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The route label of the page's static files (and of `/` without a page).
pub(crate) const PAGE_ROUTE: &str = "/";
/// The route label of requests under `/api` that match no route.
pub(crate) const UNMATCHED_ROUTE: &str = "unmatched";

/// Latency bounds: 100 µs doubling 17 times, to about 6.6 s; slower
/// requests land in `+Inf`.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_1, 2.0, 17)
}

/// One request's labels: the route's template, never the raw path, so the
/// number of series stays bounded whatever clients send.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

/// A node's labels: `node`, and `cluster` first when there are several
/// clusters (with one, the series are what they always were).
type NodeLabels = Vec<(&'static str, String)>;

fn node_labels(cluster: Option<&String>, node: &str) -> NodeLabels {
    let mut labels = Vec::with_capacity(2);
    if let Some(cluster) = cluster {
        labels.push(("cluster", cluster.clone()));
    }
    labels.push(("node", node.to_string()));
    labels
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// The HTTP edge's own counts, kept across scrapes.
#[derive(Debug)]
pub(crate) struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
        }
    }
}

/// Middleware: counts every request and its time to the answer's head
/// (for the event stream: until the stream starts).
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = match request.extensions().get::<MatchedPath>() {
        Some(matched) => matched.as_str().to_owned(),
        None if request.uri().path().starts_with("/api") => UNMATCHED_ROUTE.to_owned(),
        None => PAGE_ROUTE.to_owned(),
    };
    let response = next.run(request).await;
    let labels = RequestLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    let metrics = state.http_metrics();
    metrics.requests.get_or_create(&labels).inc();
    metrics
        .latency
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus' text format (OpenMetrics 1.0); docs/api.md lists the metrics",
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String)))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let report = state.service().report();
    match render(state.http_metrics(), &report) {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(error) => ApiError::internal("encoding the metrics", error).into_response(),
    }
}

/// The text of one scrape: a registry made for it, holding the edge's
/// request families and the service's report as of now.
fn render(http: &HttpMetrics, report: &Report) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("ecoshard");
    registry.register(
        "http_requests",
        "HTTP requests answered, by method, route template and status",
        http.requests.clone(),
    );
    registry.register_with_unit(
        "http_request_duration",
        "Time from a request to its answer's head, by method, route template and status",
        Unit::Seconds,
        http.latency.clone(),
    );
    register_nodes(&mut registry, report);
    register_rows(&mut registry, report);
    register_counters(&mut registry, report);
    register_job(&mut registry, report);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn register_nodes(registry: &mut Registry, report: &Report) {
    let up = Family::<NodeLabels, Gauge>::default();
    let primary = Family::<NodeLabels, Gauge>::default();
    let streaming = Family::<NodeLabels, Gauge>::default();
    let replay_lag = Family::<NodeLabels, FloatGauge>::default();
    let byte_lag = Family::<NodeLabels, Gauge>::default();
    let nodes = report.clusters.iter().flat_map(|cluster| {
        cluster
            .nodes
            .iter()
            .map(move |node| (cluster.name.as_ref(), node))
    });
    for (cluster, node) in nodes {
        let labels = node_labels(cluster, &node.name);
        up.get_or_create(&labels).set(i64::from(node.up));
        primary
            .get_or_create(&labels)
            .set(i64::from(node.role == NodeRole::Primary));
        let Some(lag) = node.lag.as_ref().filter(|_| node.role == NodeRole::Standby) else {
            continue;
        };
        let is_streaming = lag.state.as_deref() == Some("streaming");
        streaming
            .get_or_create(&labels)
            .set(i64::from(is_streaming));
        if let Some(ms) = lag.replay_lag_ms {
            replay_lag.get_or_create(&labels).set(ms / 1_000.0);
        }
        if let Some(bytes) = lag.byte_lag {
            byte_lag.get_or_create(&labels).set(bytes);
        }
    }
    registry.register(
        "node_up",
        "1 when the node answered its last health check",
        up,
    );
    registry.register(
        "node_primary",
        "1 for the node that is the primary now",
        primary,
    );
    registry.register(
        "standby_streaming",
        "1 when the standby streams from the primary (pg_stat_replication.state)",
        streaming,
    );
    registry.register_with_unit(
        "standby_replay_lag",
        "pg_stat_replication.replay_lag; absent while PostgreSQL reports none",
        Unit::Seconds,
        replay_lag,
    );
    registry.register_with_unit(
        "standby_lag",
        "WAL the standby has yet to replay: pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)",
        Unit::Bytes,
        byte_lag,
    );
}

/// Rows per shard as last estimated, labelled `shard`, and `cluster` first
/// when there are several clusters (a shard whose cluster's primary has
/// not answered yet has no series: unknown).
fn register_rows(registry: &mut Registry, report: &Report) {
    let rows = Family::<Vec<(&'static str, String)>, Gauge>::default();
    for load in &report.stats.rows {
        let mut labels = Vec::with_capacity(2);
        if let Some(cluster) = &load.cluster {
            labels.push(("cluster", cluster.clone()));
        }
        labels.push(("shard", load.shard.clone()));
        rows.get_or_create(&labels)
            .set(i64::try_from(load.keys).unwrap_or(i64::MAX));
    }
    registry.register(
        "shard_rows",
        "Rows in the shard: PostgreSQL's estimate on its cluster's primary, read every second",
        rows,
    );
}

fn register_counters(registry: &mut Registry, report: &Report) {
    let reads = Family::<NodeLabels, Counter>::default();
    for cluster in &report.clusters {
        for count in &cluster.reads {
            let labels = node_labels(cluster.name.as_ref(), &count.node);
            reads.get_or_create(&labels).inc_by(count.count);
        }
    }
    registry.register("reads", "Reads served, by the node that served them", reads);
    registry.register("writes", "Rows written", counter(report.stats.writes));
    registry.register(
        "failed_reads",
        "Reads no node could serve",
        counter(report.stats.failed_reads),
    );
    register_failovers(registry, report);
    registry.register(
        "layout_version",
        "Version of the layout writes go by",
        gauge(report.layout_version),
    );
}

/// Failovers: one counter with one cluster, one per cluster (`cluster`
/// label) with several.
fn register_failovers(registry: &mut Registry, report: &Report) {
    const HELP: &str = "Failovers this bridge made or followed (primary changes it went through)";
    if let [only] = report.clusters.as_slice()
        && only.name.is_none()
    {
        registry.register("failovers", HELP, counter(only.failovers));
        return;
    }
    let failovers = Family::<Vec<(&'static str, String)>, Counter>::default();
    for cluster in &report.clusters {
        let name = cluster.name.clone().unwrap_or_default();
        failovers
            .get_or_create(&vec![("cluster", name)])
            .inc_by(cluster.failovers);
    }
    registry.register("failovers", HELP, failovers);
}

fn register_job(registry: &mut Registry, report: &Report) {
    let job = report.job.as_ref();
    let state = Family::<StateLabels, Gauge>::default();
    for each in [JobState::Running, JobState::Done, JobState::Failed] {
        let now = job.is_some_and(|job| job.state == each);
        state
            .get_or_create(&StateLabels {
                state: job_state_name(each),
            })
            .set(i64::from(now));
    }
    registry.register(
        "rebalance_state",
        "1 for the state of the running or last rebalance job (all 0 before the first)",
        state,
    );
    registry.register(
        "rebalance_job",
        "Id of the running or last rebalance job (0 before the first)",
        gauge(job.map_or(0, |job| job.id)),
    );
    registry.register(
        "rebalance_rows_moved",
        "Rows the running or last job has moved",
        gauge(job.map_or(0, |job| job.moved)),
    );
    registry.register(
        "rebalance_rows_planned",
        "Rows the running or last job's plan moves (0 while it plans)",
        gauge(job.map_or(0, |job| job.total)),
    );
}

fn counter(value: u64) -> Counter {
    let counter = Counter::default();
    counter.inc_by(value);
    counter
}

fn gauge(value: u64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    gauge
}

fn job_state_name(state: JobState) -> &'static str {
    match state {
        JobState::Running => "running",
        JobState::Done => "done",
        JobState::Failed => "failed",
    }
}

/// The method as a label: the standard ones by name, any other as `other`.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(method: &str, expected: &str) {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        assert_eq!(method_label(&method), expected);
    }

    #[test]
    fn methods_are_labelled_by_name_and_others_as_other() {
        check("GET", "GET");
        check("POST", "POST");
        check("PUT", "PUT");
        check("OPTIONS", "OPTIONS");
        check("BREW", "other");
        check("get", "other");
    }
}
