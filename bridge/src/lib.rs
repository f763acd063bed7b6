//! ecoshard's bridge: the `ecoshard` command line, the local PostgreSQL
//! cluster it can start, and the HTTP server that routes rows to shards on a
//! replicated PostgreSQL and streams its replication lag.
//!
//! `main.rs` only calls [`cli::main`]; tests build the app with [`app`] over
//! an [`AppState`] and call it without a socket, or serve it on port 0.

pub mod api;
pub mod batch;
pub mod cli;
pub mod db;
pub mod error;
pub mod failover;
pub mod monitor;
pub mod nodes;
pub(crate) mod reads;
pub mod rebalance;
pub mod routing;
pub mod schema;
pub mod server;
pub mod state;
pub mod topology;
pub mod validate;
pub mod web;

pub use api::app;
pub use ecoshard_postgres::{ClusterOptions, LocalCluster};
pub use error::ApiError;
pub use state::{AppState, BridgeConfig};
pub use topology::Topology;
