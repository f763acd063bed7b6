//! The bridge's answers read from JSON by the page's reader ([`Read`]), one
//! short reader per wire type, each field by its name in `ecoshard_core::wire`.
//! The tests keep these true to the core's serde definitions: every type
//! written by serde reads back the same, and a field missing or of another
//! type is refused exactly where serde refuses it (BENCHMARKS.md, Web, Size).

use ecoshard_core::wire::{
    ApiErrorBody, ApiErrorDetail, BridgeView, BulkResult, ClusterMode, ClusterNodes, ClusterReads,
    ClusterView, Consistency, FailoverEvent, FailoverView, GenerateResult, Health, InsertResult,
    JobState, LagSample, LayoutView, MovePhase, NodeAction, NodeCount, NodeRole, NodeStatus,
    ReadResult, RebalanceJob, ShardMoveProgress, Stats, Tick, User, UserSample,
};
use ecoshard_core::{ClusterTransfer, Layout, PlanSummary, ShardLoad, ShardMove, TransferSummary};

use crate::json::{Error, Object, Read, Value, by_serde, variant};

/// `impl Read` for a struct read field by field from an object: the
/// struct's name, then each field with how it is read (`field`: required
/// unless an `Option`; `field_or_default`: `#[serde(default)]`).
macro_rules! read_struct {
    ($type:ident { $($name:ident: $how:ident),* $(,)? }) => {
        impl Read for $type {
            fn read(value: &Value) -> Result<$type, Error> {
                let object = Object::new(value, concat!("struct ", stringify!($type)))?;
                Ok($type {
                    $($name: object.$how(stringify!($name))?,)*
                })
            }
        }
    };
}

read_struct!(ApiErrorBody { error: field });
read_struct!(ApiErrorDetail {
    code: field,
    message: field
});
read_struct!(Health {
    status: field,
    version: field
});
read_struct!(NodeStatus {
    name: field,
    role: field,
    addr: field,
    up: field,
    lag: field
});
read_struct!(LagSample {
    node: field,
    state: field,
    sync_state: field,
    write_lag_ms: field,
    flush_lag_ms: field,
    replay_lag_ms: field,
    byte_lag: field,
    up: field,
    at_ms: field,
});
read_struct!(ClusterView {
    mode: field,
    nodes: field,
    layout: field,
    failover: field_or_default,
    clusters: field_or_default,
    bridges: field_or_default,
});
read_struct!(BridgeView {
    name: field,
    address: field,
    layout_version: field,
    heartbeat_age_ms: field,
    live: field,
    runs_job: field,
    this: field,
});
read_struct!(ClusterNodes {
    name: field,
    nodes: field,
    failover: field_or_default
});
read_struct!(User {
    user_id: field,
    name: field,
    email: field,
    created_at: field
});
read_struct!(InsertResult {
    user: field,
    shard: field,
    served_by: field,
    lsn: field,
    cluster: field_or_default,
});
read_struct!(BulkResult {
    inserted: field,
    prefix: field,
    shards: field,
    served_by: field,
    lsn: field,
    lsns: field_or_default,
    elapsed_ms: field,
});
read_struct!(GenerateResult {
    inserted: field,
    prefix: field,
    shards: field,
    served_by: field,
    lsn: field,
    lsns: field_or_default,
    elapsed_ms: field,
    rows_per_sec: field,
});
read_struct!(UserSample {
    version: field,
    ids: field,
    rows: field,
    served_by: field
});
read_struct!(ReadResult {
    user: field,
    shard: field,
    served_by: field,
    lag_ms: field,
    consistency: field,
    cluster: field_or_default,
});
read_struct!(NodeCount {
    node: field,
    count: field,
    per_sec: field_or_default
});
read_struct!(Stats {
    reads: field,
    writes: field,
    writes_per_sec: field,
    reads_per_sec: field,
    failed_reads: field,
    rows: field,
    clusters: field_or_default,
});
read_struct!(ClusterReads {
    cluster: field,
    reads: field
});
read_struct!(RebalanceJob {
    id: field,
    state: field,
    moved: field,
    total: field,
    rows_per_sec: field,
    from_version: field,
    to_version: field,
    plan: field,
    error: field,
    shard_move: field_or_default,
});
read_struct!(ShardMoveProgress {
    shard: field,
    from_cluster: field,
    to_cluster: field,
    phase: field,
    shards_done: field,
    shards_total: field,
    rows: field,
    rows_total: field,
    bytes: field,
    bytes_total: field,
    rows_per_sec: field,
    eta_ms: field,
    write_pause_ms: field,
});
read_struct!(Tick {
    at_ms: field,
    nodes: field,
    stats: field,
    rebalance: field,
    layout_version: field,
    failover: field_or_default,
    clusters: field_or_default,
    bridges: field_or_default,
});
read_struct!(NodeAction {
    node: field,
    action: field,
    changed: field,
    role: field,
    message: field
});
read_struct!(FailoverView {
    auto: field,
    sync_replication: field,
    in_progress: field,
    last: field
});
read_struct!(FailoverEvent {
    from: field,
    to: field,
    at_ms: field,
    detect_ms: field,
    promote_ms: field,
    total_ms: field,
    repointed: field,
});
read_struct!(ShardLoad {
    shard: field,
    keys: field,
    cluster: field_or_default
});
read_struct!(ClusterTransfer {
    from: field,
    to: field,
    keys: field
});
read_struct!(ShardMove {
    shard: field,
    from: field,
    to: field,
    keys: field
});
read_struct!(TransferSummary {
    from: field,
    to: field,
    keys: field
});
read_struct!(PlanSummary {
    total: field,
    moved: field,
    moved_within_cluster: field_or_default,
    moved_across_clusters: field_or_default,
    cluster_transfers: field_or_default,
    shard_moves: field_or_default,
    moved_fraction: field,
    ideal_fraction: field,
    transfers: field,
    loads_before: field,
    loads_after: field,
    max_over_mean_before: field,
    max_over_mean_after: field,
    std_dev_before: field,
    std_dev_after: field,
});

