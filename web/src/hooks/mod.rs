//! Hooks that own browser resources — animation frames, intervals, debounce
//! timers, the event stream — and release them when the component unmounts.

mod animation;
mod debounce;
mod event_stream;
mod interval;

pub use animation::use_animation;
pub use debounce::use_debounce;
pub use event_stream::{reconnect_delay_ms, use_event_stream};
pub use interval::use_interval;
