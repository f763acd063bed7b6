//! `use_animation`: calls a function on every animation frame until it says
//! stop, restarting when `generation` changes. The pending frame's handle is
//! owned and dropped (cancelled) on restart and on unmount.

use std::cell::RefCell;
use std::rc::Rc;

use gloo::render::{AnimationFrame, request_animation_frame};
use yew::prelude::*;

/// The frame function: gets the frame's timestamp (ms), returns whether to go on.
pub type FrameFn = Rc<dyn Fn(f64) -> bool>;

#[derive(Default)]
struct FrameLoop {
    pending: Option<AnimationFrame>,
    /// The handle whose callback is running: kept until the next frame so a
    /// closure is never dropped while it runs.
    running: Option<AnimationFrame>,
    stopped: bool,
}

fn schedule(frame_loop: Rc<RefCell<FrameLoop>>, frame: FrameFn) {
    let looped = Rc::clone(&frame_loop);
    let handle = request_animation_frame(move |timestamp| {
        if looped.borrow().stopped {
            return;
        }
        let go_on = frame(timestamp);
        let mut state = looped.borrow_mut();
        state.running = state.pending.take();
        drop(state);
        if go_on {
            schedule(Rc::clone(&looped), frame);
        }
    });
    frame_loop.borrow_mut().pending = Some(handle);
}

/// Runs `frame` on every animation frame from now until it returns false;
/// restarts with the `frame` of the render where `generation` changed.
#[hook]
pub fn use_animation(generation: u64, frame: FrameFn) {
    use_effect_with(generation, move |_| {
        let frame_loop = Rc::new(RefCell::new(FrameLoop::default()));
        schedule(Rc::clone(&frame_loop), frame);
        move || {
            let mut state = frame_loop.borrow_mut();
            state.stopped = true;
            state.pending = None;
        }
    });
}
