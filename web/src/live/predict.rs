//! The explorer's prediction for applying its layout to the database: the
//! core's plan from the layout the database is in to the explorer's, over the
//! explorer's numbered keys (`user_0` … `user_{N-1}`). The bridge plans the
//! same change over the ids the database really holds; the two agree exactly
//! when those are the explorer's keys, and within sampling error otherwise.

use ecoshard_core::{Error, Layout, plan_hashes};

use crate::state::KeySet;

/// What the explorer expects a layout change to move.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Version of the database's layout the change starts from.
    pub from_version: u64,
    /// Keys the explorer placed.
    pub key_count: u64,
    /// Of those, the keys whose shard changes.
    pub moved: u64,
    /// The least fraction any placement must move for this change.
    pub ideal_fraction: f64,
    /// Whether the database held the explorer's keys when it was worked out
    /// (then the plan counts them, and other rows besides).
    pub keys_in_database: bool,
}

impl Prediction {
    /// The core's plan from `database` (version `from_version`) to `target`
    /// over the explorer's keys (numbered, or sampled from the database), each side hashed with its own seed as
    /// the bridge does.
    pub fn compute(
        database: &Layout,
        from_version: u64,
        target: &Layout,
        keys: &KeySet,
    ) -> Result<Prediction, Error> {
        let old = database.build()?;
        let new = target.build()?;
        let old_hashes = keys.hashes(database.seed);
        let plan = if target.seed == database.seed {
            plan_hashes(&old, &new, &old_hashes, &old_hashes)
        } else {
            let new_hashes = keys.hashes(target.seed);
            plan_hashes(&old, &new, &old_hashes, &new_hashes)
        };
        Ok(Prediction {
            from_version,
            key_count: plan.total,
            moved: plan.moved,
            ideal_fraction: plan.ideal_fraction,
            keys_in_database: false,
        })
    }

    /// The same prediction, saying whether the database holds the keys.
    pub fn with_keys_in_database(self, keys_in_database: bool) -> Prediction {
        Prediction {
            keys_in_database,
            ..self
        }
    }

    /// `moved / key_count`.
    pub fn fraction(&self) -> f64 {
        if self.key_count == 0 {
            0.0
        } else {
            self.moved as f64 / self.key_count as f64
        }
    }

    /// The rows expected to move out of `rows`, at the predicted fraction.
    pub fn rows_for(&self, rows: u64) -> u64 {
        (self.fraction() * rows as f64).round() as u64
    }
}

/// How the explorer's prediction compares with the bridge's plan over the
/// database's real rows, in one sentence.
pub fn compare_with_plan(
    prediction: &Prediction,
    job_from_version: u64,
    plan_moved: u64,
    plan_rows: u64,
) -> (bool, String) {
    let expected = prediction.rows_for(plan_rows);
    if prediction.from_version != job_from_version {
        return (
            false,
            format!(
                "the explorer predicted the change from layout v{}, but the database was at \
                 v{job_from_version} when the job began (another layout was applied meanwhile): \
                 two different changes, so the counts are not comparable",
                prediction.from_version
            ),
        );
    }
    if prediction.key_count == plan_rows && prediction.moved == plan_moved {
        return (
            true,
            format!(
                "the explorer predicted exactly this: the database holds {} rows and the same \
                 change moves {} of the explorer's {} keys — the same core on both sides",
                crate::format::thousands(plan_rows),
                crate::format::thousands(prediction.moved),
                crate::format::thousands(prediction.key_count)
            ),
        );
    }
    let apart = expected.abs_diff(plan_moved);
    let why = if prediction.keys_in_database {
        format!(
            "the database holds the explorer's keys and {} other rows besides",
            crate::format::thousands(plan_rows.saturating_sub(prediction.key_count))
        )
    } else {
        "insert the explorer's keys to compare key for key".to_string()
    };
    (
        apart == 0,
        format!(
            "the explorer's {} keys (user_0 …) move {:.1} %, which for the database's {} rows \
             is about {}; the plan counts the ids the database really holds, so the two differ \
             by {} rows — a sample's error, not a disagreement ({why})",
            crate::format::thousands(prediction.key_count),
            prediction.fraction() * 100.0,
            crate::format::thousands(plan_rows),
            crate::format::thousands(expected),
            crate::format::thousands(apart)
        ),
    )
}

#[cfg(test)]
mod tests {
    use ecoshard_core::{DEFAULT_KEY_PREFIX, Shard, StrategyKind, plan, plan_numbered};

    use super::*;

    fn ring(shards: u64) -> Layout {
        Layout::with_count(StrategyKind::Ring, shards).unwrap()
    }

    #[test]
    fn the_prediction_is_the_cores_plan_from_the_databases_layout() {
        let prediction = Prediction::compute(&ring(3), 1, &ring(4), &2_000.into()).unwrap();
        let expected = plan_numbered(
            &ring(3).build().unwrap(),
            &ring(4).build().unwrap(),
            DEFAULT_KEY_PREFIX,
            2_000,
        );
        assert_eq!(prediction.moved, expected.moved);
        assert_eq!(prediction.key_count, 2_000);
        assert_eq!(prediction.ideal_fraction, 0.25);
        assert_eq!(prediction.from_version, 1);
        // From the layout in force to itself, nothing moves.
        let same = Prediction::compute(&ring(4), 2, &ring(4), &2_000.into()).unwrap();
        assert_eq!(same.moved, 0);
        assert_eq!(same.rows_for(10_000), 0);
    }

    #[test]
    fn each_side_hashes_with_its_own_seed_as_the_bridge_does() {
        let database = ring(3);
        let target = Layout::new(StrategyKind::Ring, Shard::numbered(3)).with_seed(7);
        let prediction = Prediction::compute(&database, 1, &target, &500.into()).unwrap();
        let keys: Vec<Vec<u8>> = (0..500).map(|i| format!("user_{i}").into_bytes()).collect();
        let expected = plan(
            &database.build().unwrap(),
            &target.build().unwrap(),
            keys.iter().map(Vec::as_slice),
        );
        assert_eq!(prediction.moved, expected.moved);
        assert!(prediction.moved > 0, "a new seed reshuffles the keys");
    }

    #[test]
    fn the_comparison_says_exact_when_the_keys_are_the_same() {
        let prediction = Prediction {
            from_version: 1,
            key_count: 2_000,
            moved: 466,
            ideal_fraction: 0.25,
            keys_in_database: false,
        };
        let (agrees, text) = compare_with_plan(&prediction, 1, 466, 2_000);
        assert!(agrees);
        assert!(text.contains("exactly"), "{text}");
        let (agrees, text) = compare_with_plan(&prediction, 2, 466, 2_000);
        assert!(!agrees);
        assert!(
            text.contains("from layout v1, but the database was at v2"),
            "{text}"
        );
        let (agrees, text) = compare_with_plan(&prediction, 1, 2_400, 10_000);
        assert!(!agrees);
        assert!(text.contains("about 2,330"), "{text}");
        assert!(text.contains("differ by 70 rows"), "{text}");
        assert_eq!(prediction.rows_for(0), 0);
    }
}
