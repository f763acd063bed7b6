//! The headline's judgement of a change: how the keys it moved compare with the
//! least any placement must move, in words — including why a change can move
//! fewer than that "minimum" (it is an expectation over keys, and one key set
//! is one sample of it).

use ecoshard_core::Plan;

use crate::format::{decimal, percent, thousands};

/// How the verdict is coloured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// Nothing moved.
    Neutral,
    /// Close to the minimum, or under it.
    Good,
    /// Somewhat more.
    Fair,
    /// Far more.
    Poor,
}

impl Tone {
    /// Its CSS class.
    pub fn class(self) -> &'static str {
        match self {
            Tone::Neutral => "neutral",
            Tone::Good => "good",
            Tone::Fair => "fair",
            Tone::Poor => "poor",
        }
    }
}

/// The badge beside the meter, and a sentence under it when the badge alone
/// would puzzle.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Its colour.
    pub tone: Tone,
    /// The badge: `1.05× the minimum`.
    pub badge: String,
    /// Why, when the badge needs it.
    pub note: Option<String>,
}

/// Keys that stay on their shard while the shard changes cluster: data that
/// moves between servers though no key changes shard (the core plan's
/// `cluster_moves().shards`). Zero when no cluster is named.
pub fn carried_keys(plan: &Plan) -> u64 {
    if plan
        .new_clusters
        .iter()
        .chain(&plan.old_clusters)
        .all(Option::is_none)
    {
        return 0;
    }
    plan.cluster_moves()
        .shards
        .iter()
        .map(|shard| shard.keys)
        .sum()
}

/// The keys the change moves between servers: those that change shard,
/// and those carried with their shard to another cluster.
pub fn moving_keys(plan: &Plan) -> u64 {
    plan.moved + carried_keys(plan)
}

/// The kicker's shards and clusters: "3 → 4 shards" with no cluster
/// named, else with the clusters each side is placed over ("4 shards on
/// 1 → 2 clusters", "4 → 5 shards on 2 clusters").
pub fn shards_and_clusters(plan: &Plan) -> String {
    let (old, new) = (plan.old_shards.len(), plan.new_shards.len());
    let shards = if old == new && carried_keys(plan) > 0 {
        format!("{new} shards")
    } else {
        format!("{old} → {new} shards")
    };
    // Distinct names, by a scan: at most 8 clusters, and no sort's code.
    let count = |clusters: &[Option<String>]| {
        let mut names: Vec<&Option<String>> = Vec::new();
        for cluster in clusters {
            if !names.contains(&cluster) {
                names.push(cluster);
            }
        }
        names.len()
    };
    let (before, after) = (count(&plan.old_clusters), count(&plan.new_clusters));
    let named = plan
        .new_clusters
        .iter()
        .chain(&plan.old_clusters)
        .any(Option::is_some);
    match (named, before == after) {
        (false, _) => shards,
        (true, true) if after == 1 => format!("{shards} on 1 cluster"),
        (true, true) => format!("{shards} on {after} clusters"),
        (true, false) => format!("{shards} on {before} → {after} clusters"),
    }
}

/// Judges `plan`.
pub fn verdict(plan: &Plan) -> Verdict {
    let moved_fraction = plan.moved_fraction();
    let ideal = plan.ideal_fraction;
    let carried = carried_keys(plan);
    if plan.moved == 0 {
        return Verdict {
            tone: if carried == 0 {
                Tone::Neutral
            } else {
                Tone::Good
            },
            badge: if carried == 0 {
                "nothing moves"
            } else {
                "only whole shards move"
            }
            .to_string(),
            note: (carried > 0).then(|| carried_note(carried, "No key changes shard; even so")),
        };
    }
    if ideal <= 0.0 {
        return Verdict {
            tone: Tone::Poor,
            badge: "moves keys though no shard changed".to_string(),
            note: None,
        };
    }
    let ratio = moved_fraction / ideal;
    // Under the minimum as the badge rounds it (0.995 reads "1.00×").
    let under = ratio < 0.995;
    let (tone, places) = match ratio {
        ratio if ratio < 1.15 => (Tone::Good, 2),
        ratio if ratio < 1.6 => (Tone::Fair, 2),
        _ => (Tone::Poor, 1),
    };
    let badge = if under {
        format!("{}× the minimum: under it by chance", decimal(ratio, 2))
    } else {
        format!("{}× the minimum", decimal(ratio, places))
    };
    let under_note = under.then(|| under_the_minimum(plan));
    let carried_note = (carried > 0).then(|| {
        carried_note(
            carried,
            &format!(
                "Besides the {} keys that change shard (all the minimum counts)",
                thousands(plan.moved)
            ),
        )
    });
    let note = match (under_note, carried_note) {
        (Some(under), Some(carried)) => Some(format!("{under} {carried}")),
        (under, carried) => under.or(carried),
    };
    Verdict { tone, badge, note }
}

