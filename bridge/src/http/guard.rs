//! The edge rules, checked on every request (page and API) before anything
//! else: a request head within the documented sizes, a `Host` the bridge
//! serves (no DNS rebinding), state-changing requests only from the bridge's
//! own page or from clients that are not browsers (no cross-site requests),
//! and the bearer token when the bridge has one.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use crate::http::AppState;
use crate::http::error::ApiError;

/// Longest request target (path and query) answered, in bytes; longer: 414.
/// (The server lets hyper take longer ones, so that this answer is JSON.)
pub(crate) const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header bytes (names, values and their separators) answered; more: 431.
pub(crate) const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most header fields answered; more: 431.
pub(crate) const MAX_HEADERS: usize = 100;

/// Who may talk to the bridge: the host names it serves beyond `localhost`
/// and IP literals, and the token state-changing requests need, if any.
#[derive(Clone, Debug, Default)]
pub(crate) struct EdgeRules {
    allowed_hosts: Vec<String>,
    token: Option<Token>,
}

impl EdgeRules {
    /// Rules over these extra host names (`--allowed-host`) and this token.
    pub(crate) fn new(allowed_hosts: &[String], token: Option<Token>) -> Self {
        EdgeRules {
            allowed_hosts: allowed_hosts
                .iter()
                .map(|name| normalise_host(name))
                .collect(),
            token,
        }
    }

    /// Whether the request may go on; the error to answer when not.
    pub(crate) fn check(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<(), ApiError> {
        check_sizes(uri, headers)?;
        self.check_host(uri, headers)?;
        if method == Method::GET || method == Method::HEAD {
            return Ok(());
        }
        check_origin(headers)?;
        match &self.token {
            Some(token) if !presents(token, headers) => Err(unauthorized()),
            _ => Ok(()),
        }
    }

    /// `Host` (and the authority of an absolute request target) must name
    /// `localhost`, an IP literal or an allowed host; no `Host` is allowed.
    fn check_host(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
        let mut hosts = headers.get_all(header::HOST).iter();
        let host = hosts.next();
        if hosts.next().is_some() {
            return Err(misdirected("send one Host header"));
        }
        let named = host
            .map(|value| value.to_str().ok().and_then(host_name))
            .into_iter()
            .chain(
                uri.authority()
                    .map(|authority| host_name(authority.as_str())),
            );
        for name in named {
            match name {
                Some(name) if self.serves(&name) => {}
                Some(name) => {
                    return Err(misdirected(&format!(
                        "this bridge does not serve the host name {:?}: open it by its IP \
                         address or localhost, or start it with --allowed-host {} \
                         (ECOSHARD_ALLOWED_HOSTS)",
                        short(&name),
                        short(&name)
                    )));
                }
                None => return Err(misdirected("the Host header is not a host name")),
            }
        }
        Ok(())
    }

    fn serves(&self, name: &str) -> bool {
        name == "localhost" || is_ip_literal(name) || self.allowed_hosts.iter().any(|h| h == name)
    }
}

/// The middleware: [`EdgeRules::check`] with the rules of the bridge.
pub(crate) async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match state
        .rules()
        .check(request.method(), request.uri(), request.headers())
    {
        Ok(()) => next.run(request).await,
        Err(error) => {
            let unauthorized = error.status == StatusCode::UNAUTHORIZED;
            let mut response = error.into_response();
            if unauthorized {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
    }
}

/// The secret state-changing requests must carry as `Authorization: Bearer`.
/// Its `Debug` never shows it.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// Shortest token taken from `--token`.
pub(crate) const MIN_TOKEN_CHARS: usize = 16;

impl Token {
    /// A token given by the user: 16 to 256 characters of `A-Z a-z 0-9 - . _ ~ + /`
    /// (what an `Authorization: Bearer` header carries as it is).
    pub fn parse(text: &str) -> Result<Token, String> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~+/".contains(c);
        if !(MIN_TOKEN_CHARS..=256).contains(&text.len()) || !text.chars().all(allowed) {
            return Err(format!(
                "a token is {MIN_TOKEN_CHARS} to 256 of A-Z a-z 0-9 - . _ ~ + / \
                 (leave --token out to have one generated)"
            ));
        }
        Ok(Token(text.into()))
    }

    /// 32 random bytes from the system's generator, hex-encoded.
    pub fn generate() -> std::io::Result<Token> {
        use std::io::Read as _;
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        Ok(Token(hex.into()))
    }

    /// The token itself, for the one URL printed at start.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is the token, comparing every byte whatever differs.
    fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        expected.len() == presented.len()
            && expected
                .iter()
                .zip(presented)
                .fold(0u8, |differs, (a, b)| differs | (a ^ b))
                == 0
    }
}

