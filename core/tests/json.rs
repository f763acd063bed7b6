//! The JSON form of layouts, as clients send it: `{"strategy":"ring","shards":4}`
//! with `shards` a count or a list; every bad body gives a readable error.
#![cfg(feature = "serde")]

use ecoshard_core::{Layout, Shard, StrategyKind};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn parse(json: &str) -> Result<Layout, String> {
    serde_json::from_str(json).map_err(|error| error.to_string())
}

fn check_error(json: &str, expected_fragment: &str) {
    match parse(json) {
        Ok(layout) => panic!("{json} was accepted as {layout:?}"),
        Err(message) => assert!(
            message.contains(expected_fragment),
            "{json}: {message:?} does not mention {expected_fragment:?}"
        ),
    }
}

#[test]
fn count_and_defaults() {
    let layout = parse(r#"{"strategy":"ring","shards":4,"vnodes":100}"#).unwrap();
    assert_eq!(layout.strategy, StrategyKind::Ring);
    assert_eq!(layout.shards, Shard::numbered(4));
    assert_eq!(
        (layout.vnodes, layout.seed, layout.table_size),
        (100, 0, 65_537)
    );
}

#[test]
fn list_of_named_weighted_shards() {
    let layout = parse(
        r#"{"strategy":"rendezvous","shards":[{"name":"eu","weight":2},{"name":"us"}],"seed":9}"#,
    )
    .unwrap();
    assert_eq!(
        layout.shards,
        [Shard::weighted("eu", 2.0), Shard::new("us")]
    );
    assert_eq!(layout.seed, 9);
}

#[test]
fn serialised_layouts_read_back() {
    let layout = Layout::with_count(StrategyKind::Maglev, 3)
        .unwrap()
        .with_table_size(101);
    let json = serde_json::to_string(&layout).unwrap();
    assert!(json.contains(r#""strategy":"maglev""#), "{json}");
    assert_eq!(parse(&json).unwrap(), layout);
}

#[test]
fn shards_may_name_their_cluster() {
    let layout = parse(
        r#"{"strategy":"ring","shards":[{"name":"s0","cluster":"c2"},{"name":"s1","weight":2}]}"#,
    )
    .unwrap();
    assert_eq!(
        layout.shards,
        [
            Shard::new("s0").on_cluster("c2"),
            Shard::weighted("s1", 2.0)
        ]
    );
    let json = serde_json::to_string(&layout).unwrap();
    assert!(
        json.contains(r#"[{"name":"s0","weight":1.0,"cluster":"c2"},{"name":"s1","weight":2.0}]"#),
        "{json}"
    );
    assert_eq!(parse(&json).unwrap(), layout);
}

/// A layout naming no cluster writes exactly the JSON it wrote before shards
/// could name one, so the page's and the bridge's stored layouts keep working.
#[test]
fn layouts_without_clusters_write_as_before() {
    let check = |layout: Layout, expected: &str| {
        assert_eq!(serde_json::to_string(&layout).unwrap(), expected);
        assert_eq!(parse(expected).unwrap(), layout);
    };
    check(
        Layout::with_count(StrategyKind::Ring, 2).unwrap(),
        r#"{"strategy":"ring","shards":[{"name":"s0","weight":1.0},{"name":"s1","weight":1.0}],"seed":0,"vnodes":160,"table_size":65537,"load_factor":1.25}"#,
    );
    check(
        Layout::new(StrategyKind::Rendezvous, vec![Shard::weighted("eu", 2.5)]).with_seed(7),
        r#"{"strategy":"rendezvous","shards":[{"name":"eu","weight":2.5}],"seed":7,"vnodes":160,"table_size":65537,"load_factor":1.25}"#,
    );
}

#[test]
fn bad_bodies_say_what_is_wrong() {
    check_error(r#"{"strategy":"sharding","shards":3}"#, "unknown strategy");
    check_error(r#"{"strategy":"ring","shards":0}"#, "at least one shard");
    check_error(r#"{"strategy":"ring","shards":-3}"#, "negative");
    check_error(r#"{"strategy":"ring","shards":2.5}"#, "whole number");
    check_error(r#"{"strategy":"ring","shards":99999999999}"#, "too many");
    check_error(
        r#"{"strategy":"ring","shards":3,"vnodes":0}"#,
        "virtual nodes",
    );
    check_error(
        r#"{"strategy":"ring","shards":3,"vnodes":4294967296}"#,
        "virtual nodes",
    );
    check_error(
        r#"{"strategy":"maglev","shards":3,"table_size":65536}"#,
        "not a prime",
    );
    check_error(
        r#"{"strategy":"bounded-load","shards":3,"load_factor":0.5}"#,
        "load factor",
    );
    check_error(
        r#"{"strategy":"ring","shards":[{"name":"a"},{"name":"a"}]}"#,
        "more than once",
    );
    check_error(
        r#"{"strategy":"ring","shards":[{"name":"a b"}]}"#,
        "invalid shard name",
    );
    check_error(
        r#"{"strategy":"ring","shards":[{"name":"a","weight":0}]}"#,
        "weight",
    );
    check_error(
        r#"{"strategy":"jump","shards":[{"name":"a","weight":2}]}"#,
        "cannot weight",
    );
    check_error(
        r#"{"strategy":"ring","shards":[{"name":"a","cluster":"C2"}]}"#,
        "invalid cluster name",
    );
    check_error(
        r#"{"strategy":"ring","shards":[{"name":"a","cluster":""}]}"#,
        "invalid cluster name",
    );
    check_error(
        r#"{"strategy":"ring","shards":[{"name":"a","cluster":2}]}"#,
        "invalid type",
    );
    check_error(
        r#"{"strategy":"ring","shards":3,"vnode":10}"#,
        "unknown field",
    );
    check_error(r#"{"shards":3}"#, "strategy");
    check_error(r#"{"strategy":"ring"}"#, "shards");
    check_error(
        r#"{"strategy":"ring","shards":"3"}"#,
        "shard count or a list",
    );
    check_error("[1,2]", "");
}

/// The layout that stalled the bridge for 16 s (a Maglev table of 16,777,213
/// slots over 255 shards of weight 1e-300) is refused when read, naming the
/// limit; so are weights too small to get keys.
#[test]
fn layouts_too_costly_to_build_are_refused_naming_the_limit() {
    let shards: Vec<String> = (0..255)
        .map(|index| format!(r#"{{"name":"s{index}","weight":1e-300}}"#))
        .collect();
    let review = format!(
        r#"{{"strategy":"maglev","table_size":16777213,"shards":[{}]}}"#,
        shards.join(",")
    );
    check_error(&review, "at most 20000000");
    check_error(
        r#"{"strategy":"ring","shards":[{"name":"a","weight":1000},{"name":"b","weight":1e-300}]}"#,
        "under 0.000001 of the largest weight (1000)",
    );
    check_error(
        r#"{"strategy":"ring","shards":2000,"vnodes":4000}"#,
        "at most 4194304",
    );
}
