//! Load statistics over per-shard key counts: mean, standard deviation and
//! peak-to-mean (max/mean).

use alloc::vec::Vec;

/// How evenly keys spread over shards.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LoadStats {
    /// Keys per shard, in layout order.
    pub counts: Vec<u64>,
    /// Sum of the counts.
    pub total: u64,
    /// Mean keys per shard.
    pub mean: f64,
    /// Population standard deviation of the counts.
    pub std_dev: f64,
    /// Fewest keys on a shard.
    pub min: u64,
    /// Most keys on a shard.
    pub max: u64,
    /// `max / mean`; 1 is perfectly even, 0 when there are no keys.
    pub max_over_mean: f64,
}

impl LoadStats {
    /// Statistics of the given per-shard counts.
    pub fn from_counts(counts: Vec<u64>) -> Self {
        let total: u64 = counts.iter().sum();
        let shard_count = counts.len().max(1) as f64;
        let mean = total as f64 / shard_count;
        let variance = counts
            .iter()
            .map(|count| {
                let diff = *count as f64 - mean;
                diff * diff
            })
            .sum::<f64>()
            / shard_count;
        let min = counts.iter().copied().min().unwrap_or(0);
        let max = counts.iter().copied().max().unwrap_or(0);
        let max_over_mean = if mean > 0.0 { max as f64 / mean } else { 0.0 };
        LoadStats {
            counts,
            total,
            mean,
            std_dev: libm::sqrt(variance),
            min,
            max,
            max_over_mean,
        }
    }

    /// Counts keys per shard from an assignment (`assignment[i]` = shard index).
    pub fn from_assignment(assignment: &[u32], shard_count: usize) -> Self {
        let mut counts = alloc::vec![0u64; shard_count];
        for shard in assignment {
            if let Some(count) = counts.get_mut(*shard as usize) {
                *count += 1;
            }
        }
        LoadStats::from_counts(counts)
    }

    /// Coefficient of variation, `std_dev / mean` (0 when there are no keys).
    pub fn relative_std_dev(&self) -> f64 {
        if self.mean > 0.0 {
            self.std_dev / self.mean
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_of_known_counts() {
        let stats = LoadStats::from_counts(alloc::vec![2, 4, 4, 4, 5, 5, 7, 9]);
        assert_eq!(stats.total, 40);
        assert_eq!(stats.mean, 5.0);
        assert_eq!(stats.std_dev, 2.0);
        assert_eq!((stats.min, stats.max), (2, 9));
        assert_eq!(stats.max_over_mean, 1.8);
    }

    #[test]
    fn no_keys_gives_zeroes() {
        let stats = LoadStats::from_counts(alloc::vec![0, 0]);
        assert_eq!(
            (stats.mean, stats.std_dev, stats.max_over_mean),
            (0.0, 0.0, 0.0)
        );
        let empty = LoadStats::from_counts(Vec::new());
        assert_eq!(empty.total, 0);
    }

    #[test]
    fn assignment_counts_per_shard() {
        let stats = LoadStats::from_assignment(&[0, 2, 2, 1, 2], 3);
        assert_eq!(stats.counts, [1, 1, 3]);
    }
}
