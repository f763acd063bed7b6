//! ecoshard's bridge: the `ecoshard` command line, the local PostgreSQL
//! cluster it can start, and the HTTP server that routes rows to shards on a
//! replicated PostgreSQL and streams its replication lag.
//!
//! `main.rs` only calls [`cli::main`]; tests build the app with [`app`] over
//! an [`AppState`] and call it without a socket, or serve it on port 0.

pub mod cluster;
pub mod db;
pub mod http;
pub mod routing;
pub mod service;

pub use cluster::topology::Topology;
pub use cluster::topology::local_config;
pub use ecoshard_postgres::{ClusterOptions, LocalCluster};
pub use http::Token;
pub use http::app;
pub use http::error::ApiError;
pub use http::server::{ServerOptions, serve, serve_with, shutdown_signal};
pub use http::{AppState, BridgeConfig, hostname};
pub use service::VERIFY_LIMIT;
pub use service::generate_deadline;
pub use service::rebalance::{DEFAULT_BATCH_ROWS, check_database_layout};
pub use service::ticks::TICK;
pub use service::{ClusterSpec, Identity, Service};
