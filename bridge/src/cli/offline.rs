//! `ecoshard locate` and `ecoshard plan`: answers from the core alone, no database.

use std::fmt::Write as _;
use std::io::Write as _;

use ecoshard_core::{PlanSummary, numbered_key_hashes, plan_hashes, thousands};
use serde::Serialize;

use super::{Exit, Format, LocateArgs, MAX_PLAN_KEYS, PlanArgs};

/// One answer of `ecoshard locate --format json`.
#[derive(Debug, Serialize)]
struct Located<'a> {
    key: &'a str,
    shard: &'a str,
    index: usize,
}

/// `ecoshard plan --format json`: the plan summary plus what was planned.
#[derive(Debug, Serialize)]
struct PlanReport<'a> {
    strategy: &'a str,
    to_strategy: &'a str,
    from: u64,
    to: u64,
    key_prefix: &'a str,
    #[serde(flatten)]
    summary: &'a PlanSummary,
}

pub(super) fn locate(args: &LocateArgs) -> Result<(), Exit> {
    let router = args
        .layout
        .layout(args.layout.strategy, args.shards)?
        .build()?;
    let mut keys = Vec::with_capacity(args.keys.len());
    for (position, key) in args.keys.iter().enumerate() {
        let key = key.to_str().ok_or_else(|| {
            Exit::usage(format!(
                "key {} is not valid UTF-8: keys are text",
                position + 1
            ))
        })?;
        if key.is_empty() {
            return Err(Exit::usage(format!("key {} is empty", position + 1)));
        }
        keys.push(key);
    }
    let hashes: Vec<u64> = keys
        .iter()
        .map(|key| router.key_hash(key.as_bytes()))
        .collect();
    let mut indices = Vec::new();
    router.assign(&hashes, &mut indices);
    let located: Vec<Located<'_>> = keys
        .iter()
        .zip(&indices)
        .map(|(key, index)| Located {
            key,
            shard: &router.shards()[*index as usize].name,
            index: *index as usize,
        })
        .collect();

    let mut out = String::new();
    match args.format {
        Format::Json => {
            out = serde_json::to_string_pretty(&located).map_err(Exit::usage)?;
            out.push('\n');
        }
        Format::Table => {
            let width = keys
                .iter()
                .map(|key| key.chars().count())
                .max()
                .unwrap_or(3)
                .max(3);
            let _ = writeln!(out, "{:<width$}  shard", "key");
            for answer in &located {
                let _ = writeln!(out, "{:<width$}  {}", answer.key, answer.shard);
            }
        }
    }
    emit(&out)
}

pub(super) fn plan(args: &PlanArgs) -> Result<(), Exit> {
    if args.keys == 0 || args.keys > MAX_PLAN_KEYS {
        let why = if args.keys == 0 {
            "a plan over no keys says nothing"
        } else {
            "too many"
        };
        return Err(Exit::usage(format!(
            "--keys {}: {why}; give 1 to {} keys",
            args.keys,
            thousands(MAX_PLAN_KEYS)
        )));
    }
    if args.key_prefix.len() > 64 {
        return Err(Exit::usage("--key-prefix is longer than 64 bytes"));
    }
    let from_strategy = args.layout.strategy;
    let to_strategy = args.to_strategy.unwrap_or(from_strategy);
    let old = args.layout.layout(from_strategy, args.from)?.build()?;
    let new = args.layout.layout(to_strategy, args.to)?.build()?;
    let key_count = args.keys as usize;
    let hashes = numbered_key_hashes(&args.key_prefix, key_count, args.layout.seed);
    let plan = plan_hashes(&old, &new, &hashes, &hashes);
    let summary = plan.summary();

    let out = match args.format {
        Format::Json => {
            let report = PlanReport {
                strategy: from_strategy.name(),
                to_strategy: to_strategy.name(),
                from: args.from,
                to: args.to,
                key_prefix: &args.key_prefix,
                summary: &summary,
            };
            let mut json = serde_json::to_string_pretty(&report).map_err(Exit::usage)?;
            json.push('\n');
            json
        }
        Format::Table => plan_table(args, from_strategy.name(), to_strategy.name(), &summary),
    };
    emit(&out)
}

fn plan_table(
    args: &PlanArgs,
    from_strategy: &str,
    to_strategy: &str,
    summary: &PlanSummary,
) -> String {
    let mut out = String::new();
    let strategies = if from_strategy == to_strategy {
        from_strategy.to_string()
    } else {
        format!("{from_strategy} → {to_strategy}")
    };
    let prefix = &args.key_prefix;
    let keys = match summary.total {
        1 => format!("1 key ({prefix}0)"),
        total => format!(
            "{} keys ({prefix}0 … {prefix}{})",
            thousands(total),
            total - 1
        ),
    };
    let _ = writeln!(
        out,
        "{strategies}: {} → {} shards over {keys}, seed {}",
        args.from, args.to, args.layout.seed
    );
    let _ = writeln!(
        out,
        "moved {} of {} keys: {:.1} % (ideal minimum {:.1} %)",
        thousands(summary.moved),
        thousands(summary.total),
        summary.moved_fraction * 100.0,
        summary.ideal_fraction * 100.0
    );
    out.push_str(&loads_table(summary));
    if !summary.transfers.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "moves:");
        for transfer in &summary.transfers {
            let _ = writeln!(
                out,
                "  {} → {}: {}",
                transfer.from,
                transfer.to,
                thousands(transfer.keys)
            );
        }
    }
    out
}

/// Keys per shard before and after, and the spread of each.
fn loads_table(summary: &PlanSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<10} {:>10} {:>10}", "shard", "before", "after");
    let mut names: Vec<&str> = summary
        .loads_before
        .iter()
        .map(|load| load.shard.as_str())
        .collect();
    for load in &summary.loads_after {
        if !names.contains(&load.shard.as_str()) {
            names.push(&load.shard);
        }
    }
    let count_of = |loads: &[ecoshard_core::ShardLoad], name: &str| {
        loads
            .iter()
            .find(|load| load.shard == name)
            .map_or_else(|| "-".to_string(), |load| thousands(load.keys))
    };
    for name in names {
        let _ = writeln!(
            out,
            "{:<10} {:>10} {:>10}",
            name,
            count_of(&summary.loads_before, name),
            count_of(&summary.loads_after, name)
        );
    }
    let _ = writeln!(
        out,
        "{:<10} {:>10.3} {:>10.3}",
        "max/mean", summary.max_over_mean_before, summary.max_over_mean_after
    );
    let _ = writeln!(
        out,
        "{:<10} {:>10.1} {:>10.1}",
        "std dev", summary.std_dev_before, summary.std_dev_after
    );
    out
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn emit(text: &str) -> Result<(), Exit> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(error) => Err(Exit {
            code: super::EXIT_FAILURE,
            message: format!("cannot write to stdout: {error}"),
        }),
    }
}
