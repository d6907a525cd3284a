//! The leaderless confirmation (`PropertyStore::confirm_majority`): three replicas on the
//! in-memory network. A live record is confirmed by a majority; with the replicas cut off
//! from each other, so that no leader can exist, the two followers still confirm it; a
//! committed delete (or replacement) is never confirmed, even while one follower whose disk
//! is stalled has the delete in its log but has not applied it (that follower refuses).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;
use strand::propertystore::confirm::Verdict;
use strand::propertystore::{ClientError, PropertyStore, StoreClientConfig, StoreServer};
use strand::transport::mem::MemNetwork;
use strand::transport::Transport;

use super::fences::InProcess;

const DEADLINE: Duration = Duration::from_secs(30);
/// How long one confirmation may take; every decision below comes far sooner.
const CHECK: Duration = Duration::from_secs(5);
const KEY: &str = "/C/LIVEINSTANCES/p1";

struct Three {
    _dir: tempfile::TempDir,
    net: MemNetwork,
    addrs: Vec<SocketAddr>,
    servers: Vec<StoreServer>,
    clients: AtomicU64,
}

impl Three {
    async fn start(seed: u64) -> Three {
        let (dir, net, addrs, servers) = super::fences::start_mem_trio(seed, |_config| {}).await;
        Three {
            _dir: dir,
            net,
            addrs,
            servers,
            clients: AtomicU64::new(0),
        }
    }

    /// A client (no cache) that knows every replica.
    fn client(&self) -> PropertyStore {
        let n = self.clients.fetch_add(1, Ordering::Relaxed);
        let transport = self.net.client(&format!("client-{n}"));
        let mut config = StoreClientConfig::new(self.addrs.clone());
        config.request_timeout = Duration::from_millis(500);
        config.deadline = Duration::from_secs(2);
        config.cache_capacity = 0;
        PropertyStore::new(transport as Arc<dyn Transport>, config)
    }

