//! A small xorshift generator for tests and benches that pick random kill
//! points or pauses: its seed is printed, so a failing run can be repeated
//! with `ECOSHARD_KILL_SEED`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Xorshift64 state (never 0).
pub struct Random(u64);

impl Random {
    /// Seeded from `ECOSHARD_KILL_SEED`, else from the clock; the seed is
    /// printed on stderr.
    pub fn seeded() -> Self {
        let seed = std::env::var("ECOSHARD_KILL_SEED")
            .ok()
            .and_then(|seed| seed.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |since| since.as_nanos() as u64)
            })
            | 1;
        eprintln!("ECOSHARD_KILL_SEED={seed}");
        Random(seed)
    }

    /// A number in `0..bound` (0 when `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }
}
