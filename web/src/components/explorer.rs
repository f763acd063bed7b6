//! The explorer tab: controls on the left; the stage, the moved-keys summary,
//! the load bars and the strategy comparison on the right. The scenario is
//! worked out on every change (the keys' hashes only when the keys change);
//! the comparison (six plans) a moment later, one plan per task so the page
//! paints between them — and with many keys only once the animation is over,
//! so it never stalls a frame.

use std::cell::RefCell;
use std::rc::Rc;

use ecoshard_core::{Shard, StrategyKind};
use gloo::timers::callback::Timeout;
use yew::prelude::*;

use crate::components::Shared;
use crate::components::comparison::ComparisonTable;
use crate::components::controls::Controls;
use crate::components::loads::LoadBars;
use crate::components::stage::Stage;
use crate::components::summary::Summary;
use crate::geometry::ANIMATION_MS;
use crate::scenario::{Comparison, Scenario, compare_one};
use crate::state::{DEFAULT_KEYS, Explorer, ExplorerAction, KeySet, Params};

/// Past this many keys the comparison waits for the animation to end: each
/// of its plans then takes tens of milliseconds, several frames' worth.
pub const DEFER_COMPARISON_KEYS: u32 = 100_000;

/// Props of [`ExplorerPage`].
#[derive(PartialEq, Properties)]
pub struct ExplorerPageProps {
    /// The explorer's state.
    pub state: Explorer,
    /// Where controls send their actions.
    pub on_action: Callback<ExplorerAction>,
    /// Whether a bridge answers (then the database can be loaded).
    pub bridge: bool,
}

/// What the comparison depends on: everything but the strategy.
#[derive(Clone, PartialEq)]
struct ComparisonInputs {
    before: Vec<Shard>,
    after: Vec<Shard>,
    params: Params,
    keys: KeySet,
}

/// The comparison being worked out, one strategy per timer. The handle of
/// the timer whose callback runs is kept until the next one fires, so a
/// callback never drops itself.
#[derive(Default)]
struct ComparisonRun {
    pending: Option<Timeout>,
    running: Option<Timeout>,
    rows: Vec<Comparison>,
}

/// Works out the next strategy's row; schedules the one after, or hands
/// over the table when every strategy is done.
fn comparison_step(
    run: Rc<RefCell<ComparisonRun>>,
    explorer: Rc<Explorer>,
    hashes: Rc<[u64]>,
    done: UseStateHandle<Option<Shared<Vec<Comparison>>>>,
) {
    let mut state = run.borrow_mut();
    state.running = state.pending.take();
    let strategy = StrategyKind::ALL[state.rows.len()];
    state.rows.push(Comparison {
        strategy,
        outcome: compare_one(&explorer, strategy, &hashes),
    });
    if state.rows.len() == StrategyKind::ALL.len() {
        done.set(Some(Shared(Rc::new(std::mem::take(&mut state.rows)))));
        return;
    }
    let next = Rc::clone(&run);
    state.pending = Some(Timeout::new(0, move || {
        comparison_step(next, explorer, hashes, done)
    }));
}

/// The comparison table for the explorer's change, worked out a moment after
/// each change of its inputs (everything but the strategy), one strategy per
/// timer; `None` meanwhile. A new change or unmount cancels what is left.
#[hook]
fn use_comparison(
    state: &Explorer,
    hashes: Rc<[u64]>,
) -> UseStateHandle<Option<Shared<Vec<Comparison>>>> {
    let comparison = use_state(|| None::<Shared<Vec<Comparison>>>);
    let inputs = ComparisonInputs {
        before: state.before.clone(),
        after: state.after.clone(),
        params: state.params,
        keys: state.keys(),
    };
    let explorer = Rc::new(state.clone());
    let done = comparison.clone();
    use_effect_with(inputs, move |inputs| {
        done.set(None);
        let delay = if inputs.keys.len() > DEFER_COMPARISON_KEYS as usize {
            ANIMATION_MS as u32 + 100
        } else {
            30
        };
        let run = Rc::new(RefCell::new(ComparisonRun::default()));
        let first = Rc::clone(&run);
        run.borrow_mut().pending = Some(Timeout::new(delay, move || {
            comparison_step(first, explorer, hashes, done)
        }));
        // Unmount or new inputs: cancel what is left.
        move || {
            let mut state = run.borrow_mut();
            state.pending = None;
            state.rows.clear();
        }
    });
    comparison
}

