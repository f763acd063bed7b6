//! Real traffic through the bridge: insert one user (form), bulk N, a steady
//! rate of inserts and read-backs (start/stop); reads with a chosen
//! consistency, and the reads each node served.

use std::cell::RefCell;
use std::rc::Rc;

use ecoshard_core::DEFAULT_KEY_PREFIX;
use ecoshard_core::wire::{Consistency, InsertResult, NewUser, NodeCount, ReadResult};
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::platform::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::format::thousands;
use crate::hooks::use_interval;
use crate::live::{Live, LiveAction};

#[derive(PartialEq, Properties)]
pub(super) struct TrafficProps {
    pub(super) live: Live,
    pub(super) dispatch: Callback<LiveAction>,
}

const MAX_RATE: u32 = 50;

fn input_value(node: &NodeRef) -> String {
    node.cast::<HtmlInputElement>()
        .map(|input| input.value())
        .unwrap_or_default()
}

fn set_input(node: &NodeRef, value: &str) {
    if let Some(input) = node.cast::<HtmlInputElement>() {
        input.set_value(value);
    }
}

fn fresh_user_id() -> String {
    format!(
        "{DEFAULT_KEY_PREFIX}{}",
        (js_sys::Math::random() * 1e6) as u32
    )
}

fn insert(user: NewUser, dispatch: Callback<LiveAction>) {
    spawn_local(async move {
        match api::insert_user(&user).await {
            Ok(result) => dispatch.emit(LiveAction::Inserted(Box::new(result))),
            Err(error) => dispatch.emit(LiveAction::WriteFailed {
                // One wording for every id, so a run of refusals is one line.
                what: "Insert".to_string(),
                error,
            }),
        }
    });
}

fn read(user_id: String, consistency: Consistency, dispatch: Callback<LiveAction>) {
    spawn_local(async move {
        match api::read_user(&user_id, consistency).await {
            Ok(result) => dispatch.emit(LiveAction::Read(Box::new(result))),
            Err(error) => dispatch.emit(LiveAction::Failed(format!("Read: {error}"))),
        }
    });
}

/// The steady traffic generator's own counter and the last id the bridge
/// acknowledged, which the next tick reads back.
#[derive(Default)]
struct Steady {
    sent: u64,
    session: u32,
    acknowledged: Option<String>,
}

/// One tick of steady traffic: insert a fresh user, read back the last one
/// the bridge acknowledged (so reads flow across the standbys too). Their
/// answers update the counters and the last insert and read, not the log;
/// failures are logged (a run of the same one as one line).
fn steady_tick(steady: &Rc<RefCell<Steady>>, dispatch: &Callback<LiveAction>) {
    let (id, acknowledged) = {
        let mut state = steady.borrow_mut();
        state.sent += 1;
        (
            format!("steady_{}_{}", state.session, state.sent),
            state.acknowledged.clone(),
        )
    };
    let user = NewUser {
        user_id: id,
        name: None,
        email: None,
    };
    let (inserted, insert_dispatch) = (Rc::clone(steady), dispatch.clone());
    spawn_local(async move {
        match api::insert_user(&user).await {
            Ok(result) => {
                inserted.borrow_mut().acknowledged = Some(result.user.user_id.clone());
                insert_dispatch.emit(LiveAction::SteadyInserted(Box::new(result)));
            }
            Err(error) => insert_dispatch.emit(LiveAction::WriteFailed {
                what: "Insert".to_string(),
                error,
            }),
        }
    });
    if let Some(previous) = acknowledged {
        let dispatch = dispatch.clone();
        spawn_local(async move {
            match api::read_user(&previous, Consistency::Eventual).await {
                Ok(result) => dispatch.emit(LiveAction::SteadyRead(Box::new(result))),
                Err(error) => dispatch.emit(LiveAction::Failed(format!("Read: {error}"))),
            }
        });
    }
}

#[function_component]
pub(super) fn Traffic(props: &TrafficProps) -> Html {
    let live = &props.live;
    let stats = &live.stats;
    let last_inserted = live
        .last_insert
        .as_ref()
        .map(|insert| insert.user.user_id.clone());
    html! {
        <div class="card traffic" id="traffic">
            <div class="card-head">
                <h3>{ "Traffic" }</h3>
                <span class="muted small">
                    { format!("{} writes · {:.0}/s writes · {:.0}/s reads · {} failed reads", thousands(stats.writes), stats.writes_per_sec, stats.reads_per_sec, thousands(stats.failed_reads)) }
                    if live.writes_refused > 0 {
                        <span class="bad" id="writes-refused-count">{ format!(" · {} writes refused (503)", thousands(live.writes_refused)) }</span>
                    }
                </span>
            </div>
            <InsertForm last_insert={live.last_insert.clone()} dispatch={props.dispatch.clone()} />
            <BulkAndSteady
                steady_inserts={live.steady_inserts}
                steady_reads={live.steady_reads}
                dispatch={props.dispatch.clone()}
            />
            <ReadForm {last_inserted} last_read={live.last_read.clone()} dispatch={props.dispatch.clone()} />
            { read_counters(&live.read_counts()) }
        </div>
    }
}