    /// Sets `path` to `value`, retried until acknowledged.
    async fn set(client: &PropertyStore, path: &str, value: &[u8]) {
        let deadline = Instant::now() + DEADLINE;
        while let Err(e) = client.set(path, value, None).await {
            assert!(Instant::now() < deadline, "no write of {path} acknowledged: {e}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The index of the replica every replica names as leader, once they agree.
    async fn agreed_leader(&self) -> usize {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let leaders: Vec<Option<u64>> = self
                .servers
                .iter()
                .map(|s| s.raft().metrics().borrow().current_leader)
                .collect();
            if let Some(Some(l)) = leaders.first() {
                if leaders.iter().all(|x| *x == Some(*l)) {
                    return (*l - 1) as usize;
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader: {leaders:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every replica has applied the same, whole log.
    async fn all_applied(&self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let applied: Vec<_> = self
                .servers
                .iter()
                .map(|s| {
                    let m = s.raft().metrics().borrow().clone();
                    (m.last_applied.map(|a| a.index), m.last_log_index)
                })
                .collect();
            if applied
                .iter()
                .all(|(a, l)| a.is_some() && *a == *l && *a == applied[0].0)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replicas did not catch up: {applied:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn shutdown(self) {
        for s in self.servers {
            s.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_record_is_confirmed_by_the_followers_while_no_leader_can_exist() {
    let cluster = Three::start(0xc0f1).await;
    let client = cluster.client();
    Three::set(&client, KEY, b"session-1").await;
    let leader = cluster.agreed_leader().await;
    cluster.all_applied().await;

    // (i) A live record, every replica up: confirmed; another value or key is not.
    assert!(client.confirm_majority(KEY, b"session-1", CHECK).await.unwrap());
    assert!(!client.confirm_majority(KEY, b"session-0", CHECK).await.unwrap());
    assert!(!client
        .confirm_majority("/C/LIVEINSTANCES/p2", b"session-1", CHECK)
        .await
        .unwrap());
    for addr in &cluster.addrs {
        let c = client.confirm_at(*addr, KEY, b"session-1", CHECK).await.unwrap();
        assert_eq!(c.verdict, Verdict::Confirmed, "{addr}: {c:?}");
        assert_eq!(c.voters.configs, vec![vec![1, 2, 3]]);
    }

    // (iii) Every replica cut off from every other, and the leader from the client: no
    // replica can win an election (none reaches a majority), and the old leader is out of
    // reach. The two followers still confirm, with no leader anywhere.
    for a in 0..3 {
        for b in (a + 1)..3 {
            cluster.net.partition(&[cluster.addrs[a]], &[cluster.addrs[b]]);
        }
    }
    // (Clients first: an isolation cuts the endpoints that exist when it is made.)
    let cut = cluster.client();
    let one = cluster.client();
    cluster.net.isolate(cluster.addrs[leader]);
    // Until both followers gave up on the old leader (an election is under way, and none
    // can win it): the moment a check that needs a leader has nobody to ask.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let known: Vec<Option<u64>> = (0..3)
            .filter(|&i| i != leader)
            .map(|i| cluster.servers[i].raft().metrics().borrow().current_leader)
            .collect();
        if known.iter().all(Option::is_none) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the followers still name a leader: {known:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        cut.confirm_majority(KEY, b"session-1", CHECK).await.unwrap(),
        "the two followers did not confirm without a leader"
    );
    // What needs a leader fails meanwhile: a linearizable read has nobody to serve it.
    assert!(
        matches!(cut.get(KEY).await, Err(ClientError::Unavailable { .. })),
        "a linearizable read was served with no reachable leader"
    );
    for (i, s) in cluster.servers.iter().enumerate() {
        if i != leader {
            assert_ne!(
                s.raft().metrics().borrow().state,
                ServerState::Leader,
                "a follower became leader while cut off from everyone"
            );
        }
    }
    // A changed value is still refused by the same two.
    assert!(!cut.confirm_majority(KEY, b"session-2", CHECK).await.unwrap());
    // With only one follower reachable, no majority can confirm: the silent two leave it
    // undecided until the timeout (an error), or their requests fail first ("no").
    let follower = (0..3).find(|&i| i != leader).unwrap();
    cluster.net.isolate(cluster.addrs[follower]);
    let alone = one
        .confirm_majority(KEY, b"session-1", Duration::from_millis(500))
        .await;
    assert!(
        matches!(alone, Ok(false) | Err(ClientError::Unavailable { .. })),
        "one follower alone: {alone:?}"
    );

    cluster.net.heal();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_committed_delete_is_never_confirmed_even_by_a_replica_that_has_not_applied_it() {
    let cluster = Three::start(0xc0f2).await;
    let client = cluster.client();
    Three::set(&client, KEY, b"session-1").await;
    let leader = cluster.agreed_leader().await;
    cluster.all_applied().await;
    assert!(client.confirm_majority(KEY, b"session-1", CHECK).await.unwrap());

    // One follower's disk stalls: it writes what the leader sends to its log but can
    // neither sync nor apply it. The leader and the other follower commit without it.
    let stalled = (0..3).find(|&i| i != leader).unwrap();
    cluster.servers[stalled].durability().stall_syncs(true);
    assert_eq!(client.delete(KEY, None, false).await.unwrap(), 1);

    // (ii) Acknowledged, so committed: from now on no majority confirms the old record.
    assert!(
        !client.confirm_majority(KEY, b"session-1", CHECK).await.unwrap(),
        "a deleted record was confirmed by a majority"
    );

    // (iv) The stalled follower, once the delete is in its log, still holds the record in
    // its applied state, and refuses because of the unapplied delete.
    let deadline = Instant::now() + DEADLINE;
    while cluster.servers[stalled].durability().unsynced_since().is_none() {
        assert!(
            Instant::now() < deadline,
            "the delete never reached the stalled follower's log"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let held = cluster.servers[stalled].db().get(KEY).unwrap();
    assert_eq!(
        held.map(|r| r.value),
        Some(b"session-1".to_vec()),
        "the stalled follower applied the delete"
    );
    let c = client
        .confirm_at(cluster.addrs[stalled], KEY, b"session-1", CHECK)
        .await
        .unwrap();
    assert!(
        matches!(c.verdict, Verdict::Pending { .. }),
        "the stalled follower did not refuse for its unapplied delete: {c:?}"
    );
    // Still no majority, whatever the others have applied by now.
    assert!(!client.confirm_majority(KEY, b"session-1", CHECK).await.unwrap());

    // The disk recovers; a new session's record replaces the old one. The old value is
    // refused at once; the new one is confirmed once a majority applied it.
    cluster.servers[stalled].durability().stall_syncs(false);
    Three::set(&client, KEY, b"session-2").await;
    assert!(!client.confirm_majority(KEY, b"session-1", CHECK).await.unwrap());
    let deadline = Instant::now() + DEADLINE;
    while !client.confirm_majority(KEY, b"session-2", CHECK).await.unwrap() {
        assert!(Instant::now() < deadline, "the new record was never confirmed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.shutdown().await;
}

/// The cost of a confirmation against a linearizable get (the leader's lease read), both
/// over QUIC on loopback with three replicas in this process. A measurement, not a check:
/// `cargo test --all-features --test store confirm::confirmation_latency -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn confirmation_latency() {
    const N: usize = 2000;
    let cluster = InProcess::start(3, true).await;
    let client = cluster.client();
    cluster.leader(&client).await;
    Three::set(&client, KEY, b"session-1").await;
    let deadline = Instant::now() + DEADLINE;
    while !client.confirm_majority(KEY, b"session-1", CHECK).await.unwrap() {
        assert!(Instant::now() < deadline, "never confirmed");
    }
    let percentiles = |mut t: Vec<Duration>| {
        t.sort();
        let at = |q: f64| t[((t.len() as f64 * q) as usize).min(t.len() - 1)];
        format!("p50 {:?}, p99 {:?}, max {:?}", at(0.5), at(0.99), at(1.0))
    };
    let mut confirms = Vec::with_capacity(N);
    let mut gets = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        assert!(client.confirm_majority(KEY, b"session-1", CHECK).await.unwrap());
        confirms.push(t.elapsed());
        let t = Instant::now();
        client.get(KEY).await.unwrap();
        gets.push(t.elapsed());
    }
    eprintln!("{N} confirm_majority: {}", percentiles(confirms));
    eprintln!("{N} linearizable get: {}", percentiles(gets));
    cluster.shutdown().await;
}
