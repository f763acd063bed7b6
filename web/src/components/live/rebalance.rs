//! "Apply this layout": sends the explorer's current layout to the bridge and
//! follows the rebalance job from the stream (its plan fetched once per job,
//! as ticks carry none) — a progress bar, rows per second, and three counts
//! side by side: the rows the bridge planned to move
//! (the core over the ids the database holds), the rows it moved, and what
//! the explorer predicted (the core over its own numbered keys), with why
//! they can differ. Refusals show the bridge's sentence.

use ecoshard_core::wire::{BulkInsert, JobState, RebalanceJob};
use ecoshard_core::{DEFAULT_KEY_PREFIX, Layout, StrategyKind};
use yew::platform::spawn_local;
use yew::prelude::*;

use crate::api::{self, Applied};
use crate::format::{count, percent, sentence, thousands};
use crate::hooks::use_interval;
use crate::live::{
    Applying, Live, LiveAction, Prediction, StreamStatus, compare_with_plan, describe_layout,
    explorer_keys,
};
use crate::state::Explorer;

#[derive(PartialEq, Properties)]
pub(super) struct RebalanceProps {
    pub(super) live: Live,
    pub(super) explorer: Explorer,
    pub(super) dispatch: Callback<LiveAction>,
}

#[function_component]
pub(super) fn Rebalance(props: &RebalanceProps) -> Html {
    let live = &props.live;
    let explorer = &props.explorer;
    let target = explorer.layout_after();
    let valid = target.validate();
    let bounded = target.strategy == StrategyKind::BoundedLoad;
    let database = live.layout.clone();
    let in_force = live.is_in_force(&target);
    // The explorer's prediction for this change as the database would make
    // it: from the layout in force, over the explorer's keys.
    let prediction = use_memo(
        (database.clone(), target.clone(), explorer.keys()),
        |(database, target, keys)| {
            database
                .as_ref()
                .and_then(|view| Prediction::compute(&view.layout, view.version, target, keys).ok())
        },
    );
    let sending = matches!(live.applying, Applying::Sending { .. });
    let running = live
        .job
        .as_ref()
        .filter(|job| job.state == JobState::Running)
        .map(|job| job.id);
    use_job_follow(live, &props.dispatch, running);
    let keys_in = live.explorer_keys_in(u64::from(explorer.key_count));
    let sent = (*prediction)
        .clone()
        .map(|p| p.with_keys_in_database(keys_in));
    let apply = apply_layout(&props.dispatch, &target, sent);
    let (button_text, button_title) = apply_button(running, sending, in_force, bounded);
    let rows = live.rows();
    let explorer_keys = thousands(u64::from(explorer.key_total()));
    html! {
        <div class="card rebalance" id="rebalance">
            <div class="card-head">
                <h3>{ "Apply this layout" }</h3>
                <span class="muted small">{ "moves exactly the rows whose shard changes, batch by batch" }</span>
            </div>
            <dl class="layouts">
                <dt>{ "database now" }</dt>
                <dd id="database-layout">
                    { live.database_now() }
                    if let Some(note) = live.rows_note() {
                        <span class="muted small rows-note" id="rows-held">{ format!(" ({note})") }</span>
                    }
                </dd>
                <dt>{ "explorer's layout" }</dt>
                <dd id="target-layout">{ describe_layout(&target) }</dd>
            </dl>
            if bounded {
                <div class="banner warn" id="bounded-warning">
                    <strong>{ "Bounded-load cannot be applied to a database" }</strong>
                    <span>{ "Where it puts a key depends on every other key in the set, so a row inserted or read by its id alone could not be found again. The bridge refuses it; choose Ring for the same ring without the load bound. The explorer still shows what bounded-load would do." }</span>
                </div>
            }
            <div class="apply-row">
                if let Some(id) = running {
                    <span class="prediction muted">{ format!("Job {id} is moving rows; the next layout can be applied once it is done.") }</span>
                } else {
                    { prediction_line(&prediction, bounded, rows, &explorer_keys) }
                }
                <button class={classes!("button", if bounded { "warning" } else { "primary" })} id="apply-layout"
                    title={button_title} onclick={apply}
                    disabled={sending || running.is_some() || valid.is_err() || in_force}>
                    { button_text }
                </button>
            </div>
            if let Err(error) = valid {
                <p class="error-text">{ error.to_string() }</p>
            }
            { explorer_keys_row(explorer, keys_in, &props.dispatch) }
            <super::load::LoadDataSet job_running={running.is_some()} />
            { apply_answer(&live.applying) }
            if let Some(job) = &live.job {
                <JobView job={job.clone()} applying={live.applying.clone()} />
            }
        </div>
    }
}