#[derive(PartialEq, Properties)]
struct InsertFormProps {
    last_insert: Option<InsertResult>,
    dispatch: Callback<LiveAction>,
}

/// One user by its id (a fresh one offered each time), name and e-mail;
/// then where it went.
#[function_component]
fn InsertForm(props: &InsertFormProps) -> Html {
    let user_id = use_node_ref();
    let user_name = use_node_ref();
    let email = use_node_ref();
    // Set once: a `value` attribute would be put back by Yew on every
    // render, over what is being typed.
    use_first_values(&[(user_id.clone(), fresh_user_id())]);
    let on_insert = {
        let (user_id, user_name, email) = (user_id.clone(), user_name.clone(), email.clone());
        let dispatch = props.dispatch.clone();
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            let id = input_value(&user_id).trim().to_string();
            if id.is_empty() {
                dispatch.emit(LiveAction::Failed(
                    "Give the user an id: it is the shard key.".to_string(),
                ));
                return;
            }
            let optional = |node: &NodeRef| {
                Some(input_value(node).trim().to_string()).filter(|v| !v.is_empty())
            };
            insert(
                NewUser {
                    user_id: id,
                    name: optional(&user_name),
                    email: optional(&email),
                },
                dispatch.clone(),
            );
            set_input(&user_id, &fresh_user_id());
        })
    };
    html! {
        <>
            <form class="form-row" id="insert-form" onsubmit={on_insert}>
                <input ref={user_id} id="insert-id" placeholder="user id (shard key)" />
                <input ref={user_name} id="insert-name" placeholder="name (optional)" />
                <input ref={email} id="insert-email" placeholder="e-mail (optional)" />
                <button class="button primary" type="submit" id="insert-one">{ "Insert" }</button>
            </form>
            if let Some(result) = &props.last_insert {
                <p class="result" id="last-insert">{ format!("{} → shard {} on {} · commit LSN {}", result.user.user_id, result.shard, result.served_by, result.lsn) }</p>
            }
        </>
    }
}

#[derive(PartialEq, Properties)]
struct BulkAndSteadyProps {
    steady_inserts: u64,
    steady_reads: u64,
    dispatch: Callback<LiveAction>,
}

/// Bulk inserts of N users, and steady traffic started and stopped at a
/// rate, with what it got acknowledged.
#[function_component]
fn BulkAndSteady(props: &BulkAndSteadyProps) -> Html {
    let bulk_count = use_node_ref();
    let rate_input = use_node_ref();
    let rate = use_state(|| None::<u32>);
    use_first_values(&[
        (bulk_count.clone(), "1000".to_string()),
        (rate_input.clone(), "10".to_string()),
    ]);
    use_steady_traffic(*rate, &props.dispatch);
    let on_bulk = bulk_insert(&bulk_count, &props.dispatch);
    let toggle_rate = toggle_steady(&rate, &rate_input, &props.dispatch);
    html! {
        <>
            <div class="form-grid">
                <form class="form-row" onsubmit={on_bulk}>
                    <input ref={bulk_count} id="bulk-count" type="number" min="1" />
                    <button class="button" type="submit" id="insert-bulk">{ "Insert N" }</button>
                </form>
                <div class="form-row">
                    <input ref={rate_input} id="steady-rate" type="number" min="1" max={MAX_RATE.to_string()} disabled={rate.is_some()} />
                    <button class={classes!("button", if rate.is_some() { "danger" } else { "" })} id="steady-toggle" onclick={toggle_rate}>
                        { if let Some(per_second) = *rate { format!("Stop ({per_second}/s)") } else { "Start steady /s".to_string() } }
                    </button>
                </div>
            </div>
            if props.steady_inserts > 0 {
                <p class="muted small steady-status" id="steady-status">
                    { format!("steady traffic: {} inserts and {} read-backs acknowledged", thousands(props.steady_inserts), thousands(props.steady_reads)) }
                    { if rate.is_some() { " · running" } else { " · stopped" } }
                </p>
            }
        </>
    }
}

/// Steady traffic at `rate` a second while there is one (see [`steady_tick`]).
#[hook]
fn use_steady_traffic(rate: Option<u32>, dispatch: &Callback<LiveAction>) {
    let steady = use_mut_ref(|| Steady {
        sent: 0,
        session: js_sys::Math::random().to_bits() as u32 % 100_000,
        acknowledged: None,
    });
    let dispatch = dispatch.clone();
    let tick = Callback::from(move |_| steady_tick(&steady, &dispatch));
    use_interval(rate.map(|per_second| 1_000 / per_second), tick);
}

