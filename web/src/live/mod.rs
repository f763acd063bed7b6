//! The live view's state: is there a bridge, is the event stream up, the
//! cluster's nodes, each standby's recent lag, the counters, the rebalance job
//! and a short log of what the person did. Plain Rust, tested natively.

mod state;

pub use state::{
    BridgeStatus, LAG_WINDOW_MS, LagPoint, Live, LiveAction, LogEntry, LogKind, StreamStatus,
};