/// Follows the job: fetches its plan once (ticks carry none), and polls it
/// every second while it runs and the stream is down.
#[hook]
fn use_job_follow(live: &Live, dispatch: &Callback<LiveAction>, running: Option<u64>) {
    {
        let dispatch = dispatch.clone();
        use_effect_with(live.plan_wanted(), move |wanted| {
            if let Some(id) = *wanted {
                spawn_local(async move {
                    match api::rebalance(id).await {
                        Ok(job) => dispatch.emit(LiveAction::Job(Box::new(job))),
                        Err(error) => dispatch.emit(LiveAction::Failed(format!(
                            "The plan of rebalance job {id}: {error}"
                        ))),
                    }
                });
            }
        });
    }
    let dispatch = dispatch.clone();
    let polled = running.filter(|_| live.stream != StreamStatus::Open);
    let poll = Callback::from(move |_| {
        if let Some(id) = polled {
            let dispatch = dispatch.clone();
            spawn_local(async move {
                if let Ok(job) = api::rebalance(id).await {
                    dispatch.emit(LiveAction::Job(Box::new(job)));
                }
            });
        }
    });
    use_interval(polled.map(|_| 1_000), poll);
}

/// "Apply layout": says it is sent, sends `PUT /api/layout`, then the
/// bridge's answer: a job (with the explorer's prediction kept beside it),
/// the layout in force already, or a refusal.
fn apply_layout(
    dispatch: &Callback<LiveAction>,
    target: &Layout,
    prediction: Option<Prediction>,
) -> Callback<MouseEvent> {
    let dispatch = dispatch.clone();
    let target = target.clone();
    Callback::from(move |_: MouseEvent| {
        let layout = target.clone();
        let dispatch = dispatch.clone();
        let prediction = prediction.clone();
        dispatch.emit(LiveAction::ApplySent {
            target: describe_layout(&layout),
        });
        spawn_local(async move {
            match api::apply_layout(&layout).await {
                Ok(Applied::Started(job)) => dispatch.emit(LiveAction::ApplyStarted {
                    job: Box::new(job),
                    prediction,
                }),
                Ok(Applied::InForce(view)) => dispatch.emit(LiveAction::ApplyInForce(view)),
                Err(error) => dispatch.emit(LiveAction::ApplyRefused(error)),
            }
        });
    })
}

/// The apply button's text and title.
fn apply_button(
    running: Option<u64>,
    sending: bool,
    in_force: bool,
    bounded: bool,
) -> (&'static str, &'static str) {
    let text = if running.is_some() {
        "Rebalancing…"
    } else if sending {
        "Sending…"
    } else if in_force {
        "In force"
    } else if bounded {
        "Apply anyway"
    } else {
        "Apply layout"
    };
    let title = if bounded {
        "The bridge refuses bounded-load: see the note above"
    } else if in_force {
        "The database is in this layout already"
    } else {
        "PUT /api/layout: move the rows whose shard changes"
    };
    (text, title)
}

