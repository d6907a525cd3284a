//! The leader's early acknowledgement, the lease, a stalled disk and a full one, with replicas
//! in this process so that a test can stall one replica's disk (`Durability::stall_syncs`) or
//! fill it (`Space::simulate_free_bytes`).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strand::propertystore::protocol::ReplicaStatus;
use strand::propertystore::{
    replica_name, ClientError, PropertyStore, ReplicaConfig, StoreClientConfig, StoreError, StoreServer,
};
use strand::settings::{self, Settings, SettingsFlags};
use strand::transport::mem::MemNetwork;
use strand::transport::quic::{QuicConfig, QuicTransport};
use strand::transport::Transport;

pub(super) struct InProcess {
    _dir: tempfile::TempDir,
    settings: Settings,
    addrs: Vec<SocketAddr>,
    servers: Vec<StoreServer>,
}

/// Settings that keep the TLS material under `dir/tls` and read no environment.
pub fn settings_in(dir: &std::path::Path) -> Settings {
    Settings::load_with_env(
        &SettingsFlags {
            tls_dir: Some(dir.join("tls")),
            store: vec![],
        },
        |_| None,
    )
    .unwrap()
}

/// The initial voters: replica ids 1, 2, … at `addrs`.
pub fn numbered(addrs: &[SocketAddr]) -> Vec<(u64, SocketAddr)> {
    addrs
        .iter()
        .enumerate()
        .map(|(i, a)| (i as u64 + 1, *a))
        .collect()
}

/// Three replicas on an in-memory network seeded with `seed`, each configured by
/// `configure`: the data directory (kept alive by the returned `TempDir`), the network, the
/// replicas' addresses and the servers.
pub async fn start_mem_trio(
    seed: u64,
    configure: impl Fn(&mut ReplicaConfig),
) -> (tempfile::TempDir, MemNetwork, Vec<SocketAddr>, Vec<StoreServer>) {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_in(dir.path());
    let net = MemNetwork::new(seed);
    let endpoints: Vec<_> = (1..=3u64).map(|id| net.endpoint(&replica_name(id))).collect();
    let addrs: Vec<SocketAddr> = endpoints.iter().map(|e| e.local_addr()).collect();
    let peers = numbered(&addrs);
    let mut servers = Vec::new();
    for ((id, addr), endpoint) in peers.iter().zip(endpoints) {
        // The in-memory network checks names, not certificates; the material is unused.
        let tls =
            settings::tls_material_for(&settings, &replica_name(*id), strand::authz::Role::Store).unwrap();
        let mut config = ReplicaConfig::new(*id, *addr, dir.path().join(format!("data-{id}")), tls);
        config.peers = peers.clone();
        configure(&mut config);
        servers.push(
            StoreServer::start_on(config, endpoint as Arc<dyn Transport>)
                .await
                .unwrap(),
        );
    }
    (dir, net, addrs, servers)
}

fn free_addr() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

impl InProcess {
    pub(super) async fn start(n: u64, lease_reads: bool) -> InProcess {
        Self::start_with(n, lease_reads, |_| {}).await
    }

    /// [`InProcess::start`], each replica's configuration passed through `configure`.
    async fn start_with(n: u64, lease_reads: bool, configure: impl Fn(&mut ReplicaConfig)) -> InProcess {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings_in(dir.path());
        let addrs: Vec<SocketAddr> = (0..n).map(|_| free_addr()).collect();
        let peers = numbered(&addrs);
        let mut servers = Vec::new();
        for (id, addr) in &peers {
            let tls = settings::tls_material_for(&settings, &replica_name(*id), strand::authz::Role::Store)
                .unwrap();
            let mut config = ReplicaConfig::new(*id, *addr, dir.path().join(format!("data-{id}")), tls);
            config.peers = peers.clone();
            config.lease_reads = lease_reads;
            configure(&mut config);
            servers.push(StoreServer::start(config).await.unwrap());
        }
        InProcess {
            _dir: dir,
            settings,
            addrs,
            servers,
        }
    }

