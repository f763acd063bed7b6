//! Talking to a running bridge from the command line (`apply`, `status`,
//! `job`, `load`): one plain HTTP/1.1 request per connection, each bounded in time,
//! its answer parsed into the core's wire types; the bridge's JSON errors
//! turned into one line and an exit code; printing what came back.

use std::io::Write as _;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, Request, Response, StatusCode, Uri, header};
use ecoshard_core::wire::{ApiErrorBody, Tick};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;

use super::Exit;

/// Longest one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);
/// Largest first event of `/api/events` read (a tick of 256 shards is ~20 KiB).
const MAX_TICK_BYTES: usize = 1024 * 1024;

/// Where the bridge is.
#[derive(Debug)]
pub(super) struct Bridge {
    host: String,
    port: u16,
    authority: String,
    base: String,
    token: Option<String>,
    timeout: Duration,
}

impl Bridge {
    /// `--url`: `http://HOST:PORT[/base]`; anything else is a usage error.
    pub(super) fn parse(url: &str) -> Result<Self, Exit> {
        let bad = |why: &str| Exit::usage(format!("--url {url:?}: {why}"));
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("use http://HOST:PORT (the bridge speaks plain HTTP)"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        Ok(Bridge {
            host: host.to_string(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.to_string(),
            base: uri.path().trim_end_matches('/').to_string(),
            token: None,
            timeout: REQUEST_TIMEOUT,
        })
    }

    /// Sends `Authorization: Bearer token` with every request.
    pub(super) fn with_token(self, token: Option<String>) -> Self {
        Bridge { token, ..self }
    }

    /// Waits up to `timeout` for each answer (default 90 s).
    pub(super) fn with_timeout(self, timeout: Duration) -> Self {
        Bridge { timeout, ..self }
    }

    /// One request on its own connection: status and body.
    pub(super) async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, Bytes), String> {
        let url = self.url(path);
        let exchange = async {
            let response = self.send(method, path, body).await?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|error| format!("{url}: {error}"))?
                .to_bytes();
            Ok((status, bytes))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("{url}: no answer within {} s", self.timeout.as_secs()))?
    }

    /// `GET path`, 200 parsed as `T`; another status is [`refused`].
    pub(super) async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Exit> {
        match self.request(Method::GET, path, None).await {
            Ok((StatusCode::OK, bytes)) => parse(&bytes),
            Ok((status, bytes)) => Err(refused(status, &bytes)),
            Err(why) => Err(Exit::runtime(why)),
        }
    }

    /// A tick of `GET /api/events` made after this call: the second one, as
    /// the first is the latest the bridge had (up to 250 ms old, so it may
    /// not show a job started a moment ago). The stream is dropped after it.
    pub(super) async fn tick(&self) -> Result<Tick, Exit> {
        let url = self.url("/api/events");
        let exchange = async {
            let response = self
                .send(Method::GET, "/api/events", None)
                .await
                .map_err(Exit::runtime)?;
            let status = response.status();
            let mut body = response.into_body();
            if status != StatusCode::OK {
                let bytes = body.collect().await.map(|all| all.to_bytes());
                return Err(refused(status, &bytes.unwrap_or_default()));
            }
            let mut received = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|error| Exit::runtime(format!("{url}: {error}")))?;
                if let Ok(data) = frame.into_data() {
                    received.extend_from_slice(&data);
                }
                if let Some(data) = tick_events(&received).into_iter().nth(1) {
                    return parse(data.as_bytes());
                }
                if received.len() > MAX_TICK_BYTES {
                    break;
                }
            }
            Err(Exit::runtime(format!("{url}: no tick in the event stream")))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                Exit::runtime(format!(
                    "{url}: no tick within {} s",
                    REQUEST_TIMEOUT.as_secs()
                ))
            })?
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}{path}", self.authority, self.base)
    }

    /// Connects, sends one request and answers the response, its body unread.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Response<Incoming>, String> {
        let url = self.url(path);
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|error| format!("cannot reach the bridge at {url}: {error}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|error| format!("{url}: {error}"))?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(header::HOST, &self.authority);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|error| format!("{url}: {error}"))?;
        sender
            .send_request(request)
            .await
            .map_err(|error| format!("{url}: {error}"))
    }
}

/// The data of each complete `tick` event in what an event stream has sent
/// so far (its `data:` lines joined), skipping comments and other events.
fn tick_events(received: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(received).replace("\r\n", "\n");
    let Some(end) = text.rfind("\n\n") else {
        return Vec::new();
    };
    text[..end]
        .split("\n\n")
        .filter_map(|event| {
            let mut name = "message";
            let mut data: Vec<&str> = Vec::new();
            for line in event.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim_start();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value));
                }
            }
            (name == "tick" && !data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

/// The runtime a command that talks to the bridge runs on (one thread).
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, Exit> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| Exit::runtime(format!("starting the runtime: {error}")))
}

/// A 4xx (other than 409 and 429) is the input's fault: exit code 2.
pub(super) fn refused(status: StatusCode, bytes: &[u8]) -> Exit {
    let message = match serde_json::from_slice::<ApiErrorBody>(bytes) {
        Ok(body) => format!("{} ({})", body.error.message, body.error.code),
        Err(_) => format!("the bridge answered {status}"),
    };
    if status.is_client_error()
        && status != StatusCode::CONFLICT
        && status != StatusCode::TOO_MANY_REQUESTS
    {
        Exit::usage(message)
    } else {
        Exit::runtime(message)
    }
}

/// An answer of the bridge as `T`.
pub(super) fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Exit> {
    serde_json::from_slice(bytes)
        .map_err(|error| Exit::runtime(format!("unexpected answer from the bridge: {error}")))
}

/// Pretty JSON and a newline, for `--format json`.
pub(super) fn json_text(value: &impl serde::Serialize) -> Result<String, Exit> {
    let mut json = serde_json::to_string_pretty(value).map_err(Exit::runtime)?;
    json.push('\n');
    Ok(json)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
pub(super) fn write_stdout(text: &str) -> Result<(), Exit> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Exit::runtime(format!("cannot write to stdout: {error}")))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let bridge = Bridge::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((bridge.host.as_str(), bridge.port), ("127.0.0.1", 8080));
        assert_eq!(Bridge::parse("http://[::1]:9/x/").unwrap().base, "/x");
        for bad in [
            "https://127.0.0.1:8080",
            "127.0.0.1:8080",
            "http://",
            "not a url",
        ] {
            let failure = Bridge::parse(bad).unwrap_err();
            assert_eq!(failure.code, super::super::EXIT_USAGE, "{bad}");
        }
    }

    #[test]
    fn the_ticks_of_an_event_stream() {
        fn check(received: &str, expected: &[&str]) {
            assert_eq!(tick_events(received.as_bytes()), expected, "{received:?}");
        }
        check("event: tick\ndata: {\"a\":1}\n\n", &["{\"a\":1}"]);
        check("event: tick\r\ndata:{}\r\n\r\n", &["{}"]);
        check(
            ":keep-alive\n\nevent: tick\ndata: 1\ndata: 2\n\n",
            &["1\n2"],
        );
        check("event: other\ndata: x\n\nevent: tick\ndata: y\n\n", &["y"]);
        check(
            "event: tick\ndata: 1\n\nevent: tick\ndata: 2\n\nevent: tick\ndata: 3",
            &["1", "2"],
        );
        check("event: tick\ndata: {\"a\":", &[]);
        check("event: tick\ndata: {}\n", &[]);
        check("", &[]);
    }
}
