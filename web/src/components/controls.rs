//! The explorer's controls: strategy, shards (add, remove a chosen one, set
//! the count), key count, seed and the parameters the strategy uses.

use ecoshard_core::{
    DEFAULT_KEY_PREFIX, MAX_LOAD_FACTOR, MAX_TABLE_SIZE, MAX_VNODES, MIN_LOAD_FACTOR, StrategyKind,
};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::entry::{
    cluster_count_entry, key_count_entry, load_factor_entry, parameter_entry, seed_entry,
    shard_count_entry,
};
use crate::hooks::use_debounce;
use crate::palette::shard_color;
use crate::state::{
    Explorer, ExplorerAction, MAX_CLUSTERS, MAX_KEYS, MAX_SHARDS, strategy_blurb, strategy_title,
};

/// Props of [`Controls`].
#[derive(PartialEq, Properties)]
pub struct ControlsProps {
    /// The explorer's state.
    pub state: Explorer,
    /// Where the controls send their actions.
    pub on_action: Callback<ExplorerAction>,
}

const KEY_PRESETS: [u32; 5] = [300, 2_000, 10_000, 100_000, 1_000_000];

/// How long a field's text must stay the same before it is applied.
pub const TYPING_SETTLES_MS: u32 = 300;

/// The control panel.
#[function_component]
pub fn Controls(props: &ControlsProps) -> Html {
    let state = &props.state;
    let strategy = state.strategy;
    // The core's word on the layout, shown beside the fields that cause it.
    let refusal = state
        .layout_before()
        .validate()
        .and_then(|()| state.layout_after().validate())
        .err()
        .map(|error| error.to_string());

    html! {
        <aside class="controls card">
            { strategy_list(state, &props.on_action) }
            { shard_section(state, &props.on_action) }
            { cluster_section(state, &props.on_action) }
            { key_section(state, &props.on_action) }
            <section>
                <h3>{ "Parameters" }</h3>
                if strategy.uses_vnodes() {
                    <NumberField
                        id="vnodes" label="virtual nodes per shard" value={state.params.vnodes.to_string()}
                        min="1" max={MAX_VNODES.to_string()} step="1"
                        on_commit={entry_then(&props.on_action, |text| parameter_entry(text, "a number of virtual nodes"), ExplorerAction::SetVnodes)}
                    />
                }
                if strategy == StrategyKind::Maglev {
                    <NumberField
                        id="table-size" label="lookup table size (prime)" value={state.params.table_size.to_string()}
                        min="11" max={MAX_TABLE_SIZE.to_string()} step="2"
                        on_commit={entry_then(&props.on_action, |text| parameter_entry(text, "a table size"), ExplorerAction::SetTableSize)}
                    />
                }
                if let Some(error) = &refusal {
                    <p class="field-error" id="controls-error">{ error }</p>
                }
                if !strategy.uses_vnodes() && !matches!(strategy, StrategyKind::Maglev | StrategyKind::BoundedLoad) {
                    <p class="hint">{ format!("{} has no parameters beyond the seed.", strategy_title(strategy)) }</p>
                }
            </section>
        </aside>
    }
}

/// A click that sends `action`.
fn on_click(on_action: &Callback<ExplorerAction>, action: ExplorerAction) -> Callback<MouseEvent> {
    let on_action = on_action.clone();
    Callback::from(move |_: MouseEvent| on_action.emit(action.clone()))
}

/// The shard count, "+ Add shard", and a chip per shard with its × .
fn shard_section(state: &Explorer, on_action: &Callback<ExplorerAction>) -> Html {
    let act = |action: ExplorerAction| on_click(on_action, action);
    html! {
        <section>
            <h3>{ "Shards" }</h3>
            <div class="shard-row">
                <NumberField
                    id="shard-count" label="count" value={state.after.len().to_string()}
                    min="1" max={MAX_SHARDS.to_string()} step="1"
                    on_commit={entry_then(on_action, shard_count_entry, ExplorerAction::SetShardCount)}
                />
                <button id="add-shard" class="button primary" onclick={act(ExplorerAction::AddShard)}
                    disabled={state.after.len() >= MAX_SHARDS}>{ "+ Add shard" }</button>
            </div>
            <div class="chips" id="shard-chips">
                { for state.after.iter().zip(state.layout_after().shards).map(|(shard, placed)| {
                    let color = shard_color(&shard.name).css();
                    let is_new = !state.before.iter().any(|old| old.name == shard.name);
                    html! {
                        <span class={classes!("chip", is_new.then_some("new"))} style={format!("--chip: {color}")}>
                            <span class="swatch" />
                            { &shard.name }
                            if let Some(cluster) = placed.cluster.filter(|_| state.has_clusters()) {
                                <span class="chip-cluster" data-cluster={cluster.clone()}>{ cluster }</span>
                            }
                            <button class="remove-shard" data-shard={shard.name.clone()}
                                title={format!("remove {}", shard.name)}
                                disabled={state.after.len() <= 1}
                                onclick={act(ExplorerAction::RemoveShard(shard.name.clone()))}>{ "×" }</button>
                        </span>
                    }
                }) }
            </div>
            <p class="hint">{ "Click × to remove that shard: its keys move to the others." }</p>
        </section>
    }
}

