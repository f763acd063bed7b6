//! Time to build the costliest layouts the validation bounds allow (a ring of
//! `MAX_RING_POINTS` points, Maglev tables at `MAX_MAGLEV_COST`), the figures
//! behind the bounds in the crate docs: `cargo bench -p ecoshard-core --bench build`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ecoshard_core::{Layout, MAX_VNODES, Shard, StrategyKind};

fn layouts() -> Vec<(&'static str, Layout)> {
    let maglev = |count: usize, table_size: u32| {
        Layout::new(StrategyKind::Maglev, Shard::numbered(count)).with_table_size(table_size)
    };
    let mut skewed = maglev(256, 78_121);
    for shard in skewed.shards.iter_mut().skip(1) {
        shard.weight = 1e-6;
    }
    vec![
        ("maglev 16,777,213 x 1", maglev(1, 16_777_213)),
        ("maglev 9,999,991 x 2", maglev(2, 9_999_991)),
        ("maglev 78,121 x 256", maglev(256, 78_121)),
        ("maglev 78,121 x 256, 255 of weight 1e-6", skewed),
        (
            "ring 1,024 x 4,096 points",
            Layout::with_count(StrategyKind::Ring, 1_024)
                .expect("valid count")
                .with_vnodes(MAX_VNODES),
        ),
        (
            "bounded-load 1,024 x 4,096 points",
            Layout::with_count(StrategyKind::BoundedLoad, 1_024)
                .expect("valid count")
                .with_vnodes(MAX_VNODES),
        ),
    ]
}

fn builds(c: &mut Criterion) {
    let mut group = c.benchmark_group("build at the bound");
    group.sample_size(10);
    for (name, layout) in layouts() {
        layout.validate().expect("inside the bounds");
        group.bench_function(name, |b| b.iter(|| layout.build().expect("valid")));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(4));
    targets = builds
}
criterion_main!(benches);