fn presents(token: &Token, headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    let scheme = b"bearer ";
    value.len() > scheme.len()
        && value[..scheme.len()].eq_ignore_ascii_case(scheme)
        && token.matches(value[scheme.len()..].trim_ascii())
}

/// A browser sends `Origin` on every cross-origin request and on same-origin
/// ones that are not GET/HEAD; it cannot send `Content-Type: application/json`
/// cross-site without a preflight, which this refuses as well.
fn check_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Err(cross_origin());
    }
    let mut origins = headers.get_all(header::ORIGIN).iter();
    match (origins.next(), origins.next()) {
        (Some(origin), None) => {
            let host = headers.get(header::HOST).map(HeaderValue::as_bytes);
            let same = host.is_some_and(|host| {
                ["http://", "https://"].iter().any(|scheme| {
                    let origin = origin.as_bytes();
                    origin.len() == scheme.len() + host.len()
                        && origin.starts_with(scheme.as_bytes())
                        && origin[scheme.len()..].eq_ignore_ascii_case(host)
                })
            });
            if same { Ok(()) } else { Err(cross_origin()) }
        }
        (None, _) if is_json(headers) => Ok(()),
        _ => Err(cross_origin()),
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

fn check_sizes(uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
    let target = uri
        .path_and_query()
        .map_or(0, |target| target.as_str().len())
        + uri
            .authority()
            .map_or(0, |authority| authority.as_str().len());
    if target > MAX_URI_BYTES {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request target is over {MAX_URI_BYTES} bytes"),
        ));
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the request has more than {MAX_HEADERS} header fields or over \
                 {MAX_HEADER_BYTES} bytes of them"
            ),
        ));
    }
    Ok(())
}

/// The host name of a `Host` value or an authority, without its port,
/// lowercase, without a final dot; `None` when it is not one.
fn host_name(value: &str) -> Option<String> {
    if value.contains('@') {
        return None;
    }
    let authority: Authority = value.parse().ok()?;
    let host = authority.host();
    (!host.is_empty()).then(|| normalise_host(host))
}

fn normalise_host(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// An IP address written as such (`127.0.0.1`, `[::1]`): a page whose origin
/// is an IP literal really is served from that address, so it cannot be a
/// name an attacker re-pointed.
fn is_ip_literal(host: &str) -> bool {
    match host
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    {
        Some(v6) => v6.parse::<Ipv6Addr>().is_ok(),
        None => host.parse::<IpAddr>().is_ok(),
    }
}

fn misdirected(message: &str) -> ApiError {
    ApiError::new(StatusCode::MISDIRECTED_REQUEST, "misdirected_host", message)
}

fn cross_origin() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "cross_origin",
        "changes are taken only from the bridge's own page (an Origin equal to \
         http://<the Host header>) or, from programs, without an Origin header and \
         with Content-Type: application/json (an empty body is fine)",
    )
}

fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this bridge takes changes only with its token: send Authorization: Bearer TOKEN \
         (open the page by the URL with #token=… the bridge printed; ecoshard apply \
         --token or ECOSHARD_TOKEN)",
    )
}

