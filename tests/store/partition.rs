//! A partitioned leader with the lease: three replicas on the in-memory network, the leader
//! cut off from the other two while a client still reaches it. The majority elects a new
//! leader and takes a write; from then on no linearizable read through the old leader may
//! return the value that write replaced. After the partition heals there is one leader and
//! every replica has every write.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strand::propertystore::protocol::ReplicaStatus;
use strand::propertystore::{ClientError, PropertyStore, StoreClientConfig, StoreServer};
use strand::transport::mem::MemNetwork;
use strand::transport::Transport;

const DEADLINE: Duration = Duration::from_secs(30);

struct Partitioned {
    _dir: tempfile::TempDir,
    net: MemNetwork,
    addrs: Vec<SocketAddr>,
    servers: Vec<StoreServer>,
    clients: AtomicU64,
}

impl Partitioned {
    async fn start(lease_reads: bool) -> Partitioned {
        let (dir, net, addrs, servers) = super::fences::start_mem_trio(0x9a57, |config| {
            config.lease_reads = lease_reads;
        })
        .await;
        Partitioned {
            _dir: dir,
            net,
            addrs,
            servers,
            clients: AtomicU64::new(0),
        }
    }

    /// A client that knows only the replicas at `indexes`.
    fn client(&self, indexes: &[usize]) -> PropertyStore {
        let n = self.clients.fetch_add(1, Ordering::Relaxed);
        let transport = self.net.client(&format!("client-{n}"));
        let mut config = StoreClientConfig::new(indexes.iter().map(|&i| self.addrs[i]).collect());
        config.request_timeout = Duration::from_millis(300);
        config.deadline = Duration::from_secs(1);
        config.cache_capacity = 0;
        PropertyStore::new(transport as Arc<dyn Transport>, config)
    }

    /// The replicas' own view, straight from their Raft metrics (the network may be cut).
    fn leaders(&self) -> Vec<Option<u64>> {
        self.servers
            .iter()
            .map(|s| s.raft().metrics().borrow().current_leader)
            .collect()
    }

    fn status_of(
        &self,
        client: &PropertyStore,
    ) -> impl std::future::Future<Output = Vec<Option<ReplicaStatus>>> + '_ {
        let client = client.clone();
        async move {
            let all = client.status_all().await;
            self.addrs
                .iter()
                .map(|a| {
                    all.iter()
                        .find(|(addr, _)| addr == a)
                        .and_then(|(_, r)| r.as_ref().ok().cloned())
                })
                .collect()
        }
    }

    /// Sets `path` to `value` through `client`, retried until acknowledged (an unknown
    /// outcome is retried too: the value is the same).
    async fn set_until_acked(client: &PropertyStore, path: &str, value: &[u8]) -> u64 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match client.set(path, value, None).await {
                Ok(stat) => return stat.mod_revision,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no write of {path} acknowledged: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// The index of the replica every replica names as leader, once they agree.
    async fn agreed_leader(&self) -> usize {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let leaders = self.leaders();
            if let Some(Some(l)) = leaders.first() {
                if leaders.iter().all(|x| *x == Some(*l)) {
                    return (*l - 1) as usize;
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader: {leaders:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn shutdown(self) {
        for s in self.servers {
            s.shutdown().await;
        }
    }
}

/// What one read through the old leader saw, and when it started.
struct Read {
    started: Instant,
    result: Result<Option<Vec<u8>>, ClientError>,
}

async fn partitioned_leader_never_serves_a_replaced_value(lease_reads: bool) {
    let cluster = Partitioned::start(lease_reads).await;
    let all = cluster.client(&[0, 1, 2]);
    Partitioned::set_until_acked(&all, "/p/x", b"1").await;
    let old = cluster.agreed_leader().await;
    let others: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    // Every replica applied the first write before the cut.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let s = cluster.status_of(&all).await;
        if s.iter()
            .all(|s| s.as_ref().is_some_and(|s| s.applied_index == s.commit_index))
            && s.iter().flatten().map(|s| s.applied_index).min()
                == s.iter().flatten().map(|s| s.applied_index).max()
        {
            break;
        }
        assert!(Instant::now() < deadline, "replicas did not catch up: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Readers that reach only the old leader, reading without pause (a read there waits
    // for its deadline once the lease is gone, so several read at once).
    let stop = Arc::new(AtomicBool::new(false));
    let reads: Arc<Mutex<Vec<Read>>> = Arc::default();
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let reader = cluster.client(&[old]);
            let (stop, reads) = (stop.clone(), reads.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let result = reader.get("/p/x").await.map(|r| r.map(|r| r.value));
                    let failed = result.is_err();
                    reads.lock().unwrap().push(Read { started, result });
                    if failed {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            })
        })
        .collect();

    let old_addr = [cluster.addrs[old]];
    let other_addrs: Vec<SocketAddr> = others.iter().map(|&i| cluster.addrs[i]).collect();
    cluster.net.partition(&old_addr, &other_addrs);
    let majority = cluster.client(&others);
    Partitioned::set_until_acked(&majority, "/p/x", b"2").await;
    let acked = Instant::now();
    // Keep reading through the old leader well past the ack (several read deadlines).
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }

    let reads = std::mem::take(&mut *reads.lock().unwrap());
    let after: Vec<&Read> = reads.iter().filter(|r| r.started > acked).collect();
    let stale = after
        .iter()
        .filter(|r| matches!(&r.result, Ok(Some(v)) if v == b"1"))
        .count();
    let served = after.iter().filter(|r| r.result.is_ok()).count();
    eprintln!(
        "lease_reads={lease_reads}: {} reads in all, {} started after the ack of 2 ({served} answered, {stale} stale)",
        reads.len(),
        after.len()
    );
    assert!(!after.is_empty(), "no read started after the ack");
    assert_eq!(
        stale, 0,
        "the partitioned old leader served the replaced value after the new write was acknowledged"
    );
    for r in &after {
        if let Ok(v) = &r.result {
            assert_eq!(v.as_deref(), Some(&b"2"[..]), "a read saw a value never written");
        }
    }

    // Healed: one leader, and every replica has the new value.
    cluster.net.heal();
    let leader = cluster.agreed_leader().await;
    let healed = cluster.client(&[0, 1, 2]);
    let last = Partitioned::set_until_acked(&healed, "/p/after", b"3").await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let s = cluster.status_of(&healed).await;
        if s.iter().all(|s| s.as_ref().is_some_and(|s| s.revision >= last)) {
            assert_eq!(
                s.iter()
                    .filter(|s| s.as_ref().is_some_and(|s| s.role == "leader"))
                    .count(),
                1,
                "one leader after the heal: {s:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a replica did not catch up after the heal: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let value = healed.get("/p/x").await.unwrap().unwrap().value;
    assert_eq!(value, b"2");
    eprintln!("leader after the heal: replica {}", leader + 1);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_leader_under_lease_never_serves_a_replaced_value() {
    partitioned_leader_never_serves_a_replaced_value(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_leader_with_read_index_never_serves_a_replaced_value() {
    partitioned_leader_never_serves_a_replaced_value(false).await;
}
