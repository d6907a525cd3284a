//! The property store's state machine in this process, without Raft or the network:
//! `store_core_apply` applies single-key sets to the pure core's in-memory reference
//! (`MemKv`, no disk); `store_rocksdb_apply` applies the same sets through the RocksDB state
//! machine (`storage::StateMachine::apply`, one write batch per log entry of 1 or 64 sets, in
//! a temp directory; the state machine writes with its WAL off and no fsync, as it does in a
//! replica, where the Raft log is the durable record: the log's fsync is measured by
//! `strand bench store`); `store_codec` encodes and decodes a command for the log.
//! `cargo bench --bench store`. End-to-end figures (replicas as processes, fsync on) come from
//! `strand bench store --json`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use strand::propertystore::core::{Batch, Command, MemKv, Op, Txn};
use strand::propertystore::storage::{Db, StateMachine};
use strand::propertystore::TypeConfig;

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

fn rocksdb_apply(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let mut g = c.benchmark_group("store_rocksdb_apply");
    for per_entry in [1u64, 64] {
        g.throughput(Throughput::Elements(per_entry));
        g.bench_with_input(
            BenchmarkId::new("set_256", per_entry),
            &per_entry,
            |b, &per_entry| {
                let dir = tempfile::tempdir().expect("a temp dir");
                let db = Db::open(dir.path()).expect("RocksDB opens");
                let mut sm = StateMachine::new(db, 1000).expect("a state machine");
                let mut index = 0u64;
                b.iter(|| {
                    index += 1;
                    let cmds = (0..per_entry)
                        .map(|j| set((index * per_entry + j) % 10_000, 256))
                        .collect();
                    let entry: Entry<TypeConfig> = Entry {
                        log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
                        payload: EntryPayload::Normal(Batch(cmds)),
                    };
                    rt.block_on(sm.apply([entry])).expect("applies")
                });
            },
        );
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

criterion_group!(benches, apply, rocksdb_apply, codec);
criterion_main!(benches);
