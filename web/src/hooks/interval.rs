//! `use_interval`: a callback every `period_ms` while `period_ms` is `Some`;
//! the timer is owned and dropped when the period changes or on unmount.

use gloo::timers::callback::Interval;
use yew::prelude::*;

/// Calls `callback` every `period_ms` milliseconds; `None` stops.
#[hook]
pub fn use_interval(period_ms: Option<u32>, callback: Callback<()>) {
    use_effect_with(period_ms, move |period| {
        let timer = period.map(|period| Interval::new(period, move || callback.emit(())));
        move || drop(timer)
    });
}