fn short(text: &str) -> String {
    text.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123";

    /// `headers` as `name: value` lines; the answer's status, 200 when allowed.
    fn answer(rules: &EdgeRules, method: &str, uri: &str, headers: &[(&str, &str)]) -> u16 {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        match rules.check(&method, &uri.parse().unwrap(), &map) {
            Ok(()) => 200,
            Err(error) => error.status.as_u16(),
        }
    }

    fn check(method: &str, headers: &[(&str, &str)], expected: u16) {
        let rules = EdgeRules::new(&["Bridge.Example".to_string()], None);
        let got = answer(&rules, method, "/api/nodes/x/stop", headers);
        assert_eq!(got, expected, "{method} {headers:?}");
    }

    #[test]
    fn hosts_and_origins() {
        const JSON: (&str, &str) = ("content-type", "application/json");
        check("GET", &[], 200);
        check("GET", &[("host", "127.0.0.1:8080")], 200);
        check("GET", &[("host", "[::1]:8080")], 200);
        check("GET", &[("host", "LOCALHOST")], 200);
        check("GET", &[("host", "bridge.example.:80")], 200);
        check("GET", &[("host", "attacker.example")], 421);
        check("GET", &[("host", "localhost.attacker.example")], 421);
        check("GET", &[("host", "127.0.0.1"), ("host", "127.0.0.1")], 421);
        check("GET", &[("host", "user@127.0.0.1")], 421);
        check("GET", &[("host", "[::1")], 421);
        check("POST", &[], 403);
        check("POST", &[JSON], 200);
        check(
            "POST",
            &[("content-type", "Application/JSON; charset=utf-8")],
            200,
        );
        check("POST", &[("content-type", "text/plain")], 403);
        check(
            "POST",
            &[("content-type", "application/x-www-form-urlencoded")],
            403,
        );
        check("POST", &[("content-type", "application/jsonx")], 403);
        check("OPTIONS", &[JSON, ("sec-fetch-site", "cross-site")], 403);
        check("PUT", &[JSON, ("origin", "http://evil.example")], 403);
        check("PUT", &[JSON, ("origin", "null")], 403);
        check("PUT", &[("origin", "http://localhost:8080")], 403);
        let same = [
            ("host", "localhost:8080"),
            ("origin", "http://localhost:8080"),
        ];
        check("PUT", &same, 200);
        check(
            "DELETE",
            &[same[0], ("origin", "https://localhost:8080")],
            200,
        );
        check("PUT", &[same[0], ("origin", "http://localhost:9090")], 403);
        check("PUT", &[same[0], same[1], same[1]], 403);
        check(
            "POST",
            &[same[0], same[1], ("sec-fetch-site", "cross-site")],
            403,
        );
        check(
            "POST",
            &[same[0], same[1], ("sec-fetch-site", "same-origin")],
            200,
        );
    }

    #[test]
    fn the_token_guards_changes_only() {
        let rules = EdgeRules::new(&[], Some(Token::parse(TOKEN).unwrap()));
        let json = ("content-type", "application/json");
        let check = |method: &str, authorization: Option<&str>, expected: u16| {
            let mut headers = vec![json];
            headers.extend(authorization.map(|value| ("authorization", value)));
            let got = answer(&rules, method, "/api/layout", &headers);
            assert_eq!(got, expected, "{method} {authorization:?}");
        };
        check("GET", None, 200);
        check("HEAD", None, 200);
        check("PUT", None, 401);
        check("PUT", Some(&format!("Bearer {TOKEN}")), 200);
        check("PUT", Some(&format!("bearer  {TOKEN} ")), 200);
        check("PUT", Some(&format!("Basic {TOKEN}")), 401);
        check("PUT", Some(&format!("Bearer {TOKEN}0")), 401);
        check("PUT", Some(&format!("Bearer {}", &TOKEN[1..])), 401);
        check("PUT", Some("Bearer "), 401);
        assert_eq!(format!("{rules:?}").matches(TOKEN).count(), 0);
    }

    #[test]
    fn sizes() {
        let rules = EdgeRules::default();
        let long = format!("/api/users/{}", "a".repeat(MAX_URI_BYTES));
        assert_eq!(answer(&rules, "GET", &long, &[]), 414);
        let fits = format!("/{}", "a".repeat(MAX_URI_BYTES - 1));
        assert_eq!(answer(&rules, "GET", &fits, &[]), 200);
        let big = "v".repeat(MAX_HEADER_BYTES);
        assert_eq!(answer(&rules, "GET", "/", &[("x-big", &big)]), 431);
        let many: Vec<(String, &str)> =
            (0..=MAX_HEADERS).map(|i| (format!("x-{i}"), "1")).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        assert_eq!(answer(&rules, "GET", "/", &many), 431);
        assert_eq!(answer(&rules, "GET", "/", &many[1..]), 200);
    }

    #[test]
    fn tokens() {
        assert!(Token::parse("short").is_err());
        assert!(Token::parse(&"a b".repeat(8)).is_err());
        assert!(Token::parse(&"é".repeat(16)).is_err());
        assert!(Token::parse(&"a".repeat(257)).is_err());
        assert!(Token::parse(TOKEN).is_ok());
        let generated = Token::generate().unwrap();
        assert_eq!(generated.reveal().len(), 64);
        assert!(generated.reveal().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(generated.reveal(), Token::generate().unwrap().reveal());
    }
}