/// "Insert N": the count as typed goes to the bridge, which decides how
/// many it takes and says so when it refuses.
fn bulk_insert(bulk_count: &NodeRef, dispatch: &Callback<LiveAction>) -> Callback<SubmitEvent> {
    let bulk_count = bulk_count.clone();
    let dispatch = dispatch.clone();
    Callback::from(move |event: SubmitEvent| {
        event.prevent_default();
        let Ok(count) = input_value(&bulk_count).trim().parse::<u64>() else {
            dispatch.emit(LiveAction::Failed(
                "Bulk insert needs a number of users.".to_string(),
            ));
            return;
        };
        let dispatch = dispatch.clone();
        spawn_local(async move {
            match api::insert_bulk(count, None).await {
                Ok(result) => dispatch.emit(LiveAction::BulkInserted(result)),
                Err(error) => dispatch.emit(LiveAction::WriteFailed {
                    what: "Bulk insert".to_string(),
                    error,
                }),
            }
        });
    })
}

/// Starts steady traffic at the rate typed (1 to [`MAX_RATE`]), or stops it.
fn toggle_steady(
    rate: &UseStateHandle<Option<u32>>,
    rate_input: &NodeRef,
    dispatch: &Callback<LiveAction>,
) -> Callback<MouseEvent> {
    let (rate, rate_input, dispatch) = (rate.clone(), rate_input.clone(), dispatch.clone());
    Callback::from(move |_: MouseEvent| {
        if rate.is_some() {
            rate.set(None);
            return;
        }
        match input_value(&rate_input).trim().parse::<u32>() {
            Ok(per_second) if (1..=MAX_RATE).contains(&per_second) => rate.set(Some(per_second)),
            _ => dispatch.emit(LiveAction::Failed(format!(
                "A steady rate is 1 to {MAX_RATE} inserts per second."
            ))),
        }
    })
}

#[derive(PartialEq, Properties)]
struct ReadFormProps {
    /// The id of the last user inserted: what a blank id reads.
    last_inserted: Option<String>,
    last_read: Option<ReadResult>,
    dispatch: Callback<LiveAction>,
}

/// A read by id (blank: the last inserted) at a chosen consistency; then
/// who served it.
#[function_component]
fn ReadForm(props: &ReadFormProps) -> Html {
    let read_id = use_node_ref();
    let consistency = use_node_ref();
    let on_read = {
        let (read_id, consistency) = (read_id.clone(), consistency.clone());
        let dispatch = props.dispatch.clone();
        let last_inserted = props.last_inserted.clone();
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            let typed = input_value(&read_id).trim().to_string();
            let Some(id) = Some(typed)
                .filter(|id| !id.is_empty())
                .or_else(|| last_inserted.clone())
            else {
                dispatch.emit(LiveAction::Failed(
                    "Give the id of a user to read.".to_string(),
                ));
                return;
            };
            let level = consistency
                .cast::<HtmlSelectElement>()
                .and_then(|select| Consistency::from_name(&select.value()))
                .unwrap_or_default();
            read(id, level, dispatch.clone());
        })
    };
    html! {
        <>
            <form class="form-row" onsubmit={on_read}>
                <input ref={read_id} id="read-id" placeholder="user id (blank: the last inserted)" />
                <select ref={consistency} id="read-consistency">
                    { for Consistency::ALL.iter().map(|level| html! {
                        <option value={level.name()} selected={*level == Consistency::Eventual}>{ level.name() }</option>
                    }) }
                </select>
                <button class="button" type="submit" id="read-one">{ "Read" }</button>
            </form>
            if let Some(result) = &props.last_read {
                <p class="result" id="last-read">
                    { format!("{} served by ", result.user.user_id) }<strong id="served-by">{ &result.served_by }</strong>
                    { format!(" · shard {} · {}", result.shard, result.consistency.name()) }
                </p>
            }
        </>
    }
}

/// Reads each node served since the bridge started, as shares of all.
fn read_counters(reads: &[NodeCount]) -> Html {
    let reads_total: u64 = reads.iter().map(|count| count.count).sum();
    html! {
        <div class="read-counters" id="read-counters">
            { for reads.iter().map(|count| {
                let share = if reads_total > 0 { count.count as f64 / reads_total as f64 * 100.0 } else { 0.0 };
                html! {
                    <div class="bar-row" data-node={count.node.clone()}>
                        <span class="bar-name">{ &count.node }</span>
                        <div class="bar-track"><div class="bar after" style={format!("width: {share:.1}%")} /></div>
                        <span class="bar-count">{ thousands(count.count) }</span>
                    </div>
                }
            }) }
            if reads.is_empty() {
                <p class="muted small">{ "Reads per node appear here: watch them alternate between the standbys." }</p>
            }
        </div>
    }
}

/// Gives fields their first values, once, when the component mounts.
#[hook]
fn use_first_values(fields: &[(NodeRef, String)]) {
    let fields = fields.to_vec();
    use_effect_with((), move |_| {
        for (field, value) in fields {
            set_input(&field, &value);
        }
    });
}
