//! The live view's state: is there a bridge, is the event stream up, the
//! cluster's nodes, each standby's recent lag, the counters, the rebalance job
//! and what the explorer predicted for it, and a short log of what happened.
//! Plain Rust, tested natively.

mod changes;
mod explorer_keys;
mod log;
mod names;
mod predict;
mod state;
mod status;
mod words;

pub use changes::failover_sentence;
pub use explorer_keys::explorer_keys;
pub use log::{ActivityLog, LOG_LENGTH, LogEntry, LogKind};
pub use names::NameMap;
pub use predict::{Prediction, compare_with_plan};
pub use state::{LAG_WINDOW_MS, LagPoint, Live, LiveAction};
pub use status::{Applying, BridgeStatus, NodeRequest, StopMode, StreamStatus};
pub use words::{
    HeldRows, MOVE_PHASES, ROWS_SETTLE_MS, bridge_heartbeat, describe_layout, move_phase,
    phase_step, shard_move_copied, shard_move_ended, shard_move_route, standby_lag, write_pause,
};