/// "Insert the explorer's keys": `user_0` … as rows, so that the prediction
/// is the plan key for key (up to the bridge's bulk limit); once they are
/// in, it says so instead.
fn explorer_keys_row(explorer: &Explorer, keys_in: bool, dispatch: &Callback<LiveAction>) -> Html {
    if explorer.sampled.is_some() {
        // The keys are the database's own already.
        return html! {};
    }
    let key_count = explorer.key_count;
    let count = u64::from(key_count);
    if keys_in {
        return html! {
            <div class="keys-row" id="explorer-keys-in">
                <span class="muted small">{ format!("{} are in the database: the explorer's prediction counts them key for key", sentence_start(&explorer_keys(count))) }</span>
            </div>
        };
    }
    let insert_keys = {
        let dispatch = dispatch.clone();
        Callback::from(move |_: MouseEvent| {
            let dispatch = dispatch.clone();
            spawn_local(async move {
                let prefix = DEFAULT_KEY_PREFIX.to_string();
                match api::insert_bulk(count, Some(prefix)).await {
                    Ok(result) => {
                        dispatch.emit(LiveAction::ExplorerKeysInserted { count, result });
                    }
                    Err(error) => dispatch.emit(LiveAction::ExplorerKeysRefused { count, error }),
                }
            });
        })
    };
    let too_many = u64::from(key_count) > BulkInsert::MAX_COUNT;
    let title = if too_many {
        format!(
            "the bridge inserts at most {} users at once",
            thousands(BulkInsert::MAX_COUNT)
        )
    } else {
        format!("POST /api/users/bulk with prefix {DEFAULT_KEY_PREFIX} and count {key_count}")
    };
    html! {
        <div class="keys-row">
            <button class="button small ghost" id="insert-explorer-keys" onclick={insert_keys}
                disabled={too_many} {title}>
                { format!("Insert the explorer's {} keys", thousands(u64::from(key_count))) }
            </button>
            <span class="muted small">{ format!("{DEFAULT_KEY_PREFIX}0 … into the database: with the same keys, the explorer's prediction is the plan, key for key") }</span>
        </div>
    }
}

/// `text` with its first letter in capitals.
fn sentence_start(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_ascii_uppercase().to_string() + chars.as_str()
    })
}

/// What the bridge answered to a layout that started no job: in force
/// already, or refused (with its sentence).
fn apply_answer(applying: &Applying) -> Html {
    match applying {
        Applying::InForce { version, .. } => html! {
            <p class="muted small" id="apply-in-force">
                { format!("The layout is already version {version}; nothing to move.") }
            </p>
        },
        Applying::Refused { target, error } => html! {
            <div class="banner bad" id="apply-refusal" data-code={error.code.clone()}>
                <strong>{ match error.status {
                    Some(status) => format!("The bridge refused this layout · {status} {}", error.code),
                    None => "The layout was not applied".to_string(),
                } }</strong>
                <span>{ sentence(&error.message) }</span>
                <span class="muted">
                    { format!("Sent: {target}.") }
                    // The bridge's rule: a 4xx never writes anything.
                    if error.status.is_some_and(|status| (400..500).contains(&status)) {
                        { " Nothing changed in the database." }
                    }
                </span>
            </div>
        },
        _ => html! {},
    }
}

/// The explorer's prediction for the database, before applying.
fn prediction_line(
    prediction: &Option<Prediction>,
    bounded: bool,
    rows: u64,
    explorer_keys: &str,
) -> Html {
    if bounded {
        return html! { <span class="prediction muted">{ "No prediction: the database takes no bounded-load layout." }</span> };
    }
    match prediction {
        Some(prediction) if prediction.moved == 0 => html! {
            <span class="prediction" id="prediction" data-moved="0">
                { format!("The explorer predicts nothing moves: its {explorer_keys} keys keep their shard.") }
            </span>
        },
        Some(prediction) => html! {
            <span class="prediction" id="prediction" data-moved={prediction.moved.to_string()}>
                { "The explorer predicts " }
                <strong>{ percent(prediction.fraction()) }</strong>
                { format!(" move ({} of its {explorer_keys} keys; ideal {})", thousands(prediction.moved), percent(prediction.ideal_fraction)) }
                if rows > 0 {
                    { format!(" — about {} of the database's {}", thousands(prediction.rows_for(rows)), count(rows, "row", "rows")) }
                }
            </span>
        },
        None => {
            html! { <span class="prediction muted">{ "Waiting for the database's layout…" }</span> }
        }
    }
}

#[derive(PartialEq, Properties)]
struct JobViewProps {
    job: RebalanceJob,
    applying: Applying,
}

