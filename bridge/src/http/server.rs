//! Serving the app on a socket until a shutdown signal: an accept loop over
//! hyper's HTTP/1 connections, so that no connection is held without a
//! deadline (a request head, then its body, must each arrive within
//! [`ServerOptions::read_timeout`]; a connection that moves no byte for
//! [`ServerOptions::idle_timeout`] while no request runs is closed) and their
//! number is capped.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::Request;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::http::AppState;

/// Longest a graceful shutdown waits for requests in flight.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Header fields hyper parses before answering an empty 431 itself: above
/// the bridge's own limit (100, in `api/guard.rs`), which answers in JSON.
pub(crate) const HYPER_MAX_HEADERS: usize = 256;
/// Largest request head hyper buffers before answering an empty 431 itself:
/// above the bridge's own limits (8 KiB of target, 32 KiB of headers).
pub(crate) const HYPER_MAX_HEAD_BYTES: usize = 256 * 1024;

/// Deadlines and limits of the connections.
#[derive(Clone, Copy, Debug)]
pub struct ServerOptions {
    /// A request's head must arrive within this from the moment the
    /// connection waits for it (also between requests on a kept-alive
    /// connection), and then its body within this again; else the connection
    /// is closed (head) or the request answered 408 (body).
    pub read_timeout: Duration,
    /// A connection on which no byte moves for this long while no request
    /// is being handled is closed (e.g. a client that stopped reading).
    pub idle_timeout: Duration,
    /// Connections open at once; more are closed at once, after a
    /// best-effort 503.
    pub max_connections: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// [`serve_with`] with the default [`ServerOptions`].
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, ServerOptions::default(), shutdown).await
}

/// Serves [`super::app`] on `listener` until `shutdown` completes; requests
/// in flight get up to [`SHUTDOWN_GRACE`] to finish, event streams end at once.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = super::app(state.clone());
    let http = http_builder(&options);
    let slots = u32::try_from(options.max_connections.max(1)).unwrap_or(u32::MAX);
    let connections = Arc::new(Semaphore::new(slots as usize));
    let (stopping, stop) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&connections).try_acquire_owned() else {
            refuse(&stream);
            continue;
        };
        // Small responses and stream events go out at once, not after Nagle's delay.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {error}");
        }
        let connection = Connection {
            app: app.clone(),
            options,
            stop: stop.clone(),
            _slot: slot,
        };
        tokio::spawn(connection.run(stream, http.clone()));
    }
    drop(listener);
    state.close_streams();
    let _ = stopping.send(true);
    // Every connection holds a slot until it ends.
    if tokio::time::timeout(SHUTDOWN_GRACE, connections.acquire_many(slots))
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still running {SHUTDOWN_GRACE:?} after shutdown began: stopping anyway"
        );
    }
    Ok(())
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

fn http_builder(options: &ServerOptions) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.read_timeout)
        .max_headers(HYPER_MAX_HEADERS)
        .max_buf_size(HYPER_MAX_HEAD_BYTES);
    http
}

/// A failed `accept`: a connection that went before it was taken is
/// nothing; anything else (out of file descriptors) waits a little.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::warn!("accepting a connection: {error}");
    tokio::time::sleep(Duration::from_millis(250)).await;
}

/// Over the connection cap: a 503 if the socket takes it at once, then closed.
fn refuse(stream: &TcpStream) {
    let body = r#"{"error":{"code":"too_many_connections","message":"the bridge has as many connections open as it takes (--max-connections); retry shortly"}}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(response.as_bytes());
    tracing::debug!("refused a connection over the cap");
}

/// One accepted connection and what it needs.
struct Connection {
    app: Router,
    options: ServerOptions,
    stop: watch::Receiver<bool>,
    /// Held until the connection ends.
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(mut self, stream: TcpStream, http: http1::Builder) {
        let activity = Activity::new();
        let io = TokioIo::new(Tracked {
            stream,
            activity: activity.clone(),
        });
        let (app, read_timeout) = (self.app.clone(), self.options.read_timeout);
        let requests = activity.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let running = requests.request_started();
            let deadline = Instant::now() + read_timeout;
            let request = request.map(|body| Body::new(DeadlineBody::new(body, deadline)));
            let call = tower::ServiceExt::oneshot(app.clone(), request);
            async move {
                let response = call.await;
                drop(running);
                Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
            }
        });
        let connection = http.serve_connection(io, service);
        let mut connection = std::pin::pin!(connection);
        let mut draining = false;
        loop {
            tokio::select! {
                outcome = connection.as_mut() => {
                    if let Err(error) = outcome {
                        tracing::debug!("connection ended: {error}");
                    }
                    return;
                }
                () = activity.idle_for(self.options.idle_timeout) => {
                    tracing::debug!("closing a connection idle for {:?}", self.options.idle_timeout);
                    return;
                }
                _ = self.stop.wait_for(|stopping| *stopping), if !draining => {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// When a connection last moved a byte, and how many of its requests run.
#[derive(Clone, Debug)]
struct Activity(Arc<ActivityState>);

#[derive(Debug)]
struct ActivityState {
    start: Instant,
    /// ms from `start` to the last byte read or written.
    last_ms: AtomicU64,
    running: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity(Arc::new(ActivityState {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            running: AtomicUsize::new(0),
        }))
    }

    fn touch(&self) {
        let now = u64::try_from(self.0.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_ms.fetch_max(now, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.0.last_ms.load(Ordering::Relaxed));
        self.0.start.elapsed().saturating_sub(last)
    }

    fn request_started(&self) -> RequestRunning {
        self.0.running.fetch_add(1, Ordering::Relaxed);
        RequestRunning(self.clone())
    }

    /// Completes once no byte moved for `limit` while no request ran.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let quiet = self.quiet_for();
            let running = self.0.running.load(Ordering::Relaxed) > 0;
            if quiet >= limit && !running {
                return;
            }
            let wait = if running { limit } else { limit - quiet };
            tokio::time::sleep(wait).await;
        }
    }
}

/// A request being handled; its end counts as activity.
struct RequestRunning(Activity);

impl Drop for RequestRunning {
    fn drop(&mut self) {
        self.0.touch();
        self.0.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The socket, noting each byte that moves.
struct Tracked {
    stream: TcpStream,
    activity: Activity,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.touch();
        }
        poll
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.note_written(&poll);
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.note_written(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl Tracked {
    fn note_written(&self, poll: &Poll<std::io::Result<usize>>) {
        if matches!(poll, Poll::Ready(Ok(written)) if *written > 0) {
            self.activity.touch();
        }
    }
}

/// The body did not arrive by its deadline; the API answers 408.
#[derive(Debug)]
pub(crate) struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimedOut {}

/// A request body that fails with [`BodyTimedOut`] when it is not complete by
/// its deadline (a timer is set only if the body is waited for).
struct DeadlineBody {
    body: Incoming,
    deadline: Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl DeadlineBody {
    fn new(body: Incoming, deadline: Instant) -> Self {
        DeadlineBody {
            body,
            deadline,
            timer: None,
        }
    }
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
