//! The page: header with the bridge's status, the explorer and the live view
//! as two tabs (`#explore`, `#live`), and the one-time bridge check.

use yew::platform::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::components::explorer::ExplorerPage;
use crate::components::live::LivePage;
use crate::hooks::use_event_stream;
use crate::live::{BridgeStatus, Live, LiveAction, StreamStatus};
use crate::state::{Explorer, ExplorerAction};

/// Which tab is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    /// The explorer.
    Explore,
    /// The live cluster.
    Live,
}

impl Tab {
    fn from_hash(hash: &str) -> Tab {
        if hash.trim_start_matches('#') == "live" {
            Tab::Live
        } else {
            Tab::Explore
        }
    }

    fn hash(self) -> &'static str {
        match self {
            Tab::Explore => "#explore",
            Tab::Live => "#live",
        }
    }
}

/// The whole page.
#[function_component]
pub fn App() -> Html {
    let explorer = use_reducer(Explorer::default);
    let live = use_reducer(Live::default);
    let tab = use_state(|| {
        let hash = web_sys::window()
            .and_then(|window| window.location().hash().ok())
            .unwrap_or_default();
        Tab::from_hash(&hash)
    });

    {
        let dispatcher = live.dispatcher();
        use_effect_with((), move |_| {
            spawn_local(look_for_the_bridge(dispatcher));
            crate::bench::mark_interactive();
        });
    }
    let stream_dispatch = {
        let dispatcher = live.dispatcher();
        Callback::from(move |action| dispatcher.dispatch(action))
    };
    use_event_stream(live.has_bridge(), "/api/events", stream_dispatch.clone());

    let on_explorer_action = {
        let dispatcher = explorer.dispatcher();
        Callback::from(move |action: ExplorerAction| dispatcher.dispatch(action))
    };
    let select_tab = |target: Tab| {
        let tab = tab.clone();
        Callback::from(move |_: MouseEvent| {
            if let Some(window) = web_sys::window() {
                let _ = window.location().set_hash(target.hash());
            }
            tab.set(target);
        })
    };
    let tab_class = |target: Tab| classes!("tab", (*tab == target).then_some("active"));

    html! {
        <div class="shell">
            <header class="topbar">
                { brand() }
                <nav class="tabs">
                    <button id="tab-explore" class={tab_class(Tab::Explore)} onclick={select_tab(Tab::Explore)}>{ "Explorer" }</button>
                    <button id="tab-live" class={tab_class(Tab::Live)} onclick={select_tab(Tab::Live)}>{ "Live cluster" }</button>
                </nav>
                <BridgeBadge bridge={live.bridge.clone()} stream={live.stream.clone()} />
            </header>
            <main class="content">
                if *tab == Tab::Explore {
                    <ExplorerPage state={(*explorer).clone()} on_action={on_explorer_action} bridge={live.has_bridge()} />
                } else {
                    <LivePage live={(*live).clone()} explorer={(*explorer).clone()} dispatch={stream_dispatch} />
                }
            </main>
            <footer class="footer">
                { "One hashing core decides placement here (WebAssembly) and in the bridge (native): what the page shows is what the database does." }
            </footer>
        </div>
    }
}

/// Asks `/api/health`, then, when a bridge answered, `/api/cluster`.
async fn look_for_the_bridge(dispatcher: UseReducerDispatcher<Live>) {
    match api::health().await {
        Ok(health) => {
            dispatcher.dispatch(LiveAction::BridgeFound(health));
            match api::cluster().await {
                Ok(view) => dispatcher.dispatch(LiveAction::Cluster(view)),
                Err(error) => dispatcher.dispatch(LiveAction::Failed(error.message)),
            }
        }
        Err(error) => dispatcher.dispatch(LiveAction::BridgeAbsent(absent_reason(&error))),
    }
}

/// The logo and the name.
fn brand() -> Html {
    html! {
        <div class="brand">
            <svg class="logo" viewBox="0 0 32 32" aria-hidden="true">
                <circle cx="16" cy="16" r="12" fill="none" stroke="currentColor" stroke-width="3" stroke-dasharray="14 4.85" />
                <circle cx="16" cy="4" r="3" fill="#f59e0b" />
                <circle cx="26.4" cy="22" r="3" fill="#34d399" />
                <circle cx="5.6" cy="22" r="3" fill="#f472b6" />
            </svg>
            <div>
                <div class="brand-name">{ "ecoshard" }</div>
                <div class="brand-tag">{ "see and do database sharding" }</div>
            </div>
        </div>
    }
}

#[derive(PartialEq, Properties)]
struct BridgeBadgeProps {
    bridge: BridgeStatus,
    stream: StreamStatus,
}

#[function_component]
fn BridgeBadge(props: &BridgeBadgeProps) -> Html {
    let (class, text, title) = match (&props.bridge, &props.stream) {
        (BridgeStatus::Checking, _) => (
            "badge checking",
            "looking for a bridge…".to_string(),
            String::new(),
        ),
        (BridgeStatus::Absent { reason }, _) => (
            "badge offline",
            "explorer only · no bridge".to_string(),
            reason.clone(),
        ),
        (BridgeStatus::Present { version }, StreamStatus::Open) => (
            "badge online",
            format!("bridge {version} · live"),
            String::new(),
        ),
        (BridgeStatus::Present { version }, StreamStatus::Reconnecting { attempt, delay_ms }) => (
            "badge warning",
            format!("bridge {version} · reconnecting in {} s", delay_ms / 1_000),
            format!("stream dropped; attempt {attempt}"),
        ),
        (BridgeStatus::Present { version }, _) => (
            "badge checking",
            format!("bridge {version} · connecting"),
            String::new(),
        ),
    };
    html! {
        <div id="bridge-status" class={class} title={title}>
            <span class="dot" />
            { text }
        </div>
    }
}

/// Why the health check says there is no bridge, in words that fit a page
/// served as plain files.
fn absent_reason(error: &api::ApiError) -> String {
    match (error.status, error.code.as_str()) {
        (Some(status), _) => {
            format!("/api/health answered {status}: this server has no ecoshard API.")
        }
        (None, "bad_answer") => {
            "/api/health did not answer with JSON: this server has no ecoshard API.".to_string()
        }
        _ => error.message.clone(),
    }
}
