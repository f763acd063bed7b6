//! Connections out of a node's pool, always within a deadline, and closed
//! rather than given back when a statement on them ran past it.

use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio::time::Instant;
use tokio_postgres::NoTls;

/// Why no connection came out of a pool.
#[derive(Debug)]
pub enum CheckoutError {
    /// None before the deadline (the node may be hung).
    TimedOut,
    /// The pool's own error.
    Pool(PoolError),
}

impl CheckoutError {
    /// Whether it says the node itself is gone or silent, rather than the
    /// pool being busy.
    pub(crate) fn is_node(&self) -> bool {
        match self {
            CheckoutError::TimedOut => true,
            CheckoutError::Pool(error) => super::pool_failure_is_node(error),
        }
    }
}

impl CheckoutError {
    /// For a write: nothing was sent, so nothing was written.
    pub(crate) fn not_taken(&self) -> crate::db::WriteFailure {
        crate::db::WriteFailure::NotTaken {
            unavailable: self.is_node(),
            message: self.to_string(),
        }
    }
}

impl std::fmt::Display for CheckoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckoutError::TimedOut => f.write_str("no connection before the deadline"),
            CheckoutError::Pool(error) => f.write_str(&super::describe_pool(error)),
        }
    }
}

/// A connection from `pool` by `deadline`.
pub async fn checkout(pool: &Pool, deadline: Instant) -> Result<Object, CheckoutError> {
    match tokio::time::timeout_at(deadline, pool.get()).await {
        Ok(got) => got.map_err(CheckoutError::Pool),
        Err(_) => Err(CheckoutError::TimedOut),
    }
}

/// Closes a connection whose statement ran past its deadline instead of
/// handing it back to the pool, where the next request would queue behind
/// the statement still outstanding (on a hung node, for ever).
pub fn discard(client: Object) {
    drop(Object::take(client));
}

/// A pool of at most `size` connections made with `config`, waiting at most
/// `wait` for a free one.
pub(crate) fn make_pool(config: &tokio_postgres::Config, size: usize, wait: Duration) -> Pool {
    let manager = Manager::from_config(
        config.clone(),
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    // Building fails only without a runtime or with a zero size; neither happens here.
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(wait))
        .create_timeout(Some(Duration::from_secs(2)))
        .recycle_timeout(Some(Duration::from_secs(1)))
        .build()
        .unwrap_or_else(|error| unreachable!("pool settings are valid: {error}"))
}
