//! The property store's pure core and its RocksDB state machine, in this process:
//! applying single-key sets to the in-memory reference, and encoding commands for the log.
//! `cargo bench --bench store`. End-to-end figures (replicas as processes, fsync on) come from
//! `strand bench store --json`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strand::propertystore::core::{Command, MemKv, Op, Txn};

fn set(i: u64, size: usize) -> Command {
    Command::Txn(Txn::single(Op::Set {
        path: format!("/bench/k{i}"),
        value: vec![b'v'; size],
        expected_version: None,
    }))
}

fn apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("store_core_apply");
    for size in [16usize, 256, 4096] {
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("set", size), &size, |b, &size| {
            let mut kv = MemKv::default();
            let mut i = 0u64;
            b.iter(|| {
                i += 1;
                kv.apply(&set(i % 10_000, size), 1000).expect("set applies")
            });
        });
    }
    g.finish();
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("store_codec");
    let cmd = set(42, 256);
    g.bench_function("encode_set_256", |b| {
        b.iter(|| strand::codec::encode(&cmd).expect("encodes"))
    });
    let bytes = strand::codec::encode(&cmd).expect("encodes");
    g.bench_function("decode_set_256", |b| {
        b.iter(|| strand::codec::decode::<Command>(&bytes).expect("decodes"))
    });
    g.finish();
}

criterion_group!(benches, apply, codec);
criterion_main!(benches);
