//! The explorer tab: controls on the left; the stage, the moved-keys summary,
//! the load bars and the strategy comparison on the right. The scenario is
//! worked out on every change; the comparison (six plans) a moment later, so
//! the animation starts at once.

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
use crate::scenario::{Comparison, Scenario, compare_all};
use crate::state::{Explorer, ExplorerAction, Params};

/// Props of [`ExplorerPage`].
#[derive(PartialEq, Properties)]
pub struct ExplorerPageProps {
    /// The explorer's state.
    pub state: Explorer,
    /// Where controls send their actions.
    pub on_action: Callback<ExplorerAction>,
}

/// What the comparison depends on: everything but the strategy.
#[derive(Clone, PartialEq)]
struct ComparisonInputs {
    before: Vec<Shard>,
    after: Vec<Shard>,
    params: Params,
    key_count: u32,
}

/// The explorer tab.
#[function_component]
pub fn ExplorerPage(props: &ExplorerPageProps) -> Html {
    let state = &props.state;
    let scenario = use_memo(state.clone(), |state| {
        Scenario::compute(state).map(|scenario| Shared(Rc::new(scenario)))
    });
    let comparison = use_state(|| None::<Shared<Vec<Comparison>>>);
    {
        let inputs = ComparisonInputs {
            before: state.before.clone(),
            after: state.after.clone(),
            params: state.params,
            key_count: state.key_count,
        };
        let explorer = state.clone();
        let hashes = match &*scenario {
            Ok(scenario) => Some(scenario.clone()),
            Err(_) => None,
        };
        let comparison = comparison.clone();
        use_effect_with(inputs, move |_| {
            comparison.set(None);
            let timer = Timeout::new(30, move || {
                let hashes = match hashes {
                    Some(scenario) => scenario.hashes.clone(),
                    None => ecoshard_core::numbered_key_hashes(
                        ecoshard_core::DEFAULT_KEY_PREFIX,
                        explorer.key_count as usize,
                        explorer.params.seed,
                    ),
                };
                comparison.set(Some(Shared(Rc::new(compare_all(&explorer, &hashes)))));
            });
            move || drop(timer)
        });
    }
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
                                        key_count={state.key_count}
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
