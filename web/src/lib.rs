//! ecoshard's page: an animated rebalancing explorer over the shared hashing
//! core, and a live view of the replicated cluster when the bridge is there.
//!
//! Everything that is not DOM (the explorer's state and scenarios, geometry,
//! the key sprites' pixel work, the live view's reducer, error wording) lives in
//! plain modules tested natively; `components/` and `hooks/` are the Yew side.

mod answers;
pub mod api;
pub mod bench;
pub mod components;
pub mod entry;
pub mod format;
pub mod frame;
pub mod geometry;
pub mod hooks;
mod json;
pub mod live;
pub mod math;
pub mod palette;
pub mod scenario;
pub mod state;
pub mod verdict;

/// Mounts the page into `#app`, replacing the loading message (or into
/// `<body>` when there is no `#app`), after keeping the bridge's token from
/// the URL, if it carries one. Called once by the wasm start function.
pub fn mount() {
    api::keep_token_from_url();
    let root = web_sys::window()
        .and_then(|window| window.document())
        .and_then(|document| document.get_element_by_id("app"));
    match root {
        Some(root) => {
            root.set_inner_html("");
            yew::Renderer::<components::app::App>::with_root(root).render();
        }
        None => {
            yew::Renderer::<components::app::App>::new().render();
        }
    }
}

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
fn start() {
    mount();
}
