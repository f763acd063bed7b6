//! `GET /api/events`: Server-Sent Events, one `tick` (JSON `Tick`) every
//! ~250 ms. Each client has its own queue of 16 ticks; a client that falls
//! behind skips ticks and never slows the others.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt as _, stream};
use tokio_stream::wrappers::BroadcastStream;

use crate::error::ApiError;
use crate::state::AppState;

/// The stream: the latest tick at once, then every new one.
pub async fn events(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // Held by the stream: the slot frees when the client goes.
    let permit = Arc::clone(state.event_clients())
        .try_acquire_owned()
        .map_err(|_| super::busy("too many clients on the event stream; retry later"))?;
    let receiver = state.subscribe();
    let first = stream::iter(state.latest_tick());
    let rest = BroadcastStream::new(receiver).filter_map(|tick| async move {
        // Lagged: this client missed ticks; it gets the next ones.
        tick.ok()
    });
    // Ends when the server shuts down, so a graceful shutdown does not wait
    // for clients that would listen forever.
    let stream = first
        .chain(rest)
        .take_until(state.closing())
        .map(move |json: Arc<str>| {
            let _held = &permit;
            Ok(Event::default().event("tick").data(&*json))
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(10))))
}