/// The running or last job: progress, then planned, moved and predicted.
#[function_component]
fn JobView(props: &JobViewProps) -> Html {
    let job = &props.job;
    let state = match job.state {
        JobState::Running => "running",
        JobState::Done => "done",
        JobState::Failed => "failed",
    };
    // The bridge answers a job before its plan when planning takes long.
    let planning = job.state == JobState::Running && job.plan.is_none() && job.total == 0;
    let share = if planning {
        0.0
    } else if job.total == 0 {
        100.0
    } else {
        job.moved as f64 / job.total as f64 * 100.0
    };
    // The explorer's prediction, when this page started this job.
    let prediction = match &props.applying {
        Applying::Started {
            job_id, prediction, ..
        } if *job_id == job.id => prediction.clone(),
        _ => None,
    };
    let no_op = job.total == 0 && job.from_version == job.to_version;
    html! {
        <div class="job" id="job" data-id={job.id.to_string()} data-state={state}
            data-moved={job.moved.to_string()} data-total={job.total.to_string()}>
            <div class="job-head">
                <span class="job-title">
                    { if no_op { format!("job {} · layout v{} already in force", job.id, job.to_version) } else { format!("job {} · layout v{} → v{}", job.id, job.from_version, job.to_version) } }
                </span>
                <span class={classes!("pill", state)}>{ state }</span>
            </div>
            if let Some(progress) = &job.shard_move {
                { super::shard_move::shard_move(job, progress) }
            } else {
                { rows_progress(job, state, share, planning) }
            }
            if let Some(plan) = &job.plan {
                <table class="counts">
                    <tbody>
                        <tr>
                            <th>{ "planned by the bridge" }</th>
                            <td class="num"><strong id="planned-rows">{ thousands(plan.moved) }</strong></td>
                            <td class="muted">{ format!("of the {} rows the database held · {}", thousands(plan.total), percent(plan.moved_fraction)) }</td>
                        </tr>
                        <tr>
                            <th>{ "moved in the database" }</th>
                            <td class="num"><strong id="real-rows">{ thousands(job.moved) }</strong></td>
                            <td class={classes!(if job.state == JobState::Failed { "bad" } else if job.state == JobState::Done && job.moved == plan.moved { "good" } else { "muted" })} id="moved-verdict">
                                { match job.state {
                                    JobState::Done if job.moved == plan.moved => "✓ exactly as planned".to_string(),
                                    JobState::Done => format!("differs from the plan by {}", thousands(job.moved.abs_diff(plan.moved))),
                                    JobState::Running => format!("so far · {} to go", thousands(plan.moved.saturating_sub(job.moved))),
                                    JobState::Failed => "before it stopped: every row stays readable; restart the bridge to resume".to_string(),
                                } }
                            </td>
                        </tr>
                        if let Some(prediction) = &prediction {
                            <tr>
                                <th>{ "predicted by the explorer" }</th>
                                <td class="num"><strong id="predicted-rows">{ format!("{}{}", if prediction.key_count == plan.total { "" } else { "≈ " }, thousands(prediction.rows_for(plan.total))) }</strong></td>
                                <td class="muted">{ format!("{} of its {} keys · {}", thousands(prediction.moved), thousands(prediction.key_count), percent(prediction.fraction())) }</td>
                            </tr>
                        }
                    </tbody>
                </table>
                if let Some(prediction) = &prediction {
                    { prediction_note(prediction, job.from_version, plan.moved, plan.total) }
                }
            }
            if let Some(error) = &job.error {
                <p class="error-text">{ error }</p>
            }
        </div>
    }
}

/// A job moving rows between shards: its bar, rows moved and rate.
fn rows_progress(job: &RebalanceJob, state: &'static str, share: f64, planning: bool) -> Html {
    html! {
        <>
            <div class="progress" role="progressbar" aria-valuenow={format!("{share:.0}")} aria-valuemin="0" aria-valuemax="100">
                <div class={classes!("progress-fill", state)} style={format!("width: {share:.1}%")} />
            </div>
            <div class="job-numbers">
                <span id="job-progress">{ if planning { "planning which rows move…".to_string() } else { format!("{} / {} rows moved · {:.0} %", thousands(job.moved), thousands(job.total), share) } }</span>
                <span id="job-rate">{ format!("{} rows/s", thousands(job.rows_per_sec.round() as u64)) }</span>
            </div>
        </>
    }
}

fn prediction_note(
    prediction: &Prediction,
    job_from_version: u64,
    plan_moved: u64,
    plan_rows: u64,
) -> Html {
    let (agrees, text) = compare_with_plan(prediction, job_from_version, plan_moved, plan_rows);
    html! {
        <p class={classes!("prediction-note", agrees.then_some("agrees"))} id="prediction-note" data-agrees={agrees.to_string()}>
            { if agrees { "✓ " } else { "Why they differ: " } }{ text }
        </p>
    }
}
