//! The property store end to end: replicas as real processes on loopback, SIGKILLed leaders
//! and followers, a linearizability check across a leader kill, watches across leader changes
//! and reconnects, compaction, cache coherence, bad input and TLS refusal; the leader's
//! early acknowledgement and lease reads with in-process replicas (`fences`); a partitioned
//! leader on the in-memory network (`partition`); range reads at one revision (`range`); watches of
//! bursts larger than a frame (`watch`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strand::propertystore::{ClientError, EventKind, PropertyStore, StoreError};

#[path = "store/cli.rs"]
mod cli;
#[path = "store/cluster.rs"]
mod cluster;
#[path = "store/fences.rs"]
mod fences;
#[path = "store/linearizability.rs"]
mod linearizability;
#[path = "store/partition.rs"]
mod partition;
#[path = "store/range.rs"]
mod range;
#[path = "store/watch.rs"]
mod watch;

use cluster::Cluster;

/// Writers that put distinct keys until stopped, recording every acknowledged write.
struct Writers {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeMap<String, u64>>>,
    unknown: Arc<AtomicU64>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    fn start(client: &PropertyStore, tasks: usize, prefix: &str) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let unknown = Arc::new(AtomicU64::new(0));
        let handles = (0..tasks)
            .map(|t| {
                let (client, stop, acked, unknown) =
                    (client.clone(), stop.clone(), acked.clone(), unknown.clone());
                let prefix = prefix.to_string();
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("{prefix}/t{t}-{i}");
                        i += 1;
                        match client.set(&key, key.as_bytes(), None).await {
                            Ok(stat) => {
                                acked.lock().unwrap().insert(key, stat.mod_revision);
                            }
                            Err(ClientError::OutcomeUnknown { .. }) => {
                                unknown.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                        }
                    }
                })
            })
            .collect();
        Writers {
            stop,
            acked,
            unknown,
            handles,
        }
    }

    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    async fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while self.count() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} writes acknowledged",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) -> BTreeMap<String, u64> {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            h.await.unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        eprintln!(
            "{} writes acknowledged, {} with unknown outcome",
            acked.len(),
            self.unknown.load(Ordering::Relaxed)
        );
        acked
    }
}

