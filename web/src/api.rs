//! Talking to the bridge: one async function per endpoint of DESIGN.md's
//! HTTP API, over the wire types in `ecoshard_core::wire`, the wording of
//! every failure as a sentence for people (never a blank page or a raw error),
//! and the bridge's token: taken once from the URL the bridge printed
//! (`#token=…`), kept for the tab, sent with every change.

use crate::json::Read;
use ecoshard_core::Layout;
use ecoshard_core::wire::{
    ApiErrorBody, BulkInsert, BulkResult, ClusterView, Consistency, GenerateResult, GenerateUsers,
    Health, InsertResult, LayoutView, NewUser, NodeAction, ReadResult, RebalanceJob, UserSample,
};
use serde::Serialize;

use crate::live::NodeRequest;

/// A request to the bridge that did not give the expected answer.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// HTTP status, `None` when no answer came at all.
    pub status: Option<u16>,
    /// The bridge's error code (`primary_unavailable`, …), or one of ours
    /// (`unreachable`, `bad_answer`).
    pub code: String,
    /// One sentence for people.
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ApiError {
    /// No answer at all (network error, bridge not running).
    pub fn unreachable(detail: &str) -> ApiError {
        ApiError {
            status: None,
            code: "unreachable".to_string(),
            message: format!("The bridge did not answer ({detail}). Is `ecoshard serve` running?"),
        }
    }

    /// Reads a failed answer: the bridge's JSON error when there is one, else
    /// a sentence from the status.
    pub fn from_answer(status: u16, status_text: &str, body: &str) -> ApiError {
        if let Ok(parsed) = crate::json::from_str::<ApiErrorBody>(body) {
            return ApiError {
                status: Some(status),
                code: parsed.error.code,
                message: parsed.error.message,
            };
        }
        let message = match status {
            404 => {
                "The bridge does not know this request (404): is it an older version?".to_string()
            }
            413 => "The request was too large for the bridge (413).".to_string(),
            429 => "The bridge is rate-limiting: wait a moment and try again (429).".to_string(),
            502..=504 => {
                format!("The bridge could not reach the database in time ({status} {status_text}).")
            }
            _ => {
                let text = body.trim();
                if text.is_empty() || text.starts_with('<') {
                    format!("The bridge answered {status} {status_text} without an explanation.")
                } else {
                    let short: String = text.chars().take(200).collect();
                    format!("The bridge answered {status} {status_text}: {short}")
                }
            }
        };
        ApiError {
            status: Some(status),
            code: format!("http_{status}"),
            message,
        }
    }

    /// A 2xx answer whose body is not what was expected.
    pub fn bad_answer(what: &str, detail: &str) -> ApiError {
        ApiError {
            status: None,
            code: "bad_answer".to_string(),
            message: format!("The bridge's answer to {what} could not be read: {detail}."),
        }
    }
}

/// The query string of a read.
pub fn read_path(user_id: &str, consistency: Consistency) -> String {
    format!(
        "/api/users/{}?consistency={}",
        percent_encode(user_id),
        consistency.name()
    )
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `GET /api/health`.
pub async fn health() -> Result<Health, ApiError> {
    get("/api/health", "the health check").await
}

/// `GET /api/cluster`.
pub async fn cluster() -> Result<ClusterView, ApiError> {
    get("/api/cluster", "the cluster request").await
}

/// `POST /api/users`.
pub async fn insert_user(user: &NewUser) -> Result<InsertResult, ApiError> {
    send("POST", "/api/users", Some(user), "the insert").await
}

/// `POST /api/users/bulk`: `count` users named `<prefix>0` … (a fresh prefix
/// when `None`).
pub async fn insert_bulk(count: u64, prefix: Option<String>) -> Result<BulkResult, ApiError> {
    let body = BulkInsert { count, prefix };
    send("POST", "/api/users/bulk", Some(&body), "the bulk insert").await
}

/// `POST /api/users/generate`: a data set of `count` users written with
/// `COPY` under a fresh prefix.
pub async fn generate_users(count: u64) -> Result<GenerateResult, ApiError> {
    let body = GenerateUsers {
        count,
        prefix: None,
    };
    send("POST", "/api/users/generate", Some(&body), "the data set").await
}

/// `GET /api/users/{id}?consistency=…`.
pub async fn read_user(user_id: &str, consistency: Consistency) -> Result<ReadResult, ApiError> {
    get(&read_path(user_id, consistency), "the read").await
}

/// `GET /api/layout`.
pub async fn layout() -> Result<LayoutView, ApiError> {
    get("/api/layout", "the layout request").await
}

/// `GET /api/sample?count=N`: ids drawn from every shard.
pub async fn sample(count: u64) -> Result<UserSample, ApiError> {
    get(&format!("/api/sample?count={count}"), "the sample of keys").await
}

/// What the bridge did with a layout sent by [`apply_layout`].
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    /// 202: a job started (its plan may come later, from [`rebalance`]).
    Started(RebalanceJob),
    /// 200: the layout is the one in force; nothing was stored or moved.
    InForce(LayoutView),
}