    pub(super) fn client(&self) -> PropertyStore {
        let tls =
            settings::tls_material_for(&self.settings, "test-client", strand::authz::Role::Admin).unwrap();
        let transport = QuicTransport::client(QuicConfig::new("127.0.0.1:0".parse().unwrap(), tls)).unwrap();
        let mut config = StoreClientConfig::new(self.addrs.clone());
        config.request_timeout = Duration::from_secs(2);
        config.deadline = Duration::from_secs(30);
        PropertyStore::new(transport as Arc<dyn Transport>, config)
    }

    /// Every replica's status (asked again while one does not answer, for up to 30 s).
    async fn statuses(&self, client: &PropertyStore) -> Vec<ReplicaStatus> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let all = client.status_all().await;
            if all.iter().all(|(_, r)| r.is_ok()) {
                return all.into_iter().filter_map(|(_, r)| r.ok()).collect();
            }
            assert!(
                Instant::now() < deadline,
                "a replica did not answer status: {all:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The index of the replica that leads, once one does, a write went through and every
    /// replica applied it. (A write while the store forms may be "outcome unknown": retried.)
    pub(super) async fn leader(&self, client: &PropertyStore) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = client.set("/fences/warmup", b"x", None).await {
            assert!(
                Instant::now() < deadline,
                "no write went through within 30 s: {e}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        loop {
            let statuses = self.statuses(client).await;
            if let Some(i) = statuses.iter().position(|s| s.role == "leader") {
                if statuses
                    .iter()
                    .all(|s| s.applied_index == statuses[i].applied_index)
                {
                    return i;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader with caught-up followers within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(super) async fn shutdown(self) {
        for s in self.servers {
            s.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_becomes_visible_only_once_the_leaders_own_disk_holds_it() {
    // The test needs one leader throughout: election timeouts that a loaded machine (all the
    // store tests at once) does not reach between two heartbeats.
    let cluster = InProcess::start_with(3, true, |c| {
        c.election_timeout = (Duration::from_millis(1000), Duration::from_millis(2000));
        // The stall is the test's: the leader must not step down over it.
        c.disk_stall = Duration::from_secs(600);
    })
    .await;
    let client = cluster.client();
    let leader = cluster.leader(&client).await;
    let before = cluster.statuses(&client).await;

    cluster.servers[leader].durability().stall_syncs(true);
    let writer = tokio::spawn({
        let client = cluster.client();
        async move { client.set("/fences/k", b"v", None).await }
    });

    // openraft counts the leader's early acknowledgement and a follower's fsync as a commit…
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = &cluster.statuses(&client).await[leader];
        if s.commit_index > before[leader].applied_index {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the write never reached a commit: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // …but while the leader's disk is stalled, nobody applies the write or answers it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    if writer.is_finished() {
        panic!("the write ended before the leader's fsync: {:?}", writer.await);
    }
    for (i, s) in cluster.statuses(&client).await.iter().enumerate() {
        assert_eq!(
            s.applied_index,
            before[i].applied_index,
            "replica {} applied an entry the leader's disk does not hold",
            i + 1
        );
    }

    cluster.servers[leader].durability().stall_syncs(false);
    let stat = tokio::time::timeout(Duration::from_secs(20), writer)
        .await
        .expect("the write is answered once the fsync lands")
        .unwrap()
        .expect("the write succeeds");
    assert_eq!(stat.version, 1);
    // Every follower learns the commit without another write.
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster
        .statuses(&client)
        .await
        .iter()
        .any(|s| s.revision < stat.mod_revision)
    {
        assert!(Instant::now() < deadline, "a follower did not apply the write");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn linearizable_reads_use_the_lease_when_it_holds_and_read_index_when_it_is_off() {
    for lease_reads in [true, false] {
        let cluster = InProcess::start(3, lease_reads).await;
        let client = cluster.client();
        let leader = cluster.leader(&client).await;
        // Heartbeats renew the lease; give the followers one round.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for i in 0..50u32 {
            let stat = client.set("/fences/read", &i.to_be_bytes(), None).await.unwrap();
            let record = client.get("/fences/read").await.unwrap().expect("the key exists");
            assert_eq!(record.value, i.to_be_bytes(), "a read sees the write before it");
            assert_eq!(record.stat.version, stat.version);
        }
        let s = &cluster.statuses(&client).await[leader];
        if lease_reads {
            // A heartbeat delayed past the lease on a busy machine sends a read down the
            // read-index path; most still take the lease.
            assert!(
                s.lease_reads >= 10 && s.lease_reads + s.index_reads >= 50,
                "lease reads: {}, read-index: {}",
                s.lease_reads,
                s.index_reads
            );
        } else {
            assert_eq!(s.lease_reads, 0);
            assert!(s.index_reads >= 50, "read-index reads: {}", s.index_reads);
        }
        cluster.shutdown().await;
    }
}

/// A follower syncs its appends inline while its syncer is idle and queues them while its
/// disk is stalled: the stalled follower holds nothing up, applies nothing its disk lacks,
/// and catches up in order once the disk is back. (Its Raft core waits for the flush; the
/// test reads its metrics directly.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_with_a_stalled_disk_holds_nothing_up_and_catches_up() {
    let cluster = InProcess::start(3, true).await;
    let client = cluster.client();
    let leader = cluster.leader(&client).await;
    let follower = (leader + 1) % 3;
    let before = cluster.statuses(&client).await;

    cluster.servers[follower].durability().stall_syncs(true);
    let mut last = None;
    for i in 0..20u32 {
        let stat = client
            .set(&format!("/fences/stalled/{i}"), &i.to_be_bytes(), None)
            .await
            .expect("the leader and the other follower commit without the stalled disk");
        last = Some(stat);
    }
    let last = last.unwrap();
    let applied = cluster.servers[follower]
        .raft()
        .metrics()
        .borrow()
        .last_applied
        .map(|l| l.index);
    assert_eq!(
        applied, before[follower].applied_index,
        "the stalled follower applied an entry its disk does not hold"
    );

    cluster.servers[follower].durability().stall_syncs(false);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = &cluster.statuses(&client).await[follower];
        if s.revision >= last.mod_revision {
            assert!(s.log_syncs > before[follower].log_syncs, "{s:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the follower did not catch up: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Writes after the stall take the inline path again and reach the follower too.
    let stat = client.set("/fences/stalled/after", b"x", None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster.statuses(&client).await[follower].revision < stat.mod_revision {
        assert!(
            Instant::now() < deadline,
            "the follower missed a write after the stall"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.shutdown().await;
}

/// A leader whose fsyncs stall steps down (no heartbeats, no writes or linearizable reads, no
/// campaigning), so the others elect a leader and writes go on; the stalled replica answers
/// status throughout, although its Raft core then waits for the stalled flush, and catches up
/// once its disk is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_whose_disk_stalls_steps_down_and_still_answers_status() {
    let cluster = InProcess::start_with(3, true, |c| {
        c.disk_stall = Duration::from_millis(400);
    })
    .await;
    let client = cluster.client();
    let stalled = cluster.leader(&client).await;
    cluster.servers[stalled].durability().stall_syncs(true);

    // Writes go on under another leader (one in flight at the stall may end "outcome unknown").
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    let mut i = 0u32;
    while i < 20 {
        match client
            .set(&format!("/fences/disk/{i}"), &i.to_be_bytes(), None)
            .await
        {
            Ok(stat) => {
                last = Some(stat);
                i += 1;
            }
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "writes did not resume under another leader: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let last = last.unwrap();
    // Every replica answers status, the stalled one too, and it no longer leads.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let statuses = cluster.statuses(&client).await;
        let leaders: Vec<usize> = (0..3).filter(|i| statuses[*i].role == "leader").collect();
        if statuses[stalled].role != "leader" && leaders.len() == 1 {
            assert!(
                statuses[stalled].revision < last.mod_revision,
                "the stalled replica applied writes its disk does not hold: {:?}",
                statuses[stalled]
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stalled leader did not step down: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    cluster.servers[stalled].durability().stall_syncs(false);
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.statuses(&client).await[stalled].revision < last.mod_revision {
        assert!(Instant::now() < deadline, "the stalled replica did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let record = client
        .get("/fences/disk/19")
        .await
        .unwrap()
        .expect("the last write is there");
    assert_eq!(record.stat.mod_revision, last.mod_revision);
    cluster.shutdown().await;
}

/// A disk with less free space than the reserve (simulated: `Space::simulate_free_bytes`)
/// refuses writes with an error that names the cause, writes nothing of them, keeps every
/// acknowledged write, still takes deletes, and takes writes again once space returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_refuses_writes_clearly_loses_nothing_and_recovers() {
    let cluster = InProcess::start(3, true).await;
    let client = cluster.client();
    cluster.leader(&client).await;
    let mut acked = Vec::new();
    for i in 0..20u32 {
        let path = format!("/fences/full/{i}");
        acked.push((
            path.clone(),
            client.set(&path, &i.to_be_bytes(), None).await.unwrap(),
        ));
    }

    for s in &cluster.servers {
        s.space().simulate_free_bytes(Some(4096));
    }
    let err = client
        .set("/fences/full/refused", b"x", None)
        .await
        .expect_err("a write on a full disk");
    assert!(
        matches!(
            err,
            ClientError::Store(StoreError::DiskFull { free_bytes: 4096, .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("no space"), "{err}");
    assert_eq!(
        client.get("/fences/full/refused").await.unwrap(),
        None,
        "nothing was written"
    );
    for (path, stat) in &acked {
        let record = client
            .get(path)
            .await
            .unwrap()
            .expect("an acknowledged write is kept");
        assert_eq!(record.stat, *stat);
    }
    // Deleting is how space returns: taken even now.
    client.delete("/fences/full/0", None, false).await.unwrap();

    for s in &cluster.servers {
        s.space().simulate_free_bytes(None);
    }
    let stat = client.set("/fences/full/refused", b"x", None).await.unwrap();
    assert_eq!(stat.version, 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster
        .statuses(&client)
        .await
        .iter()
        .any(|s| s.revision < stat.mod_revision)
    {
        assert!(Instant::now() < deadline, "a replica did not apply the write");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.shutdown().await;
}

/// A follower whose disk is nearly full (simulated) takes none of the leader's appends,
/// so it never meets `ENOSPC` (which would stop its Raft until a restart): the majority
/// takes every write meanwhile, the follower calls no election, and once space returns
/// the leader's retries bring it up to date.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_with_a_full_disk_takes_nothing_and_catches_up_when_space_returns() {
    let cluster = InProcess::start(3, true).await;
    let client = cluster.client();
    let leader = cluster.leader(&client).await;
    let full = (leader + 1) % 3;
    let before = cluster.statuses(&client).await;
    cluster.servers[full].space().simulate_free_bytes(Some(0));

    let mut last = None;
    for i in 0..30u32 {
        let path = format!("/fences/follower-full/{i}");
        last = Some(client.set(&path, &i.to_be_bytes(), None).await.unwrap());
    }
    let last = last.unwrap();
    let during = cluster.statuses(&client).await;
    assert_eq!(
        during[full].applied_index, before[full].applied_index,
        "the full follower appended: {during:?}"
    );
    assert!(during[leader].applied_index > before[leader].applied_index);
    assert_eq!(during[full].role, "follower", "{during:?}");
    assert_eq!(
        during[leader].term, before[leader].term,
        "an election was called: {during:?}"
    );

    cluster.servers[full].space().simulate_free_bytes(None);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = &cluster.statuses(&client).await[full];
        if s.revision >= last.mod_revision {
            break;
        }
        assert!(Instant::now() < deadline, "the follower did not catch up: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = cluster.statuses(&client).await;
    assert_eq!(s[leader].term, before[leader].term, "{s:?}");
    cluster.shutdown().await;
}
