//! `use_event_stream`: `GET /api/events` as Server-Sent Events. Every `tick`
//! is parsed into the wire type and dispatched; when the stream drops it is
//! closed and opened again after a growing pause (1 s, 2 s, 4 s … 10 s).
//! The `EventSource`, its listeners and the retry timer are owned and
//! released on unmount.

use std::cell::RefCell;
use std::rc::Rc;

use ecoshard_core::wire::Tick;
use gloo::events::EventListener;
use gloo::timers::callback::Timeout;
use wasm_bindgen::JsCast;
use web_sys::{EventSource, MessageEvent};
use yew::prelude::*;

use crate::live::LiveAction;

/// Pause before reconnect attempt `attempt` (1-based), in ms.
pub fn reconnect_delay_ms(attempt: u32) -> u32 {
    let doubled = 1_000u32.saturating_mul(1 << attempt.saturating_sub(1).min(8));
    doubled.min(10_000)
}

#[derive(Default)]
struct Connection {
    source: Option<EventSource>,
    listeners: Vec<EventListener>,
    retry: Option<Timeout>,
    attempt: u32,
    closed: bool,
}

impl Connection {
    fn close_source(&mut self) {
        self.listeners.clear();
        if let Some(source) = self.source.take() {
            source.close();
        }
    }
}

fn open(connection: &Rc<RefCell<Connection>>, url: &str, dispatch: &Callback<LiveAction>) {
    if connection.borrow().closed {
        return;
    }
    dispatch.emit(LiveAction::StreamConnecting);
    let source = match EventSource::new(url) {
        Ok(source) => source,
        Err(_) => {
            retry_later(connection, url, dispatch);
            return;
        }
    };
    let on_open = {
        let connection = Rc::clone(connection);
        let dispatch = dispatch.clone();
        EventListener::new(&source, "open", move |_| {
            connection.borrow_mut().attempt = 0;
            dispatch.emit(LiveAction::StreamOpen);
        })
    };
    let on_tick = {
        let dispatch = dispatch.clone();
        EventListener::new(&source, "tick", move |event| {
            let Some(data) = event
                .dyn_ref::<MessageEvent>()
                .and_then(|message| message.data().as_string())
            else {
                return;
            };
            match crate::json::from_str::<Tick>(&data) {
                Ok(tick) => dispatch.emit(LiveAction::Tick(Box::new(tick))),
                Err(error) => dispatch.emit(LiveAction::Failed(format!(
                    "A stream event could not be read: {error}."
                ))),
            }
        })
    };
    let on_error = {
        let connection = Rc::clone(connection);
        let url = url.to_string();
        let dispatch = dispatch.clone();
        EventListener::new(&source, "error", move |_| {
            // Close and retry on our own schedule, whether or not the browser
            // would have retried (it gives up for good on some failures).
            connection.borrow_mut().close_source();
            retry_later(&connection, &url, &dispatch);
        })
    };
    let mut state = connection.borrow_mut();
    state.listeners = vec![on_open, on_tick, on_error];
    state.source = Some(source);
}

fn retry_later(connection: &Rc<RefCell<Connection>>, url: &str, dispatch: &Callback<LiveAction>) {
    let attempt = {
        let mut state = connection.borrow_mut();
        if state.closed {
            return;
        }
        state.attempt += 1;
        state.attempt
    };
    let delay_ms = reconnect_delay_ms(attempt);
    dispatch.emit(LiveAction::StreamLost { attempt, delay_ms });
    let timer = {
        let connection = Rc::clone(connection);
        let url = url.to_string();
        let dispatch = dispatch.clone();
        Timeout::new(delay_ms, move || open(&connection, &url, &dispatch))
    };
    connection.borrow_mut().retry = Some(timer);
}

/// Streams ticks from `url` into `dispatch` while `enabled`.
#[hook]
pub fn use_event_stream(enabled: bool, url: &'static str, dispatch: Callback<LiveAction>) {
    use_effect_with(enabled, move |enabled| {
        let connection = Rc::new(RefCell::new(Connection::default()));
        if *enabled {
            open(&connection, url, &dispatch);
        }
        move || {
            let mut state = connection.borrow_mut();
            state.closed = true;
            state.retry = None;
            state.close_source();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_pauses_grow_to_ten_seconds() {
        let delays: Vec<u32> = (1..=6).map(reconnect_delay_ms).collect();
        assert_eq!(delays, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
        assert_eq!(reconnect_delay_ms(u32::MAX), 10_000);
    }
}