impl Applied {
    /// Reads a 2xx answer to `PUT /api/layout` by its status.
    pub fn from_answer(status: u16, body: &str) -> Result<Applied, ApiError> {
        let bad =
            |error: crate::json::Error| ApiError::bad_answer("the new layout", &error.to_string());
        if status == 200 {
            crate::json::from_str(body)
                .map(Applied::InForce)
                .map_err(bad)
        } else {
            crate::json::from_str(body)
                .map(Applied::Started)
                .map_err(bad)
        }
    }
}

/// `PUT /api/layout`: starts moving rows to the layout; answers the job, or
/// the layout in force when it is that one.
pub async fn apply_layout(layout: &Layout) -> Result<Applied, ApiError> {
    let (status, text) = send_raw("PUT", "/api/layout", Some(encode(layout)?)).await?;
    Applied::from_answer(status, &text)
}

/// `GET /api/rebalance/{id}`.
pub async fn rebalance(id: u64) -> Result<RebalanceJob, ApiError> {
    get(&format!("/api/rebalance/{id}"), "the progress request").await
}

/// `POST /api/nodes/{name}/stop?mode=…` or `…/start`; for a node of
/// another cluster than the first (`c2/standby-1`, see
/// [`crate::live::Live::node_key`]) `POST /api/clusters/c2/nodes/standby-1/…`.
/// The answer names the node as it was asked for (see [`qualified_action`]).
pub async fn node_action(name: &str, request: NodeRequest) -> Result<NodeAction, ApiError> {
    let path = node_action_path(name, request);
    let action = send("POST", &path, None::<&()>, "the node action").await?;
    Ok(qualified_action(name, action))
}

/// The path of a stop or start of `name` (`standby-1`, or `c2/standby-1`).
pub fn node_action_path(name: &str, request: NodeRequest) -> String {
    let node = match name.split_once('/') {
        Some((cluster, node)) => format!(
            "/api/clusters/{}/nodes/{}",
            percent_encode(cluster),
            percent_encode(node)
        ),
        None => format!("/api/nodes/{}", percent_encode(name)),
    };
    match request {
        NodeRequest::Stop(mode) => format!("{node}/stop?mode={}", mode.name()),
        NodeRequest::Start => format!("{node}/start"),
    }
}

/// The bridge's answer about a node, naming it as the page asked for it:
/// `c2/standby-1` and "c2: stopped standby-1 …" for another cluster's node
/// (the bridge names nodes within their cluster); unchanged otherwise.
pub fn qualified_action(name: &str, mut action: NodeAction) -> NodeAction {
    if let Some((cluster, _)) = name.split_once('/') {
        action.node = name.to_string();
        action.message = format!("{cluster}: {}", action.message);
    }
    action
}

/// Where the page keeps the bridge's token: session storage, for this tab only.
const TOKEN_KEY: &str = "ecoshard.token";

/// A URL fragment without its `token=…` part, and that token. Parts are
/// separated by `&` (`#live&token=…`); a token is of `A-Z a-z 0-9 - . _ ~ + /`.
pub fn split_token(hash: &str) -> (String, Option<String>) {
    let mut token = None;
    let rest: Vec<&str> = hash
        .trim_start_matches('#')
        .split('&')
        .filter(|part| match part.strip_prefix("token=") {
            Some(value) => {
                let valid = |c: char| c.is_ascii_alphanumeric() || "-._~+/".contains(c);
                if !value.is_empty() && value.chars().all(valid) {
                    token = Some(value.to_string());
                }
                false
            }
            None => !part.is_empty(),
        })
        .collect();
    let rest = if rest.is_empty() {
        String::new()
    } else {
        format!("#{}", rest.join("&"))
    };
    (rest, token)
}