/// "{lead}, 985 keys move with their shard to another cluster."
fn carried_note(carried: u64, lead: &str) -> String {
    format!(
        "{lead}, {} keys move with their shard to another cluster.",
        thousands(carried)
    )
}

/// Why a change moved fewer keys than the minimum: the minimum is what a
/// placement moves on average over keys; these keys are one sample, and the
/// shards that came or went held fewer than an even share of them.
fn under_the_minimum(plan: &Plan) -> String {
    let mut note = format!(
        "The minimum, {}, is an expectation: what any placement moves on average \
         over keys. These {} keys are one sample of it and moved {}.",
        percent(plan.ideal_fraction),
        thousands(plan.total),
        percent(plan.moved_fraction())
    );
    let light = light_shards(plan);
    match light.len() {
        0 => {}
        1 | 2 => {
            note.push(' ');
            note.push_str(&light.join("; "));
            note.push('.');
        }
        many => note.push_str(&format!(
            " {many} of the shards that came or went held fewer keys than an even share."
        )),
    }
    note
}

/// Shards the change adds that take fewer keys than the mean after, and
/// shards it removes that held fewer than the mean before, in words.
fn light_shards(plan: &Plan) -> Vec<String> {
    let added = plan
        .new_shards
        .iter()
        .zip(&plan.loads_after.counts)
        .filter(|(name, keys)| {
            !plan.old_shards.contains(name) && (**keys as f64) < plan.loads_after.mean
        })
        .map(|(name, keys)| {
            format!(
                "{name} took {} keys, under an even share of {}",
                thousands(*keys),
                decimal(plan.loads_after.mean, 0)
            )
        });
    let removed = plan
        .old_shards
        .iter()
        .zip(&plan.loads_before.counts)
        .filter(|(name, keys)| {
            !plan.new_shards.contains(name) && (**keys as f64) < plan.loads_before.mean
        })
        .map(|(name, keys)| {
            format!(
                "{name} held {} keys, under an even share of {}",
                thousands(*keys),
                decimal(plan.loads_before.mean, 0)
            )
        });
    added.chain(removed).collect()
}

#[cfg(test)]
mod tests {
    use ecoshard_core::{DEFAULT_KEY_PREFIX, Layout, Shard, StrategyKind, plan_numbered};

    use super::*;

    fn plan(strategy: StrategyKind, before: &[&str], after: &[&str], keys: usize) -> Plan {
        let build = |names: &[&str]| {
            Layout::new(
                strategy,
                names.iter().map(|name| Shard::new(*name)).collect(),
            )
            .build()
            .unwrap()
        };
        plan_numbered(&build(before), &build(after), DEFAULT_KEY_PREFIX, keys)
    }

    fn check(plan: &Plan, tone: Tone, badge: &str, note: Option<&str>) {
        let verdict = verdict(plan);
        assert_eq!((verdict.tone, verdict.badge.as_str()), (tone, badge));
        assert_eq!(verdict.note.as_deref(), note);
    }

    #[test]
    fn a_change_under_the_minimum_says_why_it_can_be() {
        let s3 = ["s0", "s1", "s2"];
        let s4 = ["s0", "s1", "s2", "s3"];
        // The page's opening change: ring 3 → 4 over 2,000 keys moves 476.
        let ring = plan(StrategyKind::Ring, &s3, &s4, 2_000);
        check(
            &ring,
            Tone::Good,
            "0.95× the minimum: under it by chance",
            Some(
                "The minimum, 25.0 %, is an expectation: what any placement moves on \
                 average over keys. These 2,000 keys are one sample of it and moved \
                 23.8 %. s3 took 476 keys, under an even share of 500.",
            ),
        );
        check(
            &plan(StrategyKind::Modulo, &s3, &s4, 2_000),
            Tone::Poor,
            "3.0× the minimum",
            None,
        );
        check(
            &plan(StrategyKind::Ring, &s3, &s3, 2_000),
            Tone::Neutral,
            "nothing moves",
            None,
        );
        // Many new shards: counted, not listed. 0.995 of the minimum reads 1.00×
        // and is not said to be under it.
        let s64: Vec<String> = (0..64).map(|index| format!("s{index}")).collect();
        let s64: Vec<&str> = s64.iter().map(String::as_str).collect();
        let wide = plan(StrategyKind::Ring, &s4, &s64, 2_000);
        let verdict = verdict(&wide);
        assert!(
            (0.995..1.0).contains(&(wide.moved_fraction() / wide.ideal_fraction)),
            "{}",
            verdict.badge
        );
        assert_eq!(verdict.badge, "1.00× the minimum");
        let many = plan(StrategyKind::Ring, &s4, &s64, 1_500);
        let note = super::verdict(&many).note.unwrap_or_default();
        assert!(
            note.ends_with("of the shards that came or went held fewer keys than an even share."),
            "{note}"
        );
    }

