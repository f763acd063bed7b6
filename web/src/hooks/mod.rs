//! Hooks that own browser resources — animation frames, intervals, the event
//! stream — and release them when the component unmounts.

mod animation;
mod event_stream;
mod interval;

pub use animation::use_animation;
pub use event_stream::{reconnect_delay_ms, use_event_stream};
pub use interval::use_interval;