/// The cluster count, and "+ Add a cluster" (a placement proposed: shards
/// moved onto the new cluster, the others left where they are).
fn cluster_section(state: &Explorer, on_action: &Callback<ExplorerAction>) -> Html {
    html! {
        <section>
            <h3>{ "Clusters" }</h3>
            <div class="shard-row">
                <NumberField
                    id="cluster-count" label="count" value={state.clusters.to_string()}
                    min="1" max={MAX_CLUSTERS.to_string()} step="1"
                    on_commit={entry_then(on_action, cluster_count_entry, ExplorerAction::SetClusterCount)}
                />
                <button id="propose-placement" class="button primary"
                    title="add a cluster and move its share of shards onto it, taken from the fullest clusters; every other shard stays"
                    onclick={on_click(on_action, ExplorerAction::ProposePlacement)}
                    disabled={state.clusters >= MAX_CLUSTERS}>{ "+ Add a cluster" }</button>
            </div>
            <p class="hint">{ "Each cluster is a primary with its standbys. A count places shards round-robin; + Add a cluster moves only the new cluster's share." }</p>
        </section>
    }
}

/// The key count with its presets, and the seed.
fn key_section(state: &Explorer, on_action: &Callback<ExplorerAction>) -> Html {
    let act = |action: ExplorerAction| on_click(on_action, action);
    html! {
        <section>
            <h3>{ "Keys" }</h3>
            <NumberField
                id="key-count" label={format!("{DEFAULT_KEY_PREFIX}0 … {DEFAULT_KEY_PREFIX}N-1")} value={state.key_count.to_string()}
                min="1" max={MAX_KEYS.to_string()} step="1"
                on_commit={entry_then(on_action, key_count_entry, ExplorerAction::SetKeyCount)}
            />
            <div class="presets">
                { for KEY_PRESETS.iter().map(|count| html! {
                    <button class={classes!("preset", (state.key_count == *count).then_some("selected"))}
                        onclick={act(ExplorerAction::SetKeyCount(*count))}>{ short_count(*count) }</button>
                }) }
            </div>
            <NumberField
                id="seed" label="hash seed" value={state.params.seed.to_string()}
                min="0" max={u64::MAX.to_string()} step="1"
                on_commit={entry_then(on_action, seed_entry, ExplorerAction::SetSeed)}
            />
        </section>
    }
}

/// The strategies, each with its one-line description; bounded-load shows its
/// load factor, and takes a new one under it when chosen.
fn strategy_list(state: &Explorer, on_action: &Callback<ExplorerAction>) -> Html {
    let strategy = state.strategy;
    html! {
        <section>
            <h3>{ "Strategy" }</h3>
            <div class="strategies" role="radiogroup">
                { for StrategyKind::ALL.iter().map(|kind| {
                    let selected = *kind == strategy;
                    let bounded = *kind == StrategyKind::BoundedLoad;
                    html! {
                        <>
                            <button
                                id={format!("strategy-{}", kind.name())}
                                class={classes!("strategy", selected.then_some("selected"))}
                                role="radio"
                                aria-checked={selected.to_string()}
                                onclick={on_click(on_action, ExplorerAction::SetStrategy(*kind))}
                            >
                                <span class="strategy-name">
                                    { strategy_title(*kind) }
                                    if bounded {
                                        <span class="strategy-param" id="load-factor-shown">{ format!("c = {}", state.params.load_factor) }</span>
                                    }
                                </span>
                                <span class="strategy-blurb">{ strategy_blurb(*kind) }</span>
                            </button>
                            if bounded && selected {
                                <div class="strategy-detail">
                                    <NumberField
                                        id="load-factor" label="load factor c" value={state.params.load_factor.to_string()}
                                        min={MIN_LOAD_FACTOR.to_string()} max={MAX_LOAD_FACTOR.to_string()} step="0.01" inputmode="decimal"
                                        on_commit={entry_then(on_action, load_factor_entry, ExplorerAction::SetLoadFactor)}
                                    />
                                    <p class="hint">{ "The cap, ⌈c × mean⌉ keys a shard, is drawn on the load bars. The page starts at 1.05: the core's 1.25 seldom binds with 160 virtual nodes." }</p>
                                </div>
                            }
                        </>
                    }
                }) }
            </div>
        </section>
    }
}