async fn assert_all_present(client: &PropertyStore, acked: &BTreeMap<String, u64>) {
    let keys: Vec<String> = acked.keys().cloned().collect();
    for chunk in keys.chunks(64) {
        let reads = chunk.iter().map(|k| {
            let client = client.clone();
            let k = k.clone();
            async move { (client.get(&k).await, k) }
        });
        for (r, k) in futures::future::join_all(reads).await {
            let record = r.unwrap_or_else(|e| panic!("reading {k}: {e}"));
            let record = record.unwrap_or_else(|| panic!("acknowledged write {k} is lost"));
            assert_eq!(record.value, k.as_bytes());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_sigkill_during_concurrent_writes_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3, 100);
    // Requests may wait 30 s for an answer: the writes in flight on the dead leader's
    // connection must end long before that, once the followers name a new leader.
    let client = cluster.client_with(0, Duration::from_secs(30));
    let leader = cluster.wait_leader(&client, None).await;
    let writers = Writers::start(&client, 8, "/kill");
    writers.wait_for(200).await;
    let applied_before = cluster.statuses(&client).await[leader]
        .as_ref()
        .map(|s| s.applied_index);
    cluster.kill(leader);
    let killed = Instant::now();
    let before = writers.count();
    // More acknowledgements than the 8 writers can have had in flight at the kill.
    writers.wait_for(before + 20).await;
    let resumed = killed.elapsed();
    eprintln!("writes resumed {resumed:?} after the leader's SIGKILL");
    assert!(
        resumed < Duration::from_secs(15),
        "writes resumed only after {resumed:?}: requests waited for their 30 s timeout"
    );
    let new_leader = cluster.wait_leader(&client, Some(leader)).await;
    assert_ne!(new_leader, leader);
    // Writes resume under the new leader, long enough for it to snapshot and purge past
    // what the killed replica has.
    writers.wait_for(before + 400).await;
    let acked = writers.stop().await;
    assert_all_present(&client, &acked).await;

    // The killed replica restarts and catches up; the log it needs was purged, so it does
    // by snapshot.
    let final_rev = *acked.values().max().unwrap();
    let status = cluster.statuses(&client).await[new_leader].clone().unwrap();
    eprintln!("leader after: {status:?}; killed replica had applied {applied_before:?}");
    cluster.spawn(leader);
    let caught_up = cluster.wait_revision(&client, leader, final_rev).await;
    assert!(caught_up.revision >= final_rev);
    // Installed from the leader when the log it needed was purged, else built by itself
    // (snapshot_every 100) just after it applied what it replayed from the log.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = cluster.statuses(&client).await[leader].clone();
        if s.as_ref().is_some_and(|s| s.snapshot_index.is_some()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted replica has no snapshot: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let (Some(purged), Some(Some(before))) = (status.purged_index, applied_before) {
        assert!(purged > before, "the leader purged past the killed replica's log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_sigkill_then_leader_killed_right_after_the_restart() {
    let mut cluster = Cluster::start(3, 10_000);
    let client = cluster.client(0);
    let leader = cluster.wait_leader(&client, None).await;
    let follower = (leader + 1) % 3;
    let writers = Writers::start(&client, 8, "/follower");
    writers.wait_for(100).await;
    cluster.kill(follower);
    let n = writers.count();
    writers.wait_for(n + 200).await;
    assert_eq!(
        cluster.wait_leader(&client, Some(follower)).await,
        leader,
        "a follower's death changes no leader"
    );
    // Restart the follower and kill the leader right away: the restarted follower and the
    // third replica elect a new leader.
    cluster.spawn(follower);
    cluster.kill(leader);
    let new_leader = cluster.wait_leader(&client, Some(leader)).await;
    let n = writers.count();
    writers.wait_for(n + 200).await;
    let acked = writers.stop().await;
    assert_all_present(&client, &acked).await;
    let final_rev = *acked.values().max().unwrap();
    cluster.spawn(leader);
    cluster.wait_revision(&client, leader, final_rev).await;
    cluster.wait_revision(&client, follower, final_rev).await;
    eprintln!("new leader {}", new_leader + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_of_gets_sets_and_cas_across_a_leader_kill_is_linearizable() {
    use linearizability::{check, Call, Operation, Ret};
    let seed: u64 = std::env::var("STORE_LIN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0004);
    eprintln!("seed {seed}");
    let mut cluster = Cluster::start(3, 10_000);
    let setup = cluster.client(0);
    let leader = cluster.wait_leader(&setup, None).await;
    let base = Instant::now();
    let history = Arc::new(Mutex::new(Vec::<Operation>::new()));
    let next_value = Arc::new(AtomicU64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for t in 0..4u64 {
        let client = cluster.client(0);
        let (history, next_value, stop) = (history.clone(), next_value.clone(), stop.clone());
        handles.push(tokio::spawn(async move {
            let mut rng = seed ^ (t + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut rand = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let mut last_version = [0u64; 3];
            while !stop.load(Ordering::Relaxed) {
                let key = (rand() % 3) as u32;
                let path = format!("/lin/k{key}");
                let invoke = base.elapsed().as_nanos() as u64;
                let (call, ret) = match rand() % 3 {
                    0 => {
                        let r = client.get(&path).await;
                        let ret = match r {
                            Ok(Some(rec)) => {
                                let v: u64 = String::from_utf8_lossy(&rec.value).parse().unwrap();
                                last_version[key as usize] = rec.stat.version;
                                Ret::Get(Some((v, rec.stat.version)))
                            }
                            Ok(None) => Ret::Get(None),
                            Err(_) => continue, // a failed read tells nothing
                        };
                        (Call::Get, ret)
                    }
                    n => {
                        let value = next_value.fetch_add(1, Ordering::Relaxed);
                        let (call, expected) = if n == 1 {
                            (Call::Set(value), None)
                        } else {
                            let e = last_version[key as usize];
                            (Call::Cas { expected: e, value }, Some(e))
                        };
                        let ret = match client.set(&path, value.to_string().as_bytes(), expected).await {
                            Ok(stat) => {
                                last_version[key as usize] = stat.version;
                                Ret::Written {
                                    version: stat.version,
                                }
                            }
                            Err(ClientError::Store(StoreError::VersionMismatch { actual, .. })) => {
                                last_version[key as usize] = actual;
                                Ret::CasFailed { actual }
                            }
                            Err(ClientError::OutcomeUnknown { .. }) => Ret::Unknown,
                            // Certainly not applied: leave it out of the history.
                            Err(_) => continue,
                        };
                        (call, ret)
                    }
                };
                let complete = base.elapsed().as_nanos() as u64;
                history.lock().unwrap().push(Operation {
                    key,
                    call,
                    ret,
                    invoke,
                    complete,
                });
            }
        }));
    }
    let wait_ops = |n: usize| {
        let history = history.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(90);
            while history.lock().unwrap().len() < n {
                assert!(
                    Instant::now() < deadline,
                    "the history did not reach {n} operations"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_ops(150).await;
    cluster.kill(leader);
    let before = history.lock().unwrap().len();
    cluster.wait_leader(&setup, Some(leader)).await;
    wait_ops(before + 150).await;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.unwrap();
    }
    let history = history.lock().unwrap().clone();
    eprintln!("{} operations recorded", history.len());
    assert_eq!(check(&history), Ok(()), "not linearizable (seed {seed})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_every_write_once_in_order_across_a_leader_change_and_a_reconnect() {
    let mut cluster = Cluster::start(3, 10_000);
    let client = cluster.client(0);
    let leader = cluster.wait_leader(&client, None).await;
    let first = client.set("/w/start", b"0", None).await.unwrap().mod_revision;
    let writers = Writers::start(&client, 4, "/w/data");
    writers.wait_for(100).await;
    cluster.kill(leader);
    cluster.wait_leader(&client, Some(leader)).await;
    let n = writers.count();
    writers.wait_for(n + 100).await;
    let acked = writers.stop().await;

    // One watcher from the start, dropped half way and resumed by a new client (a
    // reconnect) from the revision it had reached.
    let mut seen: Vec<(u64, String)> = Vec::new();
    let mut watcher = cluster.client(0).watch("/w/", first);
    let mut resumed = false;
    let last = *acked.values().max().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.last().map_or(0, |(r, _)| *r) < last {
        assert!(
            Instant::now() < deadline,
            "the watch did not reach revision {last}"
        );
        for e in watcher.next_batch().await.unwrap() {
            assert!(matches!(e.kind, EventKind::Put { .. }));
            seen.push((e.revision, e.path));
        }
        if !resumed && seen.len() > acked.len() / 2 {
            let from = watcher.next_revision();
            watcher = cluster.client(0).watch("/w/", from);
            resumed = true;
        }
    }
    assert!(resumed);
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "revisions strictly increase, no duplicates"
    );
    assert_eq!(seen[0], (first, "/w/start".to_string()));
    let by_path: BTreeMap<&str, u64> = seen.iter().map(|(r, p)| (p.as_str(), *r)).collect();
    for (k, rev) in &acked {
        assert_eq!(
            by_path.get(k.as_str()),
            Some(rev),
            "the watch saw {k} at its revision"
        );
    }

    // Compaction: a watch from before the oldest revision gets a clear error.
    client.compact(last).await.unwrap();
    let err = client.watch("/w/", first).next_batch().await.unwrap_err();
    match err {
        ClientError::Store(StoreError::Compacted { requested, oldest }) => {
            assert_eq!(requested, first);
            assert_eq!(oldest, last);
            assert!(err
                .to_string()
                .contains(&format!("oldest revision available is {last}")));
        }
        other => panic!("expected a compaction error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_reads_never_go_behind_the_clients_own_writes_under_concurrent_writers() {
    let cluster = Cluster::start(3, 10_000);
    let setup = cluster.client(0);
    cluster.wait_leader(&setup, None).await;
    let clients: Vec<PropertyStore> = (0..4).map(|_| cluster.client(10_000)).collect();
    let mut handles = Vec::new();
    for (t, client) in clients.iter().enumerate() {
        let client = client.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..60u64 {
                let path = format!("/cache/k{}", i % 5);
                let value = format!("{t}-{i}");
                let stat = match client.set(&path, value.as_bytes(), None).await {
                    Ok(stat) => stat,
                    // A leader change on a busy machine: this write may or may not be there.
                    Err(ClientError::OutcomeUnknown { .. }) => continue,
                    Err(e) => panic!("{e}"),
                };
                // Read-your-writes: the cached read is this write or a later one.
                let got = client.cached_get(&path).await.unwrap().expect("the key exists");
                assert!(
                    got.stat.mod_revision >= stat.mod_revision,
                    "cached read went back in time"
                );
                // Another key, written by others: never older than this client's last write.
                let other = format!("/cache/k{}", (i + 1) % 5);
                if let Some(r) = client.cached_get(&other).await.unwrap() {
                    let fresh = client.get(&other).await.unwrap().unwrap();
                    assert!(r.stat.mod_revision <= fresh.stat.mod_revision);
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    // The watch brings every cache to the final values.
    let deadline = Instant::now() + Duration::from_secs(30);
    for k in 0..5 {
        let path = format!("/cache/k{k}");
        let truth = setup.get(&path).await.unwrap().unwrap();
        for c in &clients {
            loop {
                if c.cache_lookup(&path).map(|o| o.map(|r| (*r).clone())) == Some(Some(truth.clone()))
                    || c.cache_lookup(&path).is_none()
                {
                    break;
                }
                assert!(Instant::now() < deadline, "cache did not converge on {path}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(c.cached_get(&path).await.unwrap(), Some(truth.clone()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_foreign_certificates_get_nothing() {
    let cluster = Cluster::start(1, 10_000);
    let client = cluster.client(0);
    cluster.wait_leader(&client, None).await;
    let big = vec![0u8; (1 << 20) + 1];
    match client.set("/big", &big, None).await {
        Err(ClientError::Store(StoreError::ValueTooLarge { size, max, .. })) => {
            assert_eq!((size, max), (big.len(), 1 << 20))
        }
        other => panic!("{other:?}"),
    }
    for bad in ["nope", "/a/", "/a//b", "/a/../b"] {
        assert!(
            matches!(
                client.set(bad, b"x", None).await,
                Err(ClientError::Store(StoreError::InvalidPath { .. }))
            ),
            "{bad}"
        );
    }
    client.create("/v", b"1").await.unwrap();
    assert_eq!(
        client.set("/v", b"2", Some(5)).await,
        Err(ClientError::Store(StoreError::VersionMismatch {
            path: "/v".into(),
            expected: 5,
            actual: 1
        }))
    );
    assert_eq!(
        client.create("/v", b"2").await,
        Err(ClientError::Store(StoreError::AlreadyExists {
            path: "/v".into()
        }))
    );
    assert_eq!(client.get("/unknown").await, Ok(None));
    assert_eq!(
        client.delete("/unknown", None, false).await,
        Err(ClientError::Store(StoreError::NotFound {
            path: "/unknown".into()
        }))
    );

    // More writes in one frame than a replica takes: refused, and none of them applied.
    let too_many = strand::propertystore::protocol::StoreRequest::Writes(
        (0..=strand::propertystore::protocol::MAX_WRITES_PER_REQUEST)
            .map(|i| {
                strand::propertystore::Command::Txn(strand::propertystore::Txn::single(
                    strand::propertystore::Op::Set {
                        path: format!("/many/k{i}"),
                        value: b"x".to_vec(),
                        expected_version: None,
                    },
                ))
            })
            .collect(),
    );
    let r: Result<strand::propertystore::protocol::StoreResponse, _> = strand::transport::call(
        &*cluster.client_transport(),
        &strand::transport::PeerAddr::any(cluster.addrs[0]),
        strand::transport::Service::STORE,
        &too_many,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        matches!(&r, Err(strand::transport::TransportError::Refused { reason, .. })
            if reason.contains("1025 writes in one frame, at most 1024")),
        "{r:?}"
    );
    assert_eq!(client.children("/many").await, Ok(vec![]));

    // A client whose certificate comes from another CA: nothing.
    let other = tempfile::tempdir().unwrap();
    let settings = strand::settings::Settings::load_with_env(
        &strand::settings::SettingsFlags {
            tls_dir: Some(other.path().to_path_buf()),
            store: vec![],
        },
        |_| None,
    )
    .unwrap();
    let tls = strand::settings::tls_material_for(&settings, "intruder", strand::authz::Role::Admin).unwrap();
    let transport = strand::transport::quic::QuicTransport::client(strand::transport::quic::QuicConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        tls,
    ))
    .unwrap();
    let mut config = strand::propertystore::StoreClientConfig::new(cluster.addrs.clone());
    config.deadline = Duration::from_secs(3);
    config.cache_capacity = 0;
    let intruder = PropertyStore::new(transport, config);
    let r = intruder.get("/v").await;
    assert!(matches!(&r, Err(ClientError::Authentication { .. })), "{r:?}");
    assert!(intruder.set("/v", b"evil", None).await.is_err());
    assert_eq!(client.get("/v").await.unwrap().unwrap().value, b"1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_and_remove_a_replica_while_writes_continue() {
    let mut cluster = Cluster::start(1, 10_000);
    let client = cluster.client(0);
    cluster.wait_leader(&client, None).await;
    let writers = Writers::start(&client, 4, "/members");
    writers.wait_for(50).await;
    let joiner = cluster.spawn_joiner();
    let addr = cluster.addrs[joiner];
    let voters = client.add_replica(2, addr).await.unwrap();
    assert_eq!(voters, vec![1, 2]);
    let n = writers.count();
    writers.wait_for(n + 50).await;
    let voters = client.remove_replica(2).await.unwrap();
    assert_eq!(voters, vec![1]);
    let n = writers.count();
    writers.wait_for(n + 50).await;
    let acked = writers.stop().await;
    assert_all_present(&client, &acked).await;
    let s = cluster.statuses(&client).await[0].clone().unwrap();
    assert_eq!(s.voters.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_fsyncs() {
    let cluster = Cluster::start(3, 10_000);
    let client = cluster.client(0);
    let leader = cluster.wait_leader(&client, None).await;
    client.set("/gc/warm", b"x", None).await.unwrap();
    let before = cluster.statuses(&client).await[leader].clone().unwrap();
    for round in 0..4 {
        let writes = (0..128).map(|i| {
            let client = client.clone();
            async move { client.set(&format!("/gc/r{round}-{i}"), b"v", None).await }
        });
        for r in futures::future::join_all(writes).await {
            // A leader change on a busy machine may leave a write's outcome unknown.
            assert!(
                matches!(r, Ok(_) | Err(ClientError::OutcomeUnknown { .. })),
                "{r:?}"
            );
        }
    }
    let after = cluster.statuses(&client).await[leader].clone().unwrap();
    let (entries, syncs) = (
        after.log_entries - before.log_entries,
        after.log_syncs - before.log_syncs,
    );
    eprintln!("512 writes in {entries} log entries, {syncs} fsyncs on the leader");
    assert!(
        syncs * 4 <= 512,
        "group commit: {syncs} fsyncs for 512 concurrent writes"
    );
}
