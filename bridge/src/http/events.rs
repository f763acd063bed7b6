//! `GET /api/events`: Server-Sent Events, one `tick` (JSON `Tick`) every
//! ~250 ms. Each client has a producer task that moves ticks from the
//! broadcast into a queue of its own ([`CLIENT_QUEUE_TICKS`]) feeding its
//! response: a client that reads slowly skips ticks and slows nobody, and one
//! whose queue stays full for [`STALL_TICKS`] ticks in a row is dropped, so
//! its slot frees. When every slot is taken, a newcomer takes the slot of the
//! client stalled longest; only when every client keeps up is it refused.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt as _, stream};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use crate::http::AppState;
use crate::http::error::ApiError;

/// Ticks queued for one client.
pub(crate) const CLIENT_QUEUE_TICKS: usize = 4;
/// Ticks in a row that find a client's queue full before it is dropped (2 s).
pub(crate) const STALL_TICKS: u32 = 8;

/// The stream: the latest tick at once, then every new one.
#[utoipa::path(get, path = "/events", tag = "cluster",
    responses(
        (status = 200, description = "Server-Sent Events: `event: tick`, data one JSON Tick, every ~250 ms", content_type = "text/event-stream", body = String),
        (status = 429, description = "busy: every slot taken by a client that keeps up", body = ecoshard_core::wire::ApiErrorBody)))]
pub(crate) async fn events(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (member, evicted) = state.event_clients().admit().ok_or_else(|| {
        super::busy("every event-stream slot is held by a client that keeps up; retry later")
    })?;
    let ticks = state.service().subscribe();
    let (queue, queued) = mpsc::channel(CLIENT_QUEUE_TICKS);
    // The response's copy frees the slot when the client goes; the
    // producer's when it drops a stalled client, whose response is not polled.
    let held = member.twin();
    tokio::spawn(produce(ticks, queue, member, evicted, state.closing()));
    let first = stream::iter(state.service().latest_tick());
    // Ends when the server shuts down, so a graceful shutdown does not wait
    // for clients that would listen forever.
    let stream = first
        .chain(ReceiverStream::new(queued))
        .take_until(state.closing())
        .map(move |json: Arc<str>| {
            let _held = &held;
            Ok(Event::default().event("tick").data(&*json))
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(10))))
}

/// Moves ticks into the client's queue until the client goes, stalls for
/// [`STALL_TICKS`] ticks, is evicted by a newcomer, or the server stops.
async fn produce(
    mut ticks: broadcast::Receiver<Arc<str>>,
    queue: mpsc::Sender<Arc<str>>,
    member: Member,
    mut evicted: oneshot::Receiver<()>,
    closing: impl std::future::Future<Output = ()>,
) {
    let mut closing = std::pin::pin!(closing);
    let mut full_ticks = 0u32;
    loop {
        let tick = tokio::select! {
            _ = &mut evicted => break,
            () = &mut closing => break,
            tick = ticks.recv() => tick,
        };
        match tick {
            Ok(json) => match queue.try_send(json) {
                Ok(()) => {
                    if full_ticks > 0 {
                        full_ticks = 0;
                        member.set_stalled(false);
                    }
                }
                Err(TrySendError::Full(_)) => {
                    full_ticks += 1;
                    if full_ticks == 1 {
                        member.set_stalled(true);
                    }
                    if full_ticks >= STALL_TICKS {
                        tracing::debug!("dropping an event-stream client that stopped reading");
                        break;
                    }
                }
                Err(TrySendError::Closed(_)) => break,
            },
            // This producer fell behind the broadcast: it gets the next ticks.
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => break,
        }
    }
}

/// The slots of the event stream: who holds one, and since when each
/// stalled client has been stalled.
#[derive(Clone, Debug)]
pub struct EventClients {
    registry: Arc<Mutex<Registry>>,
}

#[derive(Debug)]
struct Registry {
    limit: usize,
    next_id: u64,
    /// Grows with each stall that starts: a smaller stamp stalled earlier.
    next_stall: u64,
    clients: BTreeMap<u64, Client>,
}

#[derive(Debug)]
struct Client {
    stalled_since: Option<u64>,
    /// Dropped when the client loses its slot: its producer ends.
    _evict: oneshot::Sender<()>,
}

