//! `ecoshard verify`: `POST /api/verify` on a running bridge, the report
//! printed for people (or JSON); exit code 0 when clean, 1 on any
//! difference, 2 when no verification was made (one line on stderr).

use std::fmt::Write as _;

use axum::http::{Method, StatusCode};
use clap::Args;
use ecoshard_core::thousands;
use ecoshard_core::wire::{ApiErrorBody, VerifyReport};

use super::client::{Bridge, json_text, parse, write_stdout};
use super::{EXIT_FAILURE, Exit, Format};

/// `ecoshard verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The bridge (`ecoshard serve`) to verify through.
    #[arg(
        long,
        alias = "bridge",
        env = "ECOSHARD_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// The bridge's token, when it has one (a bridge listening beyond loopback does).
    #[arg(long, env = "ECOSHARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub(super) fn run(args: &VerifyArgs) -> Result<(), Exit> {
    let limit = ecoshard_bridge::VERIFY_LIMIT + std::time::Duration::from_secs(30);
    let bridge = Bridge::parse(&args.url)?
        .with_token(args.token.clone())
        .with_timeout(limit);
    let report: VerifyReport = super::client::runtime()?
        .block_on(async {
            match bridge
                .request(Method::POST, "/api/verify", Some(String::new()))
                .await
            {
                Ok((StatusCode::OK, bytes)) => parse(&bytes),
                Ok((status, bytes)) => Err(Exit::usage(refusal(status, &bytes))),
                Err(why) => Err(Exit::usage(why)),
            }
        })
        .map_err(|exit| Exit::usage(exit.message))?;
    let text = match args.format {
        Format::Json => json_text(&report)?,
        Format::Table => report_text(&report),
    };
    write_stdout(&text).map_err(|exit| Exit::usage(exit.message))?;
    if report.clean {
        Ok(())
    } else {
        Err(Exit {
            code: EXIT_FAILURE,
            message: format!("{} differences found", report.differences.len()),
        })
    }
}

/// The bridge's error in one line.
fn refusal(status: StatusCode, bytes: &[u8]) -> String {
    match serde_json::from_slice::<ApiErrorBody>(bytes) {
        Ok(body) => format!("{} ({})", body.error.message, body.error.code),
        Err(_) => format!("the bridge answered {status}"),
    }
}

/// The report for people: each cluster's shards and standbys, then the
/// differences and notes, then the verdict.
fn report_text(report: &VerifyReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "layout version {}", report.layout_version);
    for cluster in &report.clusters {
        let _ = writeln!(
            out,
            "{} (primary {}, at {})",
            cluster.cluster, cluster.primary, cluster.lsn
        );
        for shard in &cluster.shards {
            let _ = writeln!(
                out,
                "  {:<12} {:>12} rows  checksum {:<22} {}",
                shard.shard,
                thousands(shard.rows),
                shard.checksum,
                if shard.misplaced > 0 {
                    format!("{} misplaced", thousands(shard.misplaced))
                } else if !shard.placed_here {
                    "not placed here".to_string()
                } else {
                    String::new()
                }
            );
        }
        for standby in &cluster.standbys {
            let _ = writeln!(
                out,
                "  {:<12} {} (primary at {}, replayed {})",
                standby.node,
                standby.outcome,
                standby.primary_lsn,
                standby.replay_lsn.as_deref().unwrap_or("-")
            );
        }
    }
    for row in &report.misplaced_examples {
        let _ = writeln!(
            out,
            "misplaced: {:?} in {}, belongs in {}",
            row.id, row.found, row.belongs
        );
    }
    for difference in &report.differences {
        let _ = writeln!(out, "difference: {difference}");
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
    let _ = if report.clean {
        writeln!(out, "clean")
    } else {
        writeln!(out, "{} differences", report.differences.len())
    };
    out
}
