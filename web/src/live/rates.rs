//! Reads per second per node, from the bridge's read counters in the ticks
//! of the last two seconds.

use std::collections::{BTreeMap, VecDeque};

use ecoshard_core::wire::Stats;

/// Span over which reads per second are counted, in ms.
pub const RATE_WINDOW_MS: u64 = 2_000;

/// Recent counters and the rates they give.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadRates {
    history: VecDeque<(u64, Vec<(String, u64)>)>,
    rates: BTreeMap<String, f64>,
}

impl ReadRates {
    /// Takes the counters of a tick at `at_ms`.
    pub fn record(&mut self, stats: &Stats, at_ms: u64) {
        let counts: Vec<(String, u64)> = stats
            .reads
            .iter()
            .map(|count| (count.node.clone(), count.count))
            .collect();
        self.history.push_back((at_ms, counts));
        while self
            .history
            .front()
            .is_some_and(|(first, _)| *first + RATE_WINDOW_MS < at_ms)
        {
            self.history.pop_front();
        }
        self.rates.clear();
        let (Some((first_ms, first)), Some((last_ms, last))) =
            (self.history.front(), self.history.back())
        else {
            return;
        };
        let span = last_ms.saturating_sub(*first_ms) as f64 / 1_000.0;
        if span <= 0.0 {
            return;
        }
        for (node, count) in last {
            let earlier = first
                .iter()
                .find(|(name, _)| name == node)
                .map_or(0, |(_, count)| *count);
            // A restarted bridge counts from 0 again: no negative rates.
            let rate = count.saturating_sub(earlier) as f64 / span;
            self.rates.insert(node.clone(), rate);
        }
    }

    /// Reads per second `node` served lately (0 when unknown).
    pub fn of(&self, node: &str) -> f64 {
        self.rates.get(node).copied().unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use ecoshard_core::wire::NodeCount;

    use super::*;

    fn stats(counts: &[(&str, u64)]) -> Stats {
        Stats {
            reads: counts
                .iter()
                .map(|(node, count)| NodeCount {
                    per_sec: 0.0,
                    node: node.to_string(),
                    count: *count,
                })
                .collect(),
            ..Stats::default()
        }
    }

    #[test]
    fn rates_over_the_window_never_negative() {
        let mut rates = ReadRates::default();
        rates.record(&stats(&[("standby-1", 10), ("standby-2", 10)]), 1_000);
        assert_eq!(rates.of("standby-1"), 0.0, "one sample: no rate yet");
        rates.record(&stats(&[("standby-1", 30), ("standby-2", 10)]), 2_000);
        assert_eq!(rates.of("standby-1"), 20.0);
        assert_eq!(rates.of("standby-2"), 0.0);
        // Older samples leave the window.
        rates.record(&stats(&[("standby-1", 40), ("standby-2", 10)]), 4_000);
        assert_eq!(rates.of("standby-1"), 5.0, "(40 - 30) / 2 s");
        // A restarted bridge: counters back to 0.
        rates.record(&stats(&[("standby-1", 2)]), 4_500);
        assert_eq!(rates.of("standby-1"), 0.0);
        assert_eq!(rates.of("primary"), 0.0);
    }
}
