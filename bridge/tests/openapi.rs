//! `GET /api/openapi.json` on a real bridge: the document parses as OpenAPI,
//! and every route the app's router has (read from the router itself) is in
//! it with its method, and nothing else is; each path parameter is declared
//! and each operation lists its answers, errors in the one error shape.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use axum::http::{StatusCode, header};
use common::{SharedCluster, bridge, get, ring};
use serde_json::Value;

/// This binary's cluster, on ports from 31100.
static CLUSTER: SharedCluster = SharedCluster::new("openapi", 31100, false);

/// Methods a route can have besides HEAD (which GET brings along).
const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// Every (path, method) of `router`, from its `Debug` text: route ids to
/// paths (`RouteId(3): "/api/users"`) and route ids to method routers
/// (`RouteId(3): MethodRouter(MethodRouter { get: None, …, post: Route, … })`).
/// Only its path router is read (the fallback router has ids of its own);
/// the private catch-alls that nesting adds are left out.
fn router_routes(router: &axum::Router) -> BTreeSet<(String, String)> {
    let whole = format!("{router:?}");
    let text = whole
        .split_once("path_router: ")
        .and_then(|(_, rest)| rest.split_once(", fallback_router: "))
        .map_or(whole.as_str(), |(path_router, _)| path_router);
    let mut paths = BTreeMap::new();
    let mut methods: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (start, _) in text.match_indices("RouteId(") {
        let rest = &text[start + "RouteId(".len()..];
        let Some((id, rest)) = rest.split_once("): ") else {
            continue;
        };
        if let Some(quoted) = rest.strip_prefix('"') {
            let path = &quoted[..quoted.find('"').expect("a quoted path")];
            paths.insert(id.to_string(), path.to_string());
        } else if let Some(fields) = rest.strip_prefix("MethodRouter(MethodRouter { ") {
            let fields = &fields[..fields.find("fallback:").expect("a method router")];
            let present = fields
                .split(", ")
                .filter_map(|field| field.split_once(": "))
                .filter(|(method, endpoint)| METHODS.contains(method) && *endpoint != "None")
                .map(|(method, _)| method.to_string());
            methods.insert(id.to_string(), present.collect());
        }
    }
    let routes: BTreeSet<(String, String)> = paths
        .iter()
        .filter(|(_, path)| !path.contains("__private__"))
        .flat_map(|(id, path)| {
            let on = methods.get(id).cloned().unwrap_or_default();
            on.into_iter().map(move |method| (path.clone(), method))
        })
        .collect();
    assert!(
        routes.contains(&("/api/health".to_string(), "get".to_string())),
        "the router's Debug text no longer reads as expected: {routes:?}\n{whole}"
    );
    routes
}

/// Every (path, method) of the document.
fn document_routes(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().expect("a path item");
            item.keys()
                .filter(|key| METHODS.contains(&key.as_str()))
                .map(|method| (path.clone(), method.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn every_route_of_the_router_is_in_the_openapi_document_with_its_method() {
    let _nodes = common::NODES.read().await;
    let cluster = CLUSTER.get();
    let state = bridge(&cluster, "t_openapi", ring(3)).await;
    let answer = get(&state, "/api/openapi.json").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.headers[header::CONTENT_TYPE], "application/json");
    let document = answer.json();
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|version| version.starts_with("3.")),
        "{document}"
    );

    let router = router_routes(&ecoshard_bridge::app(state.clone()));
    let documented = document_routes(&document);
    let missing: Vec<String> = router
        .difference(&documented)
        .map(|(path, method)| format!("{} {path}", method.to_uppercase()))
        .collect();
    assert!(
        missing.is_empty(),
        "routes of the router missing from /api/openapi.json (give each handler a \
         #[utoipa::path] and add it with routes! in http/mod.rs): {missing:?}"
    );
    let stale: Vec<_> = documented.difference(&router).collect();
    assert!(stale.is_empty(), "documented but not routed: {stale:?}");
    for (path, method) in &documented {
        operation_is_complete(&document, path, method);
    }
}

/// Its path parameters are declared, it has answers, and its 4xx/5xx
/// answers are the error shape.
fn operation_is_complete(document: &Value, path: &str, method: &str) {
    let operation = &document["paths"][path][method];
    let declared: BTreeSet<&str> = operation["parameters"]
        .as_array()
        .map(|parameters| {
            parameters
                .iter()
                .filter(|parameter| parameter["in"] == "path")
                .filter_map(|parameter| parameter["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    let in_template: BTreeSet<&str> = path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect();
    assert_eq!(declared, in_template, "{method} {path}: path parameters");
    let responses = operation["responses"].as_object().expect("responses");
    assert!(!responses.is_empty(), "{method} {path}: no answers");
    for (status, response) in responses {
        if status.starts_with('4') || status.starts_with('5') {
            let schema = &response["content"]["application/json"]["schema"]["$ref"];
            assert_eq!(
                schema, "#/components/schemas/ApiErrorBody",
                "{method} {path}: {status}"
            );
        }
    }
}
