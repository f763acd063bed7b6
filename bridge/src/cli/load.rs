//! `ecoshard load`: a realistic data set in seconds on a running bridge
//! (`POST /api/users/generate`, written with `COPY`), so that a rebalance
//! lasts long enough to watch; prints what was written and the rate (a
//! table, or JSON for scripts).

use std::time::Duration;

use axum::http::{Method, StatusCode};
use clap::Args;
use ecoshard_core::thousands;
use ecoshard_core::wire::{GenerateResult, GenerateUsers};

use super::client::{Bridge, json_text, parse, refused, write_stdout};
use super::{Exit, Format};

/// Waited for beyond the bridge's own deadline for the generation.
const ANSWER_MARGIN: Duration = Duration::from_secs(30);

/// `ecoshard load`.
#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// The bridge (`ecoshard serve`) to load the users through.
    #[arg(long, env = "ECOSHARD_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The bridge's token, when it has one (a bridge listening beyond loopback does).
    #[arg(long, env = "ECOSHARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Users to generate: <prefix>0 … <prefix>{N-1} (1 to 10,000,000).
    #[arg(long, short = 'n',
          value_parser = clap::value_parser!(u64).range(1..=GenerateUsers::MAX_COUNT))]
    count: u64,
    /// Prefix of the ids (letters, digits and _ . -, at most 40); a unique one when absent.
    #[arg(long)]
    prefix: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub(super) fn run(args: &LoadArgs) -> Result<(), Exit> {
    let limit = ecoshard_bridge::generate_deadline(args.count) + ANSWER_MARGIN;
    let bridge = Bridge::parse(&args.url)?
        .with_token(args.token.clone())
        .with_timeout(limit);
    let request = GenerateUsers {
        count: args.count,
        prefix: args.prefix.clone(),
    };
    let body = serde_json::to_string(&request).map_err(Exit::runtime)?;
    super::client::runtime()?.block_on(async {
        let (status, bytes) = bridge
            .request(Method::POST, "/api/users/generate", Some(body))
            .await
            .map_err(Exit::runtime)?;
        let result: GenerateResult = match status {
            StatusCode::CREATED | StatusCode::OK => parse(&bytes)?,
            status => return Err(refused(status, &bytes)),
        };
        let text = match args.format {
            Format::Json => json_text(&result)?,
            Format::Table => table(&result, args.count),
        };
        write_stdout(&text)
    })
}

/// What was written, where, and how fast, for people.
fn table(result: &GenerateResult, count: u64) -> String {
    let range = format!(
        "{}0 … {}{}",
        result.prefix,
        result.prefix,
        count.saturating_sub(1)
    );
    let mut text = if result.inserted == 0 {
        format!(
            "{} users {range} were stored already exactly so: nothing written\n",
            thousands(count)
        )
    } else {
        format!(
            "wrote {} users {range} in {:.1} s: {} rows/s\n",
            thousands(result.inserted),
            result.elapsed_ms / 1_000.0,
            thousands(result.rows_per_sec.round() as u64)
        )
    };
    let width = result.shards.iter().map(|load| load.shard.len()).max();
    for load in &result.shards {
        let name = &load.shard;
        let width = width.unwrap_or(0);
        text.push_str(&format!("  {name:<width$}  {:>11}\n", thousands(load.keys)));
    }
    text.push_str(&format!(
        "on {} at WAL position {}\n",
        result.served_by, result.lsn
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecoshard_core::ShardLoad;

    fn check(inserted: u64, expected: &str) {
        let result = GenerateResult {
            inserted,
            prefix: "p_".into(),
            shards: vec![
                ShardLoad {
                    shard: "s0".into(),
                    keys: 600_000,
                    cluster: None,
                },
                ShardLoad {
                    shard: "eu".into(),
                    keys: 400_000,
                    cluster: None,
                },
            ],
            served_by: "primary".into(),
            lsn: "0/5A1C2B8".into(),
            lsns: Default::default(),
            elapsed_ms: 6_512.4,
            rows_per_sec: if inserted == 0 { 0.0 } else { 153_553.2 },
        };
        assert_eq!(table(&result, 1_000_000), expected);
    }

    #[test]
    fn tables_of_a_load() {
        let shards = "  s0      600,000\n  eu      400,000\non primary at WAL position 0/5A1C2B8\n";
        let wrote = "wrote 1,000,000 users p_0 … p_999999 in 6.5 s: 153,553 rows/s\n";
        let repeat =
            "1,000,000 users p_0 … p_999999 were stored already exactly so: nothing written\n";
        check(1_000_000, &format!("{wrote}{shards}"));
        check(0, &format!("{repeat}{shards}"));
    }
}
