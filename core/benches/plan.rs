//! Time to plan a layout change over 1,000,000 keys (`user_0` …), key
//! generation and hashing included: `cargo bench -p ecoshard-core --bench plan`.
//! `ring placed` is the ring's change placed over two clusters, with the
//! moves between clusters counted: what placement adds to a plan.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ecoshard_core::{Layout, StrategyKind, plan_numbered};

const KEYS: usize = 1_000_000;

fn plans(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan 1M keys 3->4");
    group.sample_size(10);
    for strategy in StrategyKind::ALL {
        let old = Layout::with_count(strategy, 3)
            .and_then(|l| l.build())
            .expect("valid");
        let new = Layout::with_count(strategy, 4)
            .and_then(|l| l.build())
            .expect("valid");
        group.bench_function(strategy.name(), |b| {
            b.iter(|| plan_numbered(&old, &new, "user_", black_box(KEYS)).moved)
        });
    }
    let placed = |count| {
        Layout::with_count(StrategyKind::Ring, count)
            .and_then(|l| l.placed(&["c1", "c2"]))
            .and_then(|l| l.build())
            .expect("valid")
    };
    let (old, new) = (placed(3), placed(4));
    group.bench_function("ring placed", |b| {
        b.iter(|| {
            plan_numbered(&old, &new, "user_", black_box(KEYS))
                .cluster_moves()
                .across
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(4));
    targets = plans
}
criterion_main!(benches);
