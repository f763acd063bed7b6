//! The live view's state: is there a bridge, is the event stream up, the
//! cluster's nodes, each standby's recent lag, the counters, the rebalance job
//! and what the explorer predicted for it, and a short log of what happened.
//! Plain Rust, tested natively.

mod predict;
mod state;

pub use predict::{Prediction, compare_with_plan};
pub use state::{
    Applying, BridgeStatus, LAG_WINDOW_MS, LagPoint, Live, LiveAction, LogEntry, LogKind,
    NodeRequest, StopMode, StreamStatus, failover_sentence,
};
