//! FULL_AUTO placement: full placement from empty, and recomputation after one instance
//! leaves or joins (`strand bench rebalance` prints balance and movement for the same
//! scenarios). Inputs are fixed, so every run measures the same work.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use strand::cli::bench::rebalance::Scenario;

fn full(c: &mut Criterion) {
    let mut g = c.benchmark_group("placement_full");
    g.sample_size(10);
    for (p, r, i) in [(1_000, 3, 10), (10_000, 3, 100), (100_000, 3, 1_000)] {
        let sc = Scenario::new(p, r, i);
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{p}x{r}x{i}")),
            &sc,
            |b, sc| b.iter(|| sc.full()),
        );
    }
    g.finish();
}

fn recompute(c: &mut Criterion) {
    let mut g = c.benchmark_group("placement_recompute");
    g.sample_size(10);
    for (p, r, i) in [(10_000, 3, 100), (100_000, 3, 1_000)] {
        let sc = Scenario::new(p, r, i);
        let before = sc.full();
        let (rest, _) = sc.after_leave();
        let more = sc.after_join();
        let id = format!("{p}x{r}x{i}");
        g.bench_function(BenchmarkId::new("leave", &id), |b| {
            b.iter(|| sc.place_on(&rest, &before.preference_lists))
        });
        g.bench_function(BenchmarkId::new("join", &id), |b| {
            b.iter(|| sc.place_on(&more, &before.preference_lists))
        });
    }
    g.finish();
}

criterion_group!(benches, full, recompute);
criterion_main!(benches);
