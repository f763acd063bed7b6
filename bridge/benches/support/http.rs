//! The benches' HTTP/1.1 client: one keep-alive connection per load
//! generator's client, a request at a time, status and body back.

use axum::body::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;

/// A connection's sending half.
pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A connection to `addr`, without Nagle's delay.
pub async fn http_connect(addr: &str) -> Result<Sender, Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One request on `sender`, a JSON body if given: status and body.
pub async fn http(
    sender: &mut Sender,
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<(u16, Bytes), Box<dyn std::error::Error + Send + Sync>> {
    sender.ready().await?;
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}