/// Props of [`LoadDatabase`].
#[derive(PartialEq, Properties)]
struct LoadDatabaseProps {
    loaded: Option<String>,
    on_action: Callback<ExplorerAction>,
}

/// "Load the database's layout and keys": `GET /api/layout` and a sample of
/// the ids (`GET /api/sample`) into the explorer, then what it loaded.
#[function_component]
fn LoadDatabase(props: &LoadDatabaseProps) -> Html {
    let failure = use_state(|| None::<String>);
    let onclick = {
        let (on_action, failure) = (props.on_action.clone(), failure.clone());
        Callback::from(move |_: MouseEvent| {
            let (on_action, failure) = (on_action.clone(), failure.clone());
            yew::platform::spawn_local(async move {
                let loaded = async {
                    Ok::<_, crate::api::ApiError>((
                        crate::api::layout().await?,
                        crate::api::sample(DEFAULT_KEYS.into()).await?,
                    ))
                };
                match loaded.await {
                    Ok((layout, sample)) => {
                        failure.set(None);
                        on_action.emit(ExplorerAction::LoadDatabase { layout, sample });
                    }
                    Err(error) => failure.set(Some(format!("Not loaded: {error}"))),
                }
            });
        })
    };
    html! {
        <div class="card load-database">
            <button class="button small" id="load-database" {onclick}>{ "Load the database's layout and keys" }</button>
            if let Some(text) = &*failure {
                <span class="error-text small" id="load-database-error">{ text }</span>
            } else if let Some(text) = &props.loaded {
                <span class="muted small" id="loaded-database">{ format!("Loaded: {text}.") }</span>
            }
        </div>
    }
}

/// The explorer tab.
#[function_component]
pub fn ExplorerPage(props: &ExplorerPageProps) -> Html {
    let state = &props.state;
    // The keys' hashes: only new keys or a new seed change them.
    let hashes = use_memo((state.keys(), state.params.seed), |(keys, seed)| {
        Shared(Rc::<[u64]>::from(keys.hashes(*seed)))
    });
    // The scenario: a replay (a new revision only) draws the same one again.
    let scenario = use_memo(
        (
            Explorer {
                revision: 0,
                ..state.clone()
            },
            (*hashes).clone(),
        ),
        |(explorer, hashes)| {
            Scenario::compute_with(explorer, Rc::clone(&hashes.0))
                .map(|scenario| Shared(Rc::new(scenario)))
        },
    );
    let comparison = use_comparison(state, Rc::clone(&hashes.0));
    let on_pick_strategy = {
        let on_action = props.on_action.clone();
        Callback::from(move |strategy: StrategyKind| {
            on_action.emit(ExplorerAction::SetStrategy(strategy))
        })
    };

    html! {
        <div class="explorer">
            <Controls state={state.clone()} on_action={props.on_action.clone()} />
            <section class="workspace">
                if props.bridge {
                    <LoadDatabase loaded={state.loaded()} on_action={props.on_action.clone()} />
                }
                {
                    match &*scenario {
                        Ok(scenario) => html! {
                            <>
                                <Summary scenario={scenario.clone()} cli={state.cli_command()} on_replay={
                                    let on_action = props.on_action.clone();
                                    Callback::from(move |_| on_action.emit(ExplorerAction::Replay))
                                } />
                                <Stage scenario={scenario.clone()} revision={state.revision} />
                                <div class="panels">
                                    <LoadBars scenario={scenario.clone()} />
                                    <ComparisonTable
                                        rows={(*comparison).clone()}
                                        current={state.strategy}
                                        key_count={state.key_total()}
                                        from={state.before.len()}
                                        to={state.after.len()}
                                        on_pick={on_pick_strategy}
                                    />
                                </div>
                            </>
                        },
                        Err(error) => html! {
                            <div class="card refusal" id="layout-error">
                                <h2>{ "This layout cannot be built" }</h2>
                                <p>{ error.to_string() }</p>
                                <p class="hint">{ "Change the highlighted setting on the left; nothing else is affected." }</p>
                            </div>
                        },
                    }
                }
            </section>
        </div>
    }
}
