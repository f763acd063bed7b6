//! NGINX in front of bridges for the browser tests: the bridge suite's own
//! helper (`bridge/tests/common/balancer.rs`, `nginx/local.conf` filled in),
//! included rather than copied, with the two things it takes from that
//! suite's `blocking` module.

#![allow(dead_code)]

#[path = "../../../bridge/tests/common/balancer.rs"]
pub mod balancer;

/// What `balancer.rs` takes from the bridge suite's `common::blocking`.
mod blocking {
    use std::time::{Duration, Instant};

    /// How long an answer through the load balancer may take.
    pub const ANSWER_WITHIN: Duration = Duration::from_secs(60);

    /// Asks `condition` every 20 ms until it holds or `limit` passes.
    pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if condition() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
