//! The live view's small states: is there a bridge, is the stream up, what
//! the page asked of a node, and where applying a layout stands.

use crate::api::ApiError;
use crate::live::Prediction;

/// Whether a bridge answers where the page was loaded from.
#[derive(Clone, Debug, PartialEq)]
pub enum BridgeStatus {
    /// Asking.
    Checking,
    /// No bridge: the page works as the explorer alone.
    Absent {
        /// What happened when asking, for the curious.
        reason: String,
    },
    /// A bridge answered its health check.
    Present {
        /// Its version.
        version: String,
    },
}

/// The event stream's state.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamStatus {
    /// Not started (no bridge).
    Idle,
    /// Opening.
    Connecting,
    /// Receiving ticks.
    Open,
    /// Dropped; trying again after a pause.
    Reconnecting {
        /// Tries since it dropped.
        attempt: u32,
        /// Pause before the next try, in ms.
        delay_ms: u32,
    },
}

/// How to stop a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// A clean shutdown (`pg_ctl stop -m fast`).
    Fast,
    /// Like a crash (`-m immediate`: no checkpoint).
    Immediate,
}

impl StopMode {
    /// The `mode` query value.
    pub fn name(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// A stop or start the page asked for and is waiting on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeRequest {
    /// Stopping.
    Stop(StopMode),
    /// Starting.
    Start,
}

/// The layout the page asked the bridge to apply, and what came of it.
#[derive(Clone, Debug, PartialEq)]
pub enum Applying {
    /// Nothing asked yet (or the answer was read).
    Idle,
    /// `PUT /api/layout` is on its way.
    Sending {
        /// The layout, for people.
        target: String,
    },
    /// The bridge started a job.
    Started {
        /// The layout, for people.
        target: String,
        /// The job it started.
        job_id: u64,
        /// What the explorer expected it to move, worked out when it was sent.
        prediction: Option<Prediction>,
    },
    /// The layout was the one in force already: nothing stored or moved.
    InForce {
        /// The layout, for people.
        target: String,
        /// Its version.
        version: u64,
    },
    /// The bridge refused it.
    Refused {
        /// The layout, for people.
        target: String,
        /// Its answer.
        error: ApiError,
    },
}