/// At start: a `#token=…` in the address bar goes to session storage and
/// out of the address bar (and so out of bookmarks and shared links).
pub fn keep_token_from_url() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let location = window.location();
    let (rest, Some(token)) = split_token(&location.hash().unwrap_or_default()) else {
        return;
    };
    if let Ok(Some(storage)) = window.session_storage() {
        let _ = storage.set_item(TOKEN_KEY, &token);
    }
    let url = format!(
        "{}{}{rest}",
        location.pathname().unwrap_or_default(),
        location.search().unwrap_or_default()
    );
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
    }
}

/// The token kept by [`keep_token_from_url`], if any. It is kept as it is
/// (not as JSON, so no JSON reader is compiled in for it); one kept as a
/// JSON string by an older page in this tab is read without its quotes.
fn kept_token() -> Option<String> {
    let storage = web_sys::window()?.session_storage().ok()??;
    let kept = storage.get_item(TOKEN_KEY).ok()??;
    Some(unquoted(&kept).to_string())
}

/// A token without the quotes of its JSON form (a token holds no quotes).
fn unquoted(kept: &str) -> &str {
    kept.strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .unwrap_or(kept)
}

// Only the encoding and decoding below are generic: the request itself is
// one async function for every endpoint, so the page holds one copy of it
// rather than one per body and answer type (BENCHMARKS.md, Web, Size).

async fn get<T: Read>(path: &str, what: &str) -> Result<T, ApiError> {
    decode(&send_raw("GET", path, None).await?.1, what)
}

async fn send<B: Serialize, T: Read>(
    method: &str,
    path: &str,
    body: Option<&B>,
    what: &str,
) -> Result<T, ApiError> {
    let body = body.map(encode).transpose()?;
    decode(&send_raw(method, path, body).await?.1, what)
}

/// A request body as JSON.
fn encode<B: Serialize>(body: &B) -> Result<String, ApiError> {
    serde_json::to_string(body).map_err(|error| ApiError::unreachable(&error.to_string()))
}

/// A 2xx answer's body as `T`, or what could not be read in words.
fn decode<T: Read>(text: &str, what: &str) -> Result<T, ApiError> {
    crate::json::from_str(text).map_err(|error| ApiError::bad_answer(what, &error.to_string()))
}

