//! "Load a data set": 100,000 or 1,000,000 generated users written by the
//! bridge with `COPY` in seconds (`POST /api/users/generate`), so that a
//! rebalance lasts long enough to watch its progress bar; says what was
//! written and how fast, or the bridge's sentence. Disabled while a
//! rebalance job runs (the bridge refuses one then) and while one loads.

use ecoshard_core::wire::{GenerateResult, GenerateUsers};
use yew::platform::spawn_local;
use yew::prelude::*;

use crate::api::{self, ApiError};
use crate::format::{decimal, sentence, thousands};

/// Props of [`LoadDataSet`].
#[derive(PartialEq, Properties)]
pub(super) struct LoadDataSetProps {
    /// A rebalance job runs: no data set is loaded meanwhile.
    pub(super) job_running: bool,
}

/// Where a load is.
#[derive(Clone, Debug, PartialEq)]
enum Loading {
    /// Nothing asked yet.
    Idle,
    /// Sent; this many users.
    Sending(u64),
    /// Written (or found stored already).
    Done(GenerateResult),
    /// Refused or failed.
    Failed(ApiError),
}

/// The control: one button per size, and what happened.
#[function_component]
pub(super) fn LoadDataSet(props: &LoadDataSetProps) -> Html {
    let loading = use_state(|| Loading::Idle);
    let sending = matches!(*loading, Loading::Sending(_));
    let buttons = GenerateUsers::PAGE_SIZES.map(|count| {
        let load = {
            let loading = loading.clone();
            Callback::from(move |_: MouseEvent| {
                let loading = loading.clone();
                loading.set(Loading::Sending(count));
                spawn_local(async move {
                    loading.set(match api::generate_users(count).await {
                        Ok(result) => Loading::Done(result),
                        Err(error) => Loading::Failed(error),
                    });
                });
            })
        };
        let title = if props.job_running {
            "a rebalance job is moving rows; load a data set once it is done".to_string()
        } else {
            format!(
                "POST /api/users/generate with count {count}: written with COPY in one transaction"
            )
        };
        html! {
            <button class="button small ghost" id={format!("load-{count}")} onclick={load}
                disabled={sending || props.job_running} {title}>
                { format!("{} users", thousands(count)) }
            </button>
        }
    });
    html! {
        <div class="keys-row" id="load-data-set">
            <span class="small">{ "Load a data set:" }</span>
            { for buttons }
            { outcome(&loading) }
        </div>
    }
}

/// What the last load did, in words.
fn outcome(loading: &Loading) -> Html {
    match loading {
        Loading::Idle => html! {
            <span class="muted small">{ "generated users, so a rebalance lasts long enough to watch" }</span>
        },
        Loading::Sending(count) => html! {
            <span class="muted small" id="load-outcome">{ format!("Writing {} users…", thousands(*count)) }</span>
        },
        Loading::Done(result) => html! {
            <span class="small" id="load-outcome" data-inserted={result.inserted.to_string()}>
                { written(result) }
            </span>
        },
        Loading::Failed(error) => html! {
            <span class="error-text small" id="load-outcome" data-code={error.code.clone()}>
                { sentence(&error.message) }
            </span>
        },
    }
}

/// "Wrote 100,000 users (load_…0 …) in 0.8 s: 125,000 rows/s."
fn written(result: &GenerateResult) -> String {
    let total: u64 = result.shards.iter().map(|shard| shard.keys).sum();
    if result.inserted == 0 {
        return format!(
            "{} users {}0 … were stored already: nothing written.",
            thousands(total),
            result.prefix
        );
    }
    format!(
        "Wrote {} users ({}0 …) in {} s: {} rows/s. The row counts follow within seconds.",
        thousands(result.inserted),
        result.prefix,
        decimal(result.elapsed_ms / 1_000.0, 1),
        thousands(result.rows_per_sec.round() as u64)
    )
}