read_struct!(LayoutView {
    version: field,
    layout: field,
    placement: field_or_default
});

/// By the core's own serde reader, so its checks are the core's.
impl Read for Layout {
    fn read(value: &Value) -> Result<Layout, Error> {
        by_serde(value)
    }
}

impl Read for ClusterMode {
    fn read(value: &Value) -> Result<ClusterMode, Error> {
        variant(
            value,
            &[
                ("local", ClusterMode::Local),
                ("external", ClusterMode::External),
            ],
        )
    }
}

impl Read for NodeRole {
    fn read(value: &Value) -> Result<NodeRole, Error> {
        variant(
            value,
            &[
                ("primary", NodeRole::Primary),
                ("standby", NodeRole::Standby),
            ],
        )
    }
}

impl Read for Consistency {
    fn read(value: &Value) -> Result<Consistency, Error> {
        let names = Consistency::ALL.map(|consistency| (consistency.name(), consistency));
        variant(value, &names)
    }
}

impl Read for JobState {
    fn read(value: &Value) -> Result<JobState, Error> {
        variant(
            value,
            &[
                ("running", JobState::Running),
                ("done", JobState::Done),
                ("failed", JobState::Failed),
            ],
        )
    }
}

impl Read for MovePhase {
    fn read(value: &Value) -> Result<MovePhase, Error> {
        variant(
            value,
            &[
                ("setting_up", MovePhase::SettingUp),
                ("copying", MovePhase::Copying),
                ("catching_up", MovePhase::CatchingUp),
                ("cutover", MovePhase::Cutover),
                ("verifying", MovePhase::Verifying),
                ("cleanup", MovePhase::Cleanup),
                ("done", MovePhase::Done),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use ecoshard_core::wire::{
        ApiErrorBody, BulkResult, ClusterView, GenerateResult, Health, InsertResult, LayoutView,
        NodeAction, ReadResult, RebalanceJob, Tick, UserSample,
    };
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::Value as Json;

    use crate::json::{Read, from_str};

    /// Ours reads `text` as `serde_json::from_str` does: the same value, or
    /// a refusal (in words of its own). Floats may differ in their last bit:
    /// ours are rounded correctly, serde_json's (without its
    /// `float_roundtrip`) not always, for 17 digits or extreme exponents.
    fn check<T: Read + DeserializeOwned + Serialize + Debug>(text: &str) {
        let ours = from_str::<T>(text);
        let theirs = serde_json::from_str::<T>(text);
        assert_eq!(ours.is_ok(), theirs.is_ok(), "{text}: {ours:?}");
        if let (Ok(ours), Ok(theirs)) = (&ours, &theirs) {
            let as_json = |value: &T| serde_json::to_value(value).expect("serialises");
            assert!(
                same(&as_json(ours), &as_json(theirs)),
                "{text}: {ours:?} {theirs:?}"
            );
        }
        if let Err(error) = ours {
            assert!(!error.to_string().is_empty(), "{text}");
        }
    }

    /// Equal, floats to their last bit.
    fn same(ours: &Json, theirs: &Json) -> bool {
        match (ours, theirs) {
            (Json::Number(a), Json::Number(b)) if a.is_f64() || b.is_f64() => {
                let (a, b) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
                a == b || (a.to_bits().abs_diff(b.to_bits()) == 1 && a.signum() == b.signum())
            }
            (Json::Array(a), Json::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
            }
            (Json::Object(a), Json::Object(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(key, a)| b.get(key).is_some_and(|b| same(a, b)))
            }
            _ => ours == theirs,
        }
    }

    const NODES: &str = r#"[
        {"name": "primary", "role": "primary", "addr": "127.0.0.1:55432", "up": true, "lag": null},
        {"name": "standby-1", "role": "standby", "addr": "127.0.0.1:55433", "up": true,
         "lag": {"node": "standby-1", "state": "streaming", "sync_state": "async",
                 "write_lag_ms": null, "flush_lag_ms": 0.25, "replay_lag_ms": 0.9,
                 "byte_lag": 0, "up": true, "at_ms": 1795927598805}},
        {"name": "standby-2", "role": "standby", "addr": "127.0.0.1:55434", "up": false,
         "lag": {"node": "standby-2", "state": null, "sync_state": null,
                 "write_lag_ms": null, "flush_lag_ms": null, "replay_lag_ms": null,
                 "byte_lag": -12, "up": false, "at_ms": 1795927598805}}]"#;

    const FAILOVER: &str = r#"{"auto": true, "sync_replication": false, "in_progress": false,
        "last": {"from": "primary", "to": "standby-1", "at_ms": 1795927611205,
                 "detect_ms": 250.4, "promote_ms": 41.9, "total_ms": 372.0,
                 "repointed": ["standby-2"]}}"#;

    const BRIDGES: &str = r#"[{"name": "db-1:8081", "address": "10.0.0.5:8081",
        "layout_version": 3, "heartbeat_age_ms": 420, "live": true, "runs_job": true, "this": true},
        {"name": "db-2:8082", "address": "10.0.0.6:8082", "layout_version": 2,
         "heartbeat_age_ms": 12000, "live": false, "runs_job": false, "this": false}]"#;

    const STATS: &str = r#"{"reads": [{"node": "primary", "count": 0, "per_sec": 0.0},
        {"node": "standby-1", "count": 1, "per_sec": 1.5}],
        "writes": 1001, "writes_per_sec": 0.0, "reads_per_sec": 2.25, "failed_reads": 3,
        "rows": [{"shard": "s0", "keys": 352}, {"shard": "s1", "keys": 0, "cluster": "c2"}],
        "clusters": [{"cluster": "c1", "reads": [{"node": "standby-1", "count": 1, "per_sec": 1.5}]},
                     {"cluster": "c2", "reads": [{"node": "standby-1", "count": 7, "per_sec": 0.25}]}]}"#;

    const PLAN: &str = r#"{"total": 100000, "moved": 74763, "moved_within_cluster": 70000,
        "moved_across_clusters": 4763,
        "cluster_transfers": [{"from": "c1", "to": "c2", "keys": 4763}, {"from": null, "to": "c2", "keys": 0}],
        "shard_moves": [{"shard": "s1", "from": "c1", "to": "c2", "keys": 12}],
        "moved_fraction": 0.74763, "ideal_fraction": 0.25,
        "transfers": [{"from": "s0", "to": "s1", "keys": 8315}],
        "loads_before": [{"shard": "s0", "keys": 100000}],
        "loads_after": [{"shard": "s0", "keys": 25237}, {"shard": "s1", "keys": 74763, "cluster": "c2"}],
        "max_over_mean_before": 1.0, "max_over_mean_after": 1.49,
        "std_dev_before": 0.0, "std_dev_after": 24763.123456789012}"#;

    const MOVE: &str = r#"{"shard": "s1", "from_cluster": "c1", "to_cluster": "c2",
        "phase": "catching_up", "shards_done": 0, "shards_total": 2, "rows": 5000,
        "rows_total": 1000000, "bytes": 65536, "bytes_total": 104857600,
        "rows_per_sec": 123456.78, "eta_ms": 8100, "write_pause_ms": null}"#;

    const LAYOUT: &str = r#"{"version": 7, "layout": {"strategy": "ring",
        "shards": [{"name": "s0", "weight": 1.0}, {"name": "eu", "weight": 2.5, "cluster": "c2"}],
        "seed": 0, "vnodes": 160, "table_size": 65537, "load_factor": 1.25},
        "placement": ["c1", "c2"]}"#;

    const USER: &str = r#"{"user_id": "user_1041", "name": "Ana \"Ñ\" \u00e9 \ud83d\ude00",
        "email": "user_1041@ecomarket.example", "created_at": "2026-11-30T23:24:04.123+00:00"}"#;

    fn job() -> String {
        format!(
            r#"{{"id": 2, "state": "running", "moved": 10, "total": 74763,
            "rows_per_sec": 1234.5, "from_version": 1, "to_version": 2,
            "plan": {PLAN}, "error": null, "shard_move": {MOVE}}}"#
        )
    }

    fn clusters() -> String {
        format!(
            r#"[{{"name": "c1", "nodes": {NODES}, "failover": {FAILOVER}}},
               {{"name": "c2", "nodes": {NODES}}}]"#
        )
    }

    /// [`check`] for one wire type.
    type Checker<'a> = &'a dyn Fn(&str);

    /// A realistic answer of each kind the page reads, each run through
    /// `read` for its type.
    fn answers(read: &mut dyn FnMut(&str, Checker<'_>)) {
        read(
            &format!(
                r#"{{"mode": "local", "nodes": {NODES}, "layout": {LAYOUT}, "failover": {FAILOVER},
                    "clusters": {}}}"#,
                clusters()
            ),
            &check::<ClusterView>,
        );
        read(
            &format!(
                r#"{{"at_ms": 5, "nodes": {NODES}, "stats": {STATS}, "rebalance": {},
                    "layout_version": 2, "failover": {FAILOVER}, "clusters": {}}}"#,
                job(),
                clusters()
            ),
            &check::<Tick>,
        );
        read(&job(), &check::<RebalanceJob>);
        read(LAYOUT, &check::<LayoutView>);
        read(
            &format!(
                r#"{{"user": {USER}, "shard": "s0", "served_by": "primary", "lsn": "c2/0/3000148",
                    "cluster": "c2"}}"#
            ),
            &check::<InsertResult>,
        );
        read(
            &format!(
                r#"{{"user": {USER}, "shard": "s0", "served_by": "standby-2", "lag_ms": 0.5,
                    "consistency": "read-your-writes", "cluster": "c1"}}"#
            ),
            &check::<ReadResult>,
        );
        read(
            r#"{"inserted": 100, "prefix": "bulk_7_", "shards": [{"shard": "s0", "keys": 60}],
                "served_by": "primary", "lsn": "0/3000148", "lsns": {"c1": "c1/0/1", "c2": "c2/0/2"},
                "elapsed_ms": 12.75}"#,
            &check::<BulkResult>,
        );
        read(
            r#"{"inserted": 100000, "prefix": "gen_", "shards": [{"shard": "s0", "keys": 60}],
                "served_by": "primary", "lsn": "0/3000148", "elapsed_ms": 812.5,
                "rows_per_sec": 123152.70935960591}"#,
            &check::<GenerateResult>,
        );
        read(
            r#"{"version": 7, "ids": ["user_1041", "sm17"], "rows": 1000000, "served_by": "standby-2"}"#,
            &check::<UserSample>,
        );
        read(
            r#"{"node": "standby-1", "action": "stop", "changed": true, "role": "standby",
                "message": "stopped standby-1"}"#,
            &check::<NodeAction>,
        );
        read(
            r#"{"status": "ok", "version": "0.1.0", "added_later": [1, {"a": null}]}"#,
            &check::<Health>,
        );
        read(
            r#"{"error": {"code": "invalid_user_id", "message": "user_id may hold only \u00e9"}}"#,
            &check::<ApiErrorBody>,
        );
    }

    /// `text` read with serde_json, written back by serde and read by ours.
    fn round_trip<T: Read + DeserializeOwned + Serialize + PartialEq + Debug>(text: &str) {
        let value: T = serde_json::from_str(text).unwrap_or_else(|error| panic!("{error}: {text}"));
        let written = serde_json::to_string(&value).expect("serialises");
        assert_eq!(from_str::<T>(&written).ok(), Some(value), "{written}");
    }

    #[test]
    fn every_wire_type_written_by_serde_reads_back_the_same() {
        let mut count = 0;
        answers(&mut |text, check| {
            check(text);
            count += 1;
        });
        assert_eq!(count, 12);
        let tick = format!(
            r#"{{"at_ms": 5, "nodes": {NODES}, "stats": {STATS}, "rebalance": {},
                "layout_version": 2, "failover": {FAILOVER}, "clusters": {}, "bridges": {BRIDGES}}}"#,
            job(),
            clusters()
        );
        round_trip::<Tick>(&tick);
        round_trip::<RebalanceJob>(&job());
        round_trip::<LayoutView>(LAYOUT);
        round_trip::<LayoutView>(r#"{"version": 1, "layout": {"strategy": "jump", "shards": 4}}"#);
        round_trip::<ClusterView>(&format!(
            r#"{{"mode": "external", "nodes": {NODES}, "layout": {LAYOUT}, "clusters": {},
                "bridges": {BRIDGES}}}"#,
            clusters()
        ));
        round_trip::<ReadResult>(&format!(
            r#"{{"user": {USER}, "shard": "s0", "served_by": "primary", "lag_ms": null, "consistency": "strong"}}"#
        ));
        round_trip::<BulkResult>(
            r#"{"inserted": 0, "prefix": "p", "shards": [], "served_by": "primary", "lsn": "0/1",
                "lsns": {"c1": "c1/0/1"}, "elapsed_ms": 0.1}"#,
        );
    }

    /// Every place in `json`: the path of keys and indexes to it.
    fn places(json: &Json, path: Vec<Json>, out: &mut Vec<Vec<Json>>) {
        match json {
            Json::Object(map) => map.iter().for_each(|(key, value)| {
                let mut inner = path.clone();
                inner.push(Json::from(key.as_str()));
                places(value, inner, out);
            }),
            Json::Array(items) => items.iter().enumerate().for_each(|(index, value)| {
                let mut inner = path.clone();
                inner.push(Json::from(index));
                places(value, inner, out);
            }),
            _ => {}
        }
        out.push(path);
    }

    /// `json` with the place at `path` replaced (`None`: removed).
    fn changed(json: &Json, path: &[Json], new: Option<&Json>) -> Json {
        let mut json = json.clone();
        let (last, parents) = path.split_last().expect("not the root");
        let mut at = &mut json;
        for step in parents {
            at = match step {
                Json::String(key) => &mut at[key.as_str()],
                other => &mut at[other.as_u64().unwrap_or(0) as usize],
            };
        }
        match (at, last, new) {
            (Json::Object(map), Json::String(key), None) => drop(map.remove(key.as_str())),
            (Json::Array(items), index, None) => {
                drop(items.remove(index.as_u64().unwrap_or(0) as usize))
            }
            (at, Json::String(key), Some(new)) => at[key.as_str()] = new.clone(),
            (at, index, Some(new)) => at[index.as_u64().unwrap_or(0) as usize] = new.clone(),
            _ => {}
        }
        json
    }

    #[test]
    fn a_field_missing_or_of_another_type_is_refused_as_serde_json_refuses_it() {
        let kinds: Vec<Json> = [
            "null",
            "true",
            "0",
            "-1",
            "1.5",
            "18446744073709551616",
            "\"x\"",
            "\"running\"",
            "[]",
            "[1]",
            "{}",
            r#"{"a": 1}"#,
        ]
        .iter()
        .map(|text| serde_json::from_str(text).expect("json"))
        .collect();
        let mut cases = 0;
        answers(&mut |text, check| {
            let json: Json = serde_json::from_str(text).expect("json");
            let mut all = Vec::new();
            places(&json, Vec::new(), &mut all);
            for path in all.iter().filter(|path| !path.is_empty()) {
                check(&changed(&json, path, None).to_string());
                for kind in &kinds {
                    check(&changed(&json, path, Some(kind)).to_string());
                    cases += 1;
                }
            }
        });
        assert!(cases > 3_000, "{cases}");
    }

    /// A small deterministic generator (xorshift64*).
    struct Random(u64);

    impl Random {
        fn below(&mut self, bound: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % bound
        }
    }

    const PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        "\"",
        ":",
        ",",
        " ",
        "0",
        "1",
        "9",
        "-",
        "+",
        ".",
        "e",
        "E",
        "\\",
        "\\u",
        "d83d",
        "dc00",
        "n",
        "null",
        "true",
        "false",
        "x",
        "\u{1}",
        "é",
        "00",
        "1e400",
        "\"id\"",
        "\"state\"",
    ];

    /// `text` broken at random: cut, a piece put in, a byte taken out.
    fn mangled(text: &str, random: &mut Random) -> String {
        let mut bytes = text.as_bytes().to_vec();
        for _ in 0..=random.below(3) {
            let at = random.below(bytes.len() + 1);
            match random.below(4) {
                0 => bytes.truncate(at),
                1 if at < bytes.len() => drop(bytes.remove(at)),
                _ => {
                    let piece = PIECES[random.below(PIECES.len())].as_bytes();
                    bytes.splice(at..at, piece.iter().copied());
                }
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn broken_answers_are_refused_as_serde_json_refuses_them_and_never_panic() {
        let mut random = Random(0x9e37_79b9_7f4a_7c15);
        answers(&mut |text, check| {
            for _ in 0..2_000 {
                check(&mangled(text, &mut random));
            }
        });
        for _ in 0..20_000 {
            let text: String = (0..random.below(24))
                .map(|_| PIECES[random.below(PIECES.len())])
                .collect();
            check::<Health>(&text);
            check::<Vec<u64>>(&text);
            check::<Option<f64>>(&text);
            let parsed = crate::json::parse(&text).is_ok();
            assert_eq!(
                parsed,
                serde_json::from_str::<Json>(&text).is_ok(),
                "{text}"
            );
        }
    }

    #[test]
    fn a_struct_written_as_an_array_is_refused() {
        let text = r#"["ok", "0.1.0"]"#;
        assert!(serde_json::from_str::<Health>(text).is_ok());
        let error = from_str::<Health>(text).unwrap_err().to_string();
        assert_eq!(error, "invalid type: sequence, expected struct Health");
    }

    #[test]
    fn refusals_are_sentences() {
        let check = |text: &str, expected: &str| {
            let error = from_str::<Health>(text).unwrap_err().to_string();
            assert_eq!(error, expected, "{text}");
        };
        check(r#"{"status": "ok"}"#, "missing field `version`");
        check(
            r#"{"status": "ok", "version": 1.5}"#,
            "invalid type: floating point number, expected a string",
        );
        check(
            r#"{"status": "ok", "version": "1", "status": "ok"}"#,
            "duplicate field `status`",
        );
        check(
            r#"{"status": "ok", "version": "1"} x"#,
            "trailing characters at byte 33",
        );
        check(
            r#"{"status": "ok", "version": "1""#,
            "expected `,` or `}` at byte 31",
        );
        check("", "EOF while parsing a value at byte 0");
        check("null", "invalid type: null, expected struct Health");
    }
}
