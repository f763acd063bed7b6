//! Reading the bridge's JSON answers with less code: every struct is read
//! from a JSON object only (`deserialize_map`), never from an array.
//!
//! `serde_json`'s `deserialize_struct` also accepts a struct written as an
//! array, so each derived `Deserialize` was compiled twice over, once through
//! `visit_map` and once through `visit_seq` — about a third of the page's
//! decoding code, for a form the bridge never sends. [`from_str`] wraps the
//! deserializer, at every depth, so that a struct asks for a map: its
//! `visit_seq` is never called and never compiled (BENCHMARKS.md, Web, Size).
//! Everything else (numbers, strings, options, sequences, enums, unknown
//! fields, error messages with line and column) is `serde_json`'s own.

use std::fmt;

use serde::de::{
    DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

/// `serde_json::from_str`, reading structs from objects only.
pub(crate) fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = T::deserialize(MapsOnly(&mut deserializer))?;
    deserializer.end()?;
    Ok(value)
}

/// A deserializer whose structs are maps; what it hands on is wrapped too.
struct MapsOnly<D>(D);

/// A visitor whose nested deserializers and accessors are wrapped.
struct Wrap<V>(V);

/// A seed that deserializes through [`MapsOnly`].
struct Seed<S>(S);

macro_rules! forward {
    ($($method:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                self.0.$method(Wrap(visitor))
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for MapsOnly<D> {
    type Error = D::Error;

    forward!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, Wrap(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_newtype_struct(name, Wrap(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, Wrap(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(name, len, Wrap(visitor))
    }

    /// The one change: a struct is read as a map.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(Wrap(visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, Wrap(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! visit {
    ($($method:ident($type:ty)),* $(,)?) => {
        $(
            fn $method<E: serde::de::Error>(self, value: $type) -> Result<V::Value, E> {
                self.0.$method(value)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(formatter)
    }

    visit!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_none<E: serde::de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.0.visit_some(MapsOnly(deserializer))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        self.0.visit_newtype_struct(MapsOnly(deserializer))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.0.visit_seq(Wrap(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(Wrap(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.0.visit_enum(Wrap(data))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(MapsOnly(deserializer))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        // Keys are strings, never structs: read as they are.
        self.0.next_key_seed(seed)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<A> {
    type Error = A::Error;
    type Variant = Wrap<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Wrap<A::Variant>), A::Error> {
        let (value, variant) = self.0.variant_seed(Seed(seed))?;
        Ok((value, Wrap(variant)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(Seed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrap(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, Wrap(visitor))
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use ecoshard_core::wire::{
        ApiErrorBody, ClusterView, Health, LayoutView, RebalanceJob, Tick, UserSample,
    };
    use serde::de::DeserializeOwned;

    /// Ours reads `text` exactly as `serde_json::from_str` does: the same
    /// value, or the same error message (with its line and column).
    fn check<T: DeserializeOwned + PartialEq + Debug>(text: &str) {
        let ours = super::from_str::<T>(text).map_err(|error| error.to_string());
        let theirs = serde_json::from_str::<T>(text).map_err(|error| error.to_string());
        assert_eq!(ours, theirs, "{text}");
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
                 "byte_lag": null, "up": false, "at_ms": 1795927598805}}]"#;

    const FAILOVER: &str = r#"{"auto": true, "sync_replication": false, "in_progress": false,
        "last": {"from": "primary", "to": "standby-1", "at_ms": 1795927611205,
                 "detect_ms": 250.4, "promote_ms": 41.9, "total_ms": 372.0,
                 "repointed": ["standby-2"]}}"#;

    const STATS: &str = r#"{"reads": [{"node": "primary", "count": 0, "per_sec": 0.0},
        {"node": "standby-1", "count": 1, "per_sec": 1.5}],
        "writes": 1001, "writes_per_sec": 0.0, "reads_per_sec": 2.25, "failed_reads": 3,
        "rows": [{"shard": "s0", "keys": 352}, {"shard": "s1", "keys": 0}]}"#;

    const JOB: &str = r#"{"id": 2, "state": "running", "moved": 10, "total": 74763,
        "rows_per_sec": 1234.5, "from_version": 1, "to_version": 2,
        "plan": {"total": 100000, "moved": 74763, "moved_fraction": 0.74763,
                 "ideal_fraction": 0.25,
                 "transfers": [{"from": "s0", "to": "s1", "keys": 8315}],
                 "loads_before": [{"shard": "s0", "keys": 100000}],
                 "loads_after": [{"shard": "s0", "keys": 25237}, {"shard": "s1", "keys": 74763}],
                 "max_over_mean_before": 1.0, "max_over_mean_after": 1.49,
                 "std_dev_before": 0.0, "std_dev_after": 24763.0},
        "error": null}"#;

    const LAYOUT: &str = r#"{"version": 7, "layout": {"strategy": "ring",
        "shards": [{"name": "s0", "weight": 1.0}, {"name": "eu", "weight": 2.5}],
        "seed": 0, "vnodes": 160, "table_size": 65537, "load_factor": 1.25}}"#;

    /// A good answer: read, and as serde_json reads it.
    fn reads<T: DeserializeOwned + PartialEq + Debug>(text: &str) {
        assert!(serde_json::from_str::<T>(text).is_ok(), "{text}");
        check::<T>(text);
    }

    /// A bad answer: refused, with serde_json's message.
    fn fails<T: DeserializeOwned + PartialEq + Debug>(text: &str) {
        assert!(serde_json::from_str::<T>(text).is_err(), "{text}");
        check::<T>(text);
    }

    #[test]
    fn every_answer_of_the_bridge_reads_as_serde_json_reads_it() {
        reads::<ClusterView>(&format!(
            r#"{{"mode": "local", "nodes": {NODES}, "layout": {LAYOUT}, "failover": {FAILOVER}}}"#
        ));
        reads::<Tick>(&format!(
            r#"{{"at_ms": 5, "nodes": {NODES}, "stats": {STATS}, "rebalance": {JOB},
                "layout_version": 2, "failover": {FAILOVER}}}"#
        ));
        reads::<Tick>(&format!(
            r#"{{"at_ms": 5, "nodes": [], "stats": {STATS}, "rebalance": null, "layout_version": 1}}"#
        ));
        reads::<RebalanceJob>(JOB);
        reads::<RebalanceJob>(
            r#"{"id": 3, "state": "failed", "moved": 0, "total": 0, "rows_per_sec": 0.0,
                "from_version": 1, "to_version": 2, "plan": null, "error": "gone"}"#,
        );
        reads::<LayoutView>(LAYOUT);
        reads::<LayoutView>(r#"{"version": 1, "layout": {"strategy": "jump", "shards": 4}}"#);
        reads::<LayoutView>(
            r#"{"version": 1, "layout": {"strategy": "rendezvous",
                "shards": [{"name": "s0", "weight": 1}, {"name": "eu", "weight": 2}]}}"#,
        );
        reads::<UserSample>(
            r#"{"version": 7, "ids": ["user_1041", "sm17"], "rows": 1000000, "served_by": "standby-2"}"#,
        );
        reads::<Health>(r#"{"status": "ok", "version": "0.1.0", "added_later": [1, {"a": null}]}"#);
        reads::<ApiErrorBody>(
            r#"{"error": {"code": "invalid_user_id", "message": "user_id may hold only \u00e9"}}"#,
        );
    }

    #[test]
    fn a_bad_answer_fails_with_serde_json_s_own_message() {
        fails::<Health>(r#"{"status": "ok"}"#);
        fails::<Health>(r#"{"status": "ok", "version": 1}"#);
        fails::<Health>(r#"{"status": "ok", "version": "1", "status": "ok"}"#);
        fails::<Health>(r#"{"status": "ok", "version": "1"} trailing"#);
        fails::<Health>(r#"{"status": "ok", "version": "1""#);
        fails::<Health>("");
        fails::<Health>("null");
        fails::<Health>("\"ok\"");
        fails::<LayoutView>(r#"{"version": -1, "layout": {"strategy": "jump", "shards": 4}}"#);
        fails::<LayoutView>(r#"{"version": 1.5, "layout": {"strategy": "jump", "shards": 4}}"#);
        fails::<LayoutView>(r#"{"version": 1, "layout": {"strategy": "nope", "shards": 4}}"#);
        fails::<RebalanceJob>(&JOB.replace("\"running\"", "\"paused\""));
        fails::<Tick>(&format!(
            r#"{{"at_ms": 5, "nodes": {}, "stats": {STATS}, "rebalance": null, "layout_version": 1}}"#,
            NODES.replace("\"up\": false", "\"up\": 0")
        ));
    }

    #[test]
    fn a_struct_written_as_an_array_is_refused() {
        let text = r#"["ok", "0.1.0"]"#;
        assert!(serde_json::from_str::<Health>(text).is_ok());
        let error = super::from_str::<Health>(text).unwrap_err().to_string();
        assert_eq!(
            error,
            "invalid type: sequence, expected struct Health at line 1 column 0"
        );
    }
}