    /// A ring plan over 2,000 keys between shards `s0`, `s1`, … placed on
    /// the clusters given ("" for none).
    fn placed(before: &[&str], after: &[&str]) -> Plan {
        let build = |clusters: &[&str]| {
            let shards = clusters
                .iter()
                .enumerate()
                .map(|(index, cluster)| match *cluster {
                    "" => Shard::new(format!("s{index}")),
                    cluster => Shard::new(format!("s{index}")).on_cluster(cluster),
                })
                .collect();
            Layout::new(StrategyKind::Ring, shards).build().unwrap()
        };
        plan_numbered(&build(before), &build(after), DEFAULT_KEY_PREFIX, 2_000)
    }

    fn check_kicker(before: &[&str], after: &[&str], expected: &str) {
        assert_eq!(
            shards_and_clusters(&placed(before, after)),
            expected,
            "{before:?} -> {after:?}"
        );
    }

    #[test]
    fn the_kicker_counts_shards_and_the_clusters_they_are_on() {
        check_kicker(&["", "", ""], &["", "", "", ""], "3 → 4 shards");
        check_kicker(
            &["c1"; 4],
            &["c1", "c1", "c2", "c2"],
            "4 shards on 1 → 2 clusters",
        );
        check_kicker(&["c1"; 4], &["c1"; 4], "4 → 4 shards on 1 cluster");
        check_kicker(
            &["c1", "c2"],
            &["c1", "c2", "c1"],
            "2 → 3 shards on 2 clusters",
        );
        check_kicker(
            &["c1", "c2"],
            &["c1", "c2", "c3"],
            "2 → 3 shards on 2 → 3 clusters",
        );
        check_kicker(
            &["c1", "c1", "c2", "c2"],
            &["c1"; 4],
            "4 shards on 2 → 1 clusters",
        );
    }

    /// The headline's count and the verdict, for a change between placements.
    fn check_placed(before: &[&str], after: &[&str], tone: Tone, badge: &str, note: &str) {
        let plan = placed(before, after);
        let summary = plan.summary();
        let carried: u64 = summary.shard_moves.iter().map(|shard| shard.keys).sum();
        assert_eq!(moving_keys(&plan), summary.moved + carried);
        let verdict = verdict(&plan);
        let note = note.replace("{carried}", &thousands(carried));
        assert_eq!((verdict.tone, verdict.badge.as_str()), (tone, badge));
        assert_eq!(
            verdict.note.as_deref(),
            Some(note.as_str()).filter(|note| !note.is_empty())
        );
    }

    #[test]
    fn a_change_moving_whole_shards_counts_their_keys_as_moving() {
        let (one, two) = (["c1"; 4], ["c1", "c1", "c2", "c2"]);
        check_placed(
            &one,
            &two,
            Tone::Good,
            "only whole shards move",
            "No key changes shard; even so, {carried} keys move with their shard to another cluster.",
        );
        check_placed(&one, &one, Tone::Neutral, "nothing moves", "");
        check_placed(
            &["c1", "c1", "c1"],
            &["c1", "c2", "c1", "c1"],
            Tone::Good,
            "0.95× the minimum: under it by chance",
            "The minimum, 25.0 %, is an expectation: what any placement moves on average over keys. \
             These 2,000 keys are one sample of it and moved 23.8 %. s3 took 476 keys, under an even \
             share of 500. Besides the 476 keys that change shard (all the minimum counts), \
             {carried} keys move with their shard to another cluster.",
        );
    }
}
