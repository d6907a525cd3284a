//! Membership costs: the member table's reconciliation after each foca interaction, and
//! the CPU a simulated cluster needs per second of (paused, virtual) time.
//!
//! `cargo bench --bench membership` (release build). Seeded: the same run every time.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use foca::{Member, State};
use strand::membership::view::MemberTable;
use strand::membership::{Membership, MembershipConfig, NodeId, Status};
use strand::transport::mem::MemNetwork;
use strand::transport::Transport;

fn members(n: usize) -> Vec<Member<NodeId>> {
    (0..n)
        .map(|i| {
            let addr = format!("127.0.0.1:{}", 10_000 + i).parse().expect("addr");
            Member::new(NodeId::new(format!("n{i}"), addr, 100), 0, State::Alive)
        })
        .collect()
}

fn reconcile(c: &mut Criterion) {
    let mut g = c.benchmark_group("membership/reconcile");
    for n in [5usize, 100, 1000] {
        let list = members(n);
        let mut table = MemberTable::new();
        table.reconcile(list.iter(), 0);
        g.bench_with_input(BenchmarkId::from_parameter(n), &list, |b, list| {
            b.iter(|| table.reconcile(list.iter(), 1).len())
        });
    }
    g.finish();
}

/// `n` members joined through the first one, then one second of virtual time.
fn simulate(n: usize, seed: u64) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let net = MemNetwork::new(seed);
        let mut nodes: Vec<Membership> = Vec::new();
        let mut seed_addr = None;
        for i in 0..n {
            let t = net.endpoint(&format!("n{i}"));
            let addr = t.local_addr();
            let m = Membership::builder(t)
                .seeds(seed_addr)
                .generation(1)
                .config(MembershipConfig::lan())
                .rng_seed(seed + i as u64)
                .start()
                .expect("start");
            seed_addr.get_or_insert(addr);
            nodes.push(m);
        }
        let all = nodes[0]
            .wait_until(Duration::from_secs(30), |rows| {
                rows.iter().filter(|r| r.status == Status::Alive).count() == n
            })
            .await;
        assert!(all, "the simulated cluster did not form");
        tokio::time::sleep(Duration::from_secs(1)).await;
        nodes.iter().map(|m| m.members().len()).sum()
    })
}

fn simulated_cluster(c: &mut Criterion) {
    let mut g = c.benchmark_group("membership/simulated_cluster_join_and_1s");
    g.sample_size(10);
    for n in [5usize, 20] {
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| simulate(n, 7))
        });
    }
    g.finish();
}

criterion_group!(benches, reconcile, simulated_cluster);
criterion_main!(benches);