/// A commit callback: reads the field's text with `entry`; a value is sent as
/// the action, a refusal comes back as the sentence shown beside the field.
fn entry_then<T: 'static>(
    on_action: &Callback<ExplorerAction>,
    entry: impl Fn(&str) -> Result<T, String> + 'static,
    make: impl Fn(T) -> ExplorerAction + 'static,
) -> Callback<String, Option<String>> {
    let on_action = on_action.clone();
    Callback::from(move |text: String| match entry(&text) {
        Ok(value) => {
            on_action.emit(make(value));
            None
        }
        Err(refusal) => Some(refusal),
    })
}

fn short_count(count: u32) -> String {
    match count {
        1_000_000.. => format!("{}M", count / 1_000_000),
        1_000.. => format!("{}k", count / 1_000),
        _ => count.to_string(),
    }
}

#[derive(PartialEq, Properties)]
struct NumberFieldProps {
    id: AttrValue,
    label: AttrValue,
    value: AttrValue,
    min: AttrValue,
    max: AttrValue,
    step: AttrValue,
    /// The keyboard a phone shows: whole numbers unless told.
    #[prop_or(AttrValue::Static("numeric"))]
    inputmode: AttrValue,
    /// Applies the text; returns why it cannot be applied, if it cannot.
    on_commit: Callback<String, Option<String>>,
}

/// A labelled number input, applied as it is typed (once the text has stayed
/// the same for [`TYPING_SETTLES_MS`]) and at once on Enter or on leaving the
/// field. Text that is not a valid value is said beside the field; the page
/// keeps the last valid one meanwhile. A new value from the state (e.g. the
/// count after "+ Add shard") replaces the text and the message.
#[function_component]
fn NumberField(props: &NumberFieldProps) -> Html {
    let input = use_node_ref();
    let refusal = use_state(|| None::<String>);
    // What was typed last, numbered so that typing the same text again
    // (after the state moved on) is applied again.
    let typed = use_state(|| None::<(u32, String)>);
    {
        let input = input.clone();
        let refusal = refusal.clone();
        use_effect_with(props.value.clone(), move |value| {
            if let Some(element) = input.cast::<HtmlInputElement>() {
                element.set_value(value);
            }
            refusal.set(None);
        });
    }
    let commit = {
        let on_commit = props.on_commit.clone();
        let refusal = refusal.clone();
        Callback::from(move |text: String| refusal.set(on_commit.emit(text)))
    };
    use_debounce(
        (*typed).clone(),
        TYPING_SETTLES_MS,
        commit.reform(|(_, text)| text),
    );
    let commit_now = {
        let input = input.clone();
        let typed = typed.clone();
        move || {
            if let Some(element) = input.cast::<HtmlInputElement>() {
                typed.set(None);
                commit.emit(element.value());
            }
        }
    };
    let oninput = {
        let input = input.clone();
        Callback::from(move |_: InputEvent| {
            if let Some(element) = input.cast::<HtmlInputElement>() {
                let number = typed
                    .as_ref()
                    .map_or(0, |(number, _)| number.wrapping_add(1));
                typed.set(Some((number, element.value())));
            }
        })
    };
    let onchange = {
        let commit_now = commit_now.clone();
        Callback::from(move |_: Event| commit_now())
    };
    let onkeydown = Callback::from(move |event: KeyboardEvent| {
        if event.key() == "Enter" {
            commit_now();
        }
    });
    let error_id = format!("{}-error", props.id);
    html! {
        <div class="field-wrap">
            <label class="field">
                <span class="field-label">{ &props.label }</span>
                // No `value` attribute: Yew would put it back on every render, over
                // what is being typed. The effect above shows the state's value.
                <input ref={input} id={props.id.clone()} type="number" inputmode={props.inputmode.clone()}
                    min={props.min.clone()} max={props.max.clone()} step={props.step.clone()}
                    aria-invalid={refusal.is_some().to_string()}
                    aria-describedby={refusal.is_some().then(|| error_id.clone())}
                    {oninput} {onchange} {onkeydown} />
            </label>
            if let Some(refusal) = &*refusal {
                <p class="field-error" id={error_id} role="alert">{ refusal }</p>
            }
        </div>
    }
}
