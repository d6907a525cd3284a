//! FULL_AUTO placement: full placement from empty, and recomputation after one instance
//! leaves or joins; and whole pipeline rounds (`rebalance::compute`) on a steady cluster and
//! after one instance fails, and the incremental `rebalance::Engine::round` on the steady
//! cluster. First prints one JSON line per placement size with balance and
//! movement against the minimum (the same report as `strand bench rebalance --json`), then
//! runs the criterion groups. Inputs are fixed, so every run measures the same work.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use strand::cli::bench::rebalance::{run_scenario, RoundScenario, Scenario, DEFAULT_SIZES, PIPELINE_SIZES};
use strand::rebalance::{compute, Engine};

fn report(_: &mut Criterion) {
    for (p, r, i) in DEFAULT_SIZES {
        match serde_json::to_string(&run_scenario(p, r, i, 1)) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("report {p}x{r}x{i}: {e}"),
        }
    }
}

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

fn pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline_round");
    g.sample_size(10);
    for (p, r, i) in PIPELINE_SIZES {
        let sc = RoundScenario::new(p, r, i, 10);
        let id = format!("{p}x{r}x{i}");
        g.bench_function(BenchmarkId::new("steady", &id), |b| {
            b.iter(|| compute(&sc.steady))
        });
        g.bench_function(BenchmarkId::new("after_failure", &id), |b| {
            b.iter(|| compute(&sc.after_failure))
        });
        g.bench_function(BenchmarkId::new("in_flight", &id), |b| {
            b.iter(|| compute(&sc.in_flight))
        });
        // The controller's incremental round with nothing changed since the last one.
        let mut engine = Engine::new();
        engine.round(&sc.steady).expect("the bench cluster is valid");
        g.bench_function(BenchmarkId::new("engine_steady", &id), |b| {
            b.iter(|| engine.round(&sc.steady).map(|d| d.moved))
        });
    }
    g.finish();
}

criterion_group!(benches, report, full, recompute, pipeline);
criterion_main!(benches);