/// Sends a request (a JSON body when there is one); the status and body of
/// a 2xx answer, or the failure in words.
async fn send_raw(
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<(u16, String), ApiError> {
    use gloo::net::http::{Method, RequestBuilder};

    let method = match method {
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        _ => Method::GET,
    };
    let mut builder = RequestBuilder::new(path)
        .method(method.clone())
        .header("accept", "application/json");
    if method != Method::GET
        && let Some(token) = kept_token()
    {
        builder = builder.header("authorization", &format!("Bearer {token}"));
    }
    let request = match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(body)
            .map_err(|error| ApiError::unreachable(&error.to_string()))?,
        None => builder
            .build()
            .map_err(|error| ApiError::unreachable(&error.to_string()))?,
    };
    let response = request
        .send()
        .await
        .map_err(|_| ApiError::unreachable("network error"))?;
    let text = response.text().await.unwrap_or_default();
    if response.ok() {
        Ok((response.status(), text))
    } else {
        Err(ApiError::from_answer(
            response.status(),
            &response.status_text(),
            &text,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: u16, body: &str, code: &str, message_has: &str) {
        let error = ApiError::from_answer(status, "Status", body);
        assert_eq!(error.code, code, "{body}");
        assert!(
            error.message.contains(message_has),
            "{:?} lacks {message_has:?}",
            error.message
        );
        assert_eq!(error.status, Some(status));
    }

    #[test]
    fn errors_read_as_sentences() {
        check(
            503,
            r#"{"error":{"code":"primary_unavailable","message":"The primary is down: writes are refused until it is back."}}"#,
            "primary_unavailable",
            "primary is down",
        );
        check(404, "", "http_404", "does not know this request");
        check(
            502,
            "<html>bad gateway</html>",
            "http_502",
            "could not reach",
        );
        check(500, "", "http_500", "without an explanation");
        check(500, "<h1>oops</h1>", "http_500", "without an explanation");
        check(418, "short and stout", "http_418", "short and stout");
        assert!(
            ApiError::unreachable("network error")
                .message
                .contains("ecoshard serve")
        );
    }

    #[test]
    fn an_apply_answer_is_read_by_its_status() {
        let in_force = r#"{"version":3,"layout":{"strategy":"ring","shards":3}}"#;
        let Ok(Applied::InForce(view)) = Applied::from_answer(200, in_force) else {
            panic!("200 is the layout in force");
        };
        assert_eq!(view.version, 3);
        let started = r#"{"id":4,"state":"running","moved":0,"total":0,"rows_per_sec":0.0,
            "from_version":3,"to_version":4,"plan":null,"error":null}"#;
        let Ok(Applied::Started(job)) = Applied::from_answer(202, started) else {
            panic!("202 is a job");
        };
        assert_eq!((job.id, job.plan), (4, None));
        let error = Applied::from_answer(200, started).unwrap_err();
        assert_eq!(error.code, "bad_answer");
    }

    #[test]
    fn node_actions_name_the_node_and_the_mode() {
        use crate::live::StopMode;
        assert_eq!(
            node_action_path("standby-1", NodeRequest::Stop(StopMode::Fast)),
            "/api/nodes/standby-1/stop?mode=fast"
        );
        assert_eq!(
            node_action_path("primary", NodeRequest::Stop(StopMode::Immediate)),
            "/api/nodes/primary/stop?mode=immediate"
        );
        assert_eq!(
            node_action_path("standby-2", NodeRequest::Start),
            "/api/nodes/standby-2/start"
        );
        assert_eq!(
            node_action_path("c2/standby-1", NodeRequest::Stop(StopMode::Fast)),
            "/api/clusters/c2/nodes/standby-1/stop?mode=fast"
        );
        assert_eq!(
            node_action_path("c8/primary", NodeRequest::Start),
            "/api/clusters/c8/nodes/primary/start"
        );
    }

    #[test]
    fn another_clusters_node_action_names_its_cluster() {
        let check = |asked: &str, node: &str, message: &str| {
            let answer = NodeAction {
                node: "standby-1".to_string(),
                action: "stop".to_string(),
                changed: true,
                role: ecoshard_core::wire::NodeRole::Standby,
                message: "stopped standby-1".to_string(),
            };
            let action = qualified_action(asked, answer);
            assert_eq!(
                (action.node.as_str(), action.message.as_str()),
                (node, message)
            );
        };
        check("standby-1", "standby-1", "stopped standby-1");
        check("c2/standby-1", "c2/standby-1", "c2: stopped standby-1");
    }

    #[test]
    fn the_token_is_taken_out_of_the_fragment() {
        let check = |hash: &str, rest: &str, token: Option<&str>| {
            assert_eq!(
                split_token(hash),
                (rest.to_string(), token.map(str::to_string)),
                "{hash}"
            );
        };
        check("", "", None);
        check("#live", "#live", None);
        check("#token=ab12", "", Some("ab12"));
        check("#live&token=ab12", "#live", Some("ab12"));
        check("#token=ab12&live", "#live", Some("ab12"));
        check("#token=", "", None);
        check("#token=a<b", "", None);
        check("#token=a%20b&explore", "#explore", None);
    }

    #[test]
    fn a_token_kept_by_an_older_page_as_json_reads_without_its_quotes() {
        let check = |kept: &str, token: &str| assert_eq!(unquoted(kept), token, "{kept}");
        check("ab12", "ab12");
        check("\"ab12\"", "ab12");
        check("\"", "\"");
        check("", "");
    }

    #[test]
    fn read_paths_escape_the_id() {
        assert_eq!(
            read_path("user_42", Consistency::ReadYourWrites),
            "/api/users/user_42?consistency=read-your-writes"
        );
        assert_eq!(
            read_path("a b/c", Consistency::Strong),
            "/api/users/a%20b%2Fc?consistency=strong"
        );
    }
}