impl EventClients {
    /// `limit` slots, all free.
    pub(crate) fn new(limit: usize) -> Self {
        EventClients {
            registry: Arc::new(Mutex::new(Registry {
                limit,
                next_id: 0,
                next_stall: 0,
                clients: BTreeMap::new(),
            })),
        }
    }

    /// Clients holding a slot now.
    pub fn len(&self) -> usize {
        self.with(|registry| registry.clients.len())
    }

    /// Whether no client holds a slot.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A slot for a newcomer: a free one, else the one of the client stalled
    /// longest (evicted: its receiver completes); `None` when all keep up.
    fn admit(&self) -> Option<(Member, oneshot::Receiver<()>)> {
        self.with(|registry| {
            if registry.clients.len() >= registry.limit {
                let longest = registry
                    .clients
                    .iter()
                    .filter_map(|(id, client)| client.stalled_since.map(|since| (since, *id)))
                    .min()?;
                registry.clients.remove(&longest.1);
            }
            if registry.limit == 0 {
                return None;
            }
            let (evict, evicted) = oneshot::channel();
            let id = registry.next_id;
            registry.next_id += 1;
            registry.clients.insert(
                id,
                Client {
                    stalled_since: None,
                    _evict: evict,
                },
            );
            let member = Member {
                clients: self.clone(),
                id,
            };
            Some((member, evicted))
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        let mut registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut registry)
    }
}

/// A client's hold on its slot; dropping it frees the slot.
#[derive(Debug)]
struct Member {
    clients: EventClients,
    id: u64,
}

impl Member {
    /// A second hold on the same slot: the slot frees when either is dropped.
    fn twin(&self) -> Member {
        Member {
            clients: self.clients.clone(),
            id: self.id,
        }
    }

    fn set_stalled(&self, stalled: bool) {
        self.clients.with(|registry| {
            let stamp = registry.next_stall;
            if let Some(client) = registry.clients.get_mut(&self.id) {
                client.stalled_since = stalled.then_some(stamp);
                registry.next_stall += u64::from(stalled);
            }
        });
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.clients
            .with(|registry| registry.clients.remove(&self.id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `limit` slots held by clients of which those in `stalls` stalled, in
    /// that order; a newcomer evicts the client `evicted` (index), or is refused.
    fn check(limit: usize, held: usize, stalls: &[usize], expected: Option<Option<usize>>) {
        let clients = EventClients::new(limit);
        let mut members: Vec<_> = (0..held).map(|_| clients.admit().unwrap()).collect();
        for &index in stalls {
            members[index].0.set_stalled(true);
        }
        let newcomer = clients.admit();
        let evicted: Vec<usize> = members
            .iter_mut()
            .enumerate()
            .filter_map(|(index, (_, evicted))| {
                let closed = evicted.try_recv() == Err(oneshot::error::TryRecvError::Closed);
                closed.then_some(index)
            })
            .collect();
        let got = newcomer.map(|_| evicted.first().copied());
        assert_eq!(
            got, expected,
            "limit {limit}, held {held}, stalls {stalls:?}"
        );
        assert!(evicted.len() <= 1);
    }

    #[test]
    fn newcomers_take_a_free_slot_or_the_longest_stalled_one() {
        check(3, 0, &[], Some(None));
        check(3, 2, &[0, 1], Some(None));
        check(3, 3, &[], None);
        check(3, 3, &[2], Some(Some(2)));
        check(3, 3, &[1, 0], Some(Some(1)));
        check(3, 3, &[0, 2, 1], Some(Some(0)));
        check(0, 0, &[], None);
    }

    #[test]
    fn a_client_that_reads_again_is_no_longer_stalled_and_a_drop_frees_its_slot() {
        let clients = EventClients::new(2);
        let (first, _first_evicted) = clients.admit().unwrap();
        let (second, _second_evicted) = clients.admit().unwrap();
        first.set_stalled(true);
        first.set_stalled(false);
        assert!(clients.admit().is_none());
        let twin = second.twin();
        drop(second);
        assert_eq!(clients.len(), 1);
        drop(twin);
        let third = clients.admit();
        assert!(third.is_some());
        assert_eq!(clients.len(), 2);
    }
}
