//! The property store end to end: replicas as real processes on loopback, SIGKILLed leaders
//! and followers, a linearizability check across a leader kill, watches across leader changes
//! and reconnects, compaction, cache coherence, bad input and TLS refusal; the leader's
//! early acknowledgement and lease reads with in-process replicas (`fences`); a partitioned
//! leader on the in-memory network (`partition`); the leaderless confirmation of a record by a
//! majority of voters (`confirm`); range reads at one revision (`range`); watches of
//! bursts larger than a frame (`watch`); a data directory of format version 1 read back, and
//! unknown versions refused (`fixture`); a SIGKILL in the middle of a snapshot (`snapshots`);
//! requests past a replica's limit waiting for a slot and answered in turn (`busy`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strand::propertystore::{ClientError, EventKind, PropertyStore, StoreError};

#[path = "store/busy.rs"]
mod busy;
#[path = "store/cli.rs"]
mod cli;
#[path = "store/cluster.rs"]
mod cluster;
#[path = "store/confirm.rs"]
mod confirm;
#[path = "store/fences.rs"]
mod fences;
#[path = "store/fixture.rs"]
mod fixture;
#[path = "store/full_disk.rs"]
mod full_disk;
#[path = "store/linearizability.rs"]
mod linearizability;
#[path = "store/partition.rs"]
mod partition;
#[path = "store/range.rs"]
mod range;
#[path = "store/snapshots.rs"]
mod snapshots;
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
async fn watch_sees_every_write_once_in_order_across_a_leader_change_and_a_reconnect() {
    let mut cluster = Cluster::start(3, 10_000);
    let client = cluster.client(0);
    let leader = cluster.wait_leader(&client, None).await;
    let first = client.set("/w/start", b"0", None).await.unwrap().mod_revision;

    // One watcher from the start, running while the writes go on and the leader dies; it is
    // dropped once it has seen 50 events and resumed by a new client (a reconnect) from the
    // revision it had reached.
    let seen: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let until = Arc::new(AtomicU64::new(u64::MAX));
    let reconnected = Arc::new(AtomicBool::new(false));
    let watch_task = {
        let (seen, until, reconnected) = (seen.clone(), until.clone(), reconnected.clone());
        let fresh = cluster.client(0);
        let mut watcher = cluster.client(0).watch("/w/", first);
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            while seen.lock().unwrap().last().map_or(0, |(r, _)| *r) < until.load(Ordering::Acquire) {
                assert!(
                    Instant::now() < deadline,
                    "the watch did not reach the last write"
                );
                let batch = match tokio::time::timeout(Duration::from_millis(200), watcher.next_batch()).await
                {
                    Ok(b) => b.unwrap(),
                    Err(_) => continue,
                };
                let n = {
                    let mut seen = seen.lock().unwrap();
                    for e in batch {
                        assert!(matches!(e.kind, EventKind::Put { .. }));
                        seen.push((e.revision, e.path));
                    }
                    seen.len()
                };
                if !reconnected.load(Ordering::Relaxed) && n >= 50 {
                    let from = watcher.next_revision();
                    watcher = fresh.watch("/w/", from);
                    reconnected.store(true, Ordering::Relaxed);
                }
            }
        })
    };
    let writers = Writers::start(&client, 4, "/w/data");
    writers.wait_for(100).await;
    // The watcher is live before the kill, and sees writes made after it while the writers
    // still run.
    let last_seen = || seen.lock().unwrap().last().map_or(0, |(r, _)| *r);
    let wait_seen = |revision: u64| async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        while last_seen() <= revision {
            assert!(
                Instant::now() < deadline,
                "the watcher is stuck before revision {revision}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    wait_seen(first).await;
    let at_kill = seen.lock().unwrap().len();
    let acked_at_kill = writers.acked.lock().unwrap().values().copied().max().unwrap();
    cluster.kill(leader);
    cluster.wait_leader(&client, Some(leader)).await;
    let n = writers.count();
    writers.wait_for(n + 100).await;
    wait_seen(acked_at_kill).await;
    let at_stop = seen.lock().unwrap().len();
    let acked = writers.stop().await;
    let last = *acked.values().max().unwrap();
    until.store(last, Ordering::Release);
    watch_task.await.unwrap();
    let seen = seen.lock().unwrap().clone();
    eprintln!(
        "{at_kill} events seen at the kill, {at_stop} when the writers stopped, {} in all",
        seen.len()
    );
    assert!(
        at_kill > 0 && at_stop > at_kill,
        "the watcher saw events before the kill and between the kill and the end of the writes"
    );
    assert!(reconnected.load(Ordering::Relaxed));
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
    let start = setup.set("/start", b"0", None).await.unwrap().mod_revision;
    let clients: Vec<PropertyStore> = (0..4).map(|_| cluster.client(10_000)).collect();
    // Each cached read of another key: (key, what it returned, the revision of the client's
    // own last write before it).
    let reads: Arc<Mutex<Vec<(String, strand::propertystore::Record, u64)>>> = Arc::default();
    let mut handles = Vec::new();
    for (t, client) in clients.iter().enumerate() {
        let client = client.clone();
        let reads = reads.clone();
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
                // Another key, written by others: checked below against the store's history.
                let other = format!("/cache/k{}", (i + 1) % 5);
                if let Some(r) = client.cached_get(&other).await.unwrap() {
                    reads.lock().unwrap().push((other, r, stat.mod_revision));
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    // Every write to the keys, from the store's own history (nothing is compacted).
    let last = setup.set("/end", b"0", None).await.unwrap().mod_revision;
    let mut writes: BTreeMap<String, Vec<(u64, Vec<u8>)>> = BTreeMap::new();
    let mut watcher = setup.watch("/cache/", start);
    while watcher.next_revision() <= last {
        for e in watcher.next_batch().await.unwrap() {
            if let EventKind::Put { value, .. } = e.kind {
                writes.entry(e.path).or_default().push((e.revision, value));
            }
        }
    }
    // A cached read of another key returns a value the key really had, and one no older than
    // the state at the client's own last write: no write to that key lies between the
    // value's revision and that write.
    let reads = reads.lock().unwrap().clone();
    assert!(!reads.is_empty());
    for (path, r, floor) in &reads {
        let history = &writes[path];
        assert!(
            history.contains(&(r.stat.mod_revision, r.value.clone())),
            "{path}: the cached value was never written at revision {}",
            r.stat.mod_revision
        );
        let newer = history
            .iter()
            .find(|(rev, _)| *rev > r.stat.mod_revision && *rev <= *floor);
        assert!(
            newer.is_none(),
            "{path}: the cached read returned revision {} though revision {} was written before \
             the client's own write at {floor}",
            r.stat.mod_revision,
            newer.unwrap().0
        );
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
    let mut acked = Vec::new();
    for round in 0..4 {
        let writes = (0..128).map(|i| {
            let client = client.clone();
            let path = format!("/gc/r{round}-{i}");
            async move { (client.set(&path, b"v", None).await, path) }
        });
        for (r, path) in futures::future::join_all(writes).await {
            match r {
                Ok(_) => acked.push(path),
                // A leader change on a busy machine may leave a write's outcome unknown.
                Err(ClientError::OutcomeUnknown { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
    let after = cluster.statuses(&client).await[leader].clone().unwrap();
    assert_eq!(
        after.role, "leader",
        "the leader changed during the writes: its fsync count says nothing of group commit"
    );
    let (entries, syncs) = (
        after.log_entries - before.log_entries,
        after.log_syncs - before.log_syncs,
    );
    eprintln!(
        "{} of 512 writes acknowledged in {entries} log entries, {syncs} fsyncs on the leader",
        acked.len()
    );
    // The ratio means something only if the writes happened: most were acknowledged, each
    // is readable, and the leader's log grew and was synced.
    assert!(
        acked.len() >= 256,
        "only {} of 512 writes acknowledged",
        acked.len()
    );
    for path in &acked {
        assert_eq!(
            client.get(path).await.unwrap().map(|r| r.value),
            Some(b"v".to_vec())
        );
    }
    assert!(
        entries >= 1 && syncs >= 1,
        "{entries} log entries, {syncs} fsyncs"
    );
    assert!(
        syncs * 4 <= acked.len() as u64,
        "group commit: {syncs} fsyncs for {} concurrent writes",
        acked.len()
    );
}
