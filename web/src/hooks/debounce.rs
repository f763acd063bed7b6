//! `use_debounce`: hands a value to a callback once it has stayed the same
//! for `delay_ms` (what a field holds while someone types). The pending timer
//! is owned: a new value or unmounting drops it, so a superseded value is
//! never handed over and nothing fires after the component is gone.

use gloo::timers::callback::Timeout;
use yew::prelude::*;

/// Emits `value` to `settled` after `delay_ms` without a new value; `None`
/// waits for nothing.
#[hook]
pub fn use_debounce<T>(value: Option<T>, delay_ms: u32, settled: Callback<T>)
where
    T: Clone + PartialEq + 'static,
{
    use_effect_with(value, move |value| {
        let timer = value
            .clone()
            .map(|value| Timeout::new(delay_ms, move || settled.emit(value)));
        move || drop(timer)
    });
}
