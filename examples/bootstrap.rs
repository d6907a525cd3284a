//! `bootstrap`: a partitioned key-value service on strand participants, whose new replicas
//! copy their partition from a peer before they serve (Helix's bootstrap pattern).
//!
//! Run: `cargo run --example bootstrap`
//!
//! ```text
//!   client put(k, v) ─► criteria {resource=kv, partition=P, partitionState=MASTER} ─► MASTER
//!                        stores k = (v, version one above P's highest)
//!   OFFLINE→SLAVE of P:  ask {resource=kv, partition=P, partitionState=MASTER} (else SLAVE)
//!                        for KV_SYNC chunks of P in key order, merge them, and only then
//!                        return Ok: the controller sees SLAVE once the data is there
//!   keeping up:          every 20 ms each SLAVE asks its MASTER again, and each MASTER its
//!                        SLAVEs; a request carries the asker's digest of P, and an equal
//!                        digest is answered with nothing
//! ```
//!
//! A replica is a map of key → (value, version); merging keeps the higher version of each
//! key, so any order of chunks from any peers converges. What a replica holds survives a
//! step down (a session lost on a loaded machine takes every replica OFFLINE for a moment,
//! as a restart would with data on disk); only DROPPED deletes it. A MASTER also pulls
//! from its SLAVEs, so a write a MASTER acknowledged just before it lost its session comes
//! back when that node rejoins as a SLAVE.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::json;
use strand::admin::Admin;
use strand::embedded::EmbeddedCluster;
use strand::messaging::{AppMessage, Criteria, HandlerFn, Messaging, Outgoing};
use strand::model::{IdealState, Layout, RebalanceMode};
use strand::participant::{Cancellation, HandlerError, StateModelHandler, Transition};
use strand::transport::Transport;

const CLUSTER: &str = "C";
const RESOURCE: &str = "kv";
const PARTITIONS: usize = 6;
/// Entries per KV_SYNC reply: a partition larger than this arrives in several replies.
const CHUNK: usize = 16;
const WAIT: Duration = Duration::from_secs(20);

/// The partition a key lives in (FNV-1a of the key, modulo the partition count).
pub fn partition_of(key: &str) -> String {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    format!("{RESOURCE}_{}", h % PARTITIONS as u64)
}

/// One KV_SYNC request: `partition`'s entries after key `after` in key order, at most
/// `max`. The first request of a scan (`after` = None) carries the asker's digest.
#[derive(Debug, Serialize, Deserialize)]
struct SyncRequest {
    partition: String,
    after: Option<String>,
    max: usize,
    digest: u64,
}

/// One stored value with the version its MASTER gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Versioned {
    value: String,
    version: u64,
}

/// Its reply: the entries, and whether the scan has reached the end.
#[derive(Debug, Serialize, Deserialize)]
struct SyncReply {
    entries: Vec<(String, Versioned)>,
    done: bool,
}

/// The replicas one node holds: each partition's map and the state strand gave it.
#[derive(Default)]
pub struct Replicas {
    maps: Mutex<BTreeMap<String, BTreeMap<String, Versioned>>>,
    states: Mutex<BTreeMap<String, String>>,
    /// Keys held when each partition's OFFLINE→SLAVE completed (the bootstrap's work).
    bootstrapped: Mutex<BTreeMap<String, usize>>,
}

/// FNV-1a over a partition's entries in key order.
fn digest(map: &BTreeMap<String, Versioned>) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for (k, v) in map {
        for b in k
            .bytes()
            .chain([0])
            .chain(v.value.bytes())
            .chain(v.version.to_le_bytes())
        {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

impl Replicas {
    /// Merges `entries` into `partition` (the higher version of each key wins; equal
    /// versions keep the greater value, so every replica picks the same one).
    fn merge(&self, partition: &str, entries: Vec<(String, Versioned)>) {
        let mut maps = self.maps.lock().unwrap();
        let map = maps.entry(partition.to_string()).or_default();
        for (k, v) in entries {
            let newer = map
                .get(&k)
                .is_none_or(|old| (v.version, &v.value) > (old.version, &old.value));
            if newer {
                map.insert(k, v);
            }
        }
    }

    fn digest(&self, partition: &str) -> u64 {
        self.maps.lock().unwrap().get(partition).map_or(0, digest)
    }

    /// Stores a client's write with a version above every one in the partition.
    fn put(&self, partition: &str, key: String, value: String) {
        let mut maps = self.maps.lock().unwrap();
        let map = maps.entry(partition.to_string()).or_default();
        let version = map.values().map(|v| v.version).max().unwrap_or(0) + 1;
        map.insert(key, Versioned { value, version });
    }

    fn chunk(&self, req: &SyncRequest) -> Option<SyncReply> {
        let maps = self.maps.lock().unwrap();
        let map = maps.get(&req.partition)?;
        if req.after.is_none() && digest(map) == req.digest {
            return Some(SyncReply {
                entries: Vec::new(),
                done: true,
            });
        }
        let after = match &req.after {
            Some(a) => std::ops::Bound::Excluded(a.clone()),
            None => std::ops::Bound::Unbounded,
        };
        let mut entries: Vec<_> = map
            .range((after, std::ops::Bound::Unbounded))
            .take(req.max + 1)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let done = entries.len() <= req.max;
        entries.truncate(req.max);
        Some(SyncReply { entries, done })
    }

    /// The key-value map of a partition, if this node holds it.
    pub fn map(&self, partition: &str) -> Option<BTreeMap<String, String>> {
        let maps = self.maps.lock().unwrap();
        maps.get(partition)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.value.clone())).collect())
    }

    /// Partitions in `state` on this node (as its handler last completed them).
    pub fn in_state(&self, state: &str) -> Vec<String> {
        let states = self.states.lock().unwrap();
        states
            .iter()
            .filter(|(_, s)| *s == state)
            .map(|(p, _)| p.clone())
            .collect()
    }
}

/// The node's transition handler; its messaging handle is set once the participant is up.
struct KvHandler {
    replicas: Arc<Replicas>,
    messaging: Arc<OnceLock<Messaging>>,
}

impl StateModelHandler for KvHandler {
    fn on_transition(
        &self,
        t: Transition,
        _cancel: Cancellation,
    ) -> BoxFuture<'static, Result<(), HandlerError>> {
        let replicas = self.replicas.clone();
        let messaging = self.messaging.clone();
        Box::pin(async move {
            if t.from == "OFFLINE" && t.to == "SLAVE" {
                let m = loop {
                    match messaging.get() {
                        Some(m) => break m.clone(),
                        None => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                };
                replicas
                    .maps
                    .lock()
                    .unwrap()
                    .entry(t.partition.clone())
                    .or_default();
                replicas
                    .states
                    .lock()
                    .unwrap()
                    .insert(t.partition.clone(), "BOOTSTRAP".into());
                bootstrap(&m, &replicas, &t.partition)
                    .await
                    .map_err(HandlerError::new)?;
                let held = replicas.map(&t.partition).map_or(0, |m| m.len());
                replicas
                    .bootstrapped
                    .lock()
                    .unwrap()
                    .entry(t.partition.clone())
                    .or_insert(held);
            }
            if t.from == "SLAVE" && t.to == "MASTER" {
                // The old MASTER was demoted first and accepts no more writes: take what it
                // had that this replica has not pulled yet, then serve writes.
                if let Some(m) = messaging.get() {
                    pull(m, &replicas, &t.partition, &peers_in(&t.partition, "SLAVE")?)
                        .await
                        .map_err(HandlerError::new)?;
                }
            }
            if t.to == "DROPPED" {
                replicas.maps.lock().unwrap().remove(&t.partition);
            }
            replicas.states.lock().unwrap().insert(t.partition, t.to);
            Ok(())
        })
    }

    fn on_error(&self, t: &Transition, reason: &str) {
        eprintln!("{} {}→{} failed: {reason}", t.partition, t.from, t.to);
    }
}

/// The replicas of `partition` in `state` on other nodes.
fn peers_in(partition: &str, state: &str) -> Result<Criteria, HandlerError> {
    Criteria::parse(&format!(
        "instanceName=%,resource={RESOURCE},partition={partition},partitionState={state}"
    ))
    .map_err(|e| HandlerError::new(e.to_string()))
}

/// Copies `partition` from its MASTER, or from a SLAVE if it has none; a partition nobody
/// holds yet starts empty.
async fn bootstrap(m: &Messaging, replicas: &Replicas, partition: &str) -> Result<(), String> {
    for state in ["MASTER", "SLAVE"] {
        let peers = peers_in(partition, state).map_err(|e| e.reason)?;
        if pull(m, replicas, partition, &peers).await?.is_some() {
            return Ok(());
        }
    }
    Ok(())
}

/// Merges `partition` from the first of `peers` to answer, chunk by chunk in key order,
/// unless its digest equals this replica's. Returns how many entries it received, or
/// `None` if no peer matched.
async fn pull(
    m: &Messaging,
    replicas: &Replicas,
    partition: &str,
    peers: &Criteria,
) -> Result<Option<usize>, String> {
    let mut received = 0;
    let mut after = None;
    loop {
        let req = SyncRequest {
            partition: partition.to_string(),
            after: after.clone(),
            max: CHUNK,
            digest: replicas.digest(partition),
        };
        let body = serde_json::to_value(&req).map_err(|e| e.to_string())?;
        let r = m
            .send_and_wait(peers, Outgoing::new("KV_SYNC").body(body), WAIT)
            .await
            .map_err(|e| e.to_string())?;
        if r.recipients == 0 {
            return Ok(None);
        }
        let reply = r
            .replies
            .first()
            .ok_or_else(|| format!("no peer sent {partition}: {:?} {:?}", r.failed, r.timed_out))?;
        let chunk: SyncReply = serde_json::from_str(&reply.body).map_err(|e| e.to_string())?;
        received += chunk.entries.len();
        after = chunk.entries.last().map(|(k, _)| k.clone());
        replicas.merge(partition, chunk.entries);
        if chunk.done || after.is_none() {
            return Ok(Some(received));
        }
    }
}

/// Answers messages of `msg_type` with `f(replicas, body)`.
fn serve(
    m: &Messaging,
    msg_type: &str,
    r: &Arc<Replicas>,
    f: fn(&Replicas, &str) -> Result<serde_json::Value, String>,
) {
    let r = r.clone();
    m.register_handler(
        msg_type,
        None,
        HandlerFn(move |msg: AppMessage| {
            let r = r.clone();
            async move { f(&r, &msg.body) }
        }),
    );
}

/// KV_SYNC: a chunk of a partition.
fn on_sync(r: &Replicas, body: &str) -> Result<serde_json::Value, String> {
    let req: SyncRequest = serde_json::from_str(body).map_err(|e| format!("bad KV_SYNC: {e}"))?;
    let chunk = r
        .chunk(&req)
        .ok_or_else(|| format!("{} is not here", req.partition))?;
    serde_json::to_value(chunk).map_err(|e| e.to_string())
}

/// KV_PUT: store a write, at the MASTER only.
fn on_put(r: &Replicas, body: &str) -> Result<serde_json::Value, String> {
    let (k, v): (String, String) = serde_json::from_str(body).map_err(|e| format!("bad KV_PUT: {e}"))?;
    let p = partition_of(&k);
    if !r.in_state("MASTER").contains(&p) {
        return Err(format!("not the MASTER of {p}"));
    }
    r.put(&p, k, v);
    Ok(json!("ok"))
}

/// A key-value node: a participant with [`KvHandler`], answering KV_SYNC and KV_PUT, and a
/// task that keeps its SLAVE replicas up with their MASTER and its MASTERs with their
/// SLAVEs.
pub struct KvNode {
    /// What the node holds.
    pub replicas: Arc<Replicas>,
    follower: tokio::task::JoinHandle<()>,
}

impl Drop for KvNode {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl KvNode {
    /// Starts instance `name` in `cluster`.
    pub async fn start(cluster: &mut EmbeddedCluster, name: &str) -> anyhow::Result<KvNode> {
        let replicas = Arc::new(Replicas::default());
        let cell = Arc::new(OnceLock::new());
        let handler = Arc::new(KvHandler {
            replicas: replicas.clone(),
            messaging: cell.clone(),
        });
        let p = cluster.add_participant(CLUSTER, name, Some(handler)).await?;
        let m = p.messaging().clone();
        serve(&m, "KV_SYNC", &replicas, on_sync);
        serve(&m, "KV_PUT", &replicas, on_put);
        let _ = cell.set(m.clone());
        let r = replicas.clone();
        let follower = tokio::spawn(async move {
            loop {
                for (state, from) in [("SLAVE", "MASTER"), ("MASTER", "SLAVE")] {
                    for p in r.in_state(state) {
                        if let Ok(peers) = peers_in(&p, from) {
                            let _ = pull(&m, &r, &p, &peers).await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Ok(KvNode { replicas, follower })
    }
}

/// Writes `(key, value)` at the MASTER of the key's partition, retrying while the MASTER
/// moves (a replica that is no longer MASTER refuses the write).
pub async fn put(client: &Messaging, key: &str, value: &str) -> anyhow::Result<()> {
    let master = Criteria::parse(&format!(
        "instanceName=%,resource={RESOURCE},partition={},partitionState=MASTER",
        partition_of(key)
    ))?;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = client
            .send_and_wait(&master, Outgoing::new("KV_PUT").body(json!([key, value])), WAIT)
            .await?;
        if r.replies.len() == 1 {
            return Ok(());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "put {key}: {r:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What the demo did: the keys written, and the new node's partitions with their contents.
pub struct Outcome {
    /// Every key written, with its value.
    pub written: BTreeMap<String, String>,
    /// The partitions the new node ended up hosting (SLAVE or MASTER), with their maps.
    pub new_node: BTreeMap<String, BTreeMap<String, String>>,
    /// Keys the new node held when each of its OFFLINE→SLAVE transitions completed.
    pub bootstrapped: BTreeMap<String, usize>,
}

/// Two nodes host `kv` (6 partitions × 2 replicas, FULL_AUTO); `keys` keys are written; a
/// third node joins, bootstraps the replicas it is given, and then follows more writes.
pub async fn run(keys: usize, print: bool) -> anyhow::Result<Outcome> {
    let mut cluster = EmbeddedCluster::start(3).await?;
    let admin = Admin::new(cluster.store());
    admin.add_cluster(CLUSTER).await?;
    for n in ["node_0", "node_1", "node_2"] {
        admin.add_instance(CLUSTER, n).await?;
    }
    let mut is = IdealState::create(RESOURCE, PARTITIONS, "MasterSlave", RebalanceMode::FullAuto);
    is.record.set_simple("REPLICAS", 2);
    cluster
        .put_record(&Layout::new(CLUSTER).ideal_state(RESOURCE), &is.record)
        .await?;
    cluster.add_controller("ctl-1", &[CLUSTER]).await?;
    let mut nodes = BTreeMap::new();
    for n in ["node_0", "node_1"] {
        nodes.insert(n, KvNode::start(&mut cluster, n).await?);
    }
    let spectator = cluster.spectator(CLUSTER).await?;
    let endpoint = cluster.network().client("kv-client");
    let client = spectator.messaging("kv-client", endpoint as Arc<dyn Transport>)?;
    let converged = |t: &strand::spectator::RoutingTable, hosts: usize| {
        (0..PARTITIONS).all(|p| {
            let p = format!("{RESOURCE}_{p}");
            t.instances(RESOURCE, &p, "MASTER").len() == 1 && t.instances(RESOURCE, &p, "SLAVE").len() == 1
        }) && t
            .states(RESOURCE)
            .values()
            .flat_map(|m| m.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            == hosts
    };
    anyhow::ensure!(
        spectator.wait_until(WAIT, |t| converged(t, 2)).await,
        "kv never had a MASTER and a SLAVE per partition: {:?}",
        spectator.table().states(RESOURCE)
    );

    let mut written = BTreeMap::new();
    for i in 0..keys {
        let (k, v) = (format!("key-{i}"), format!("value-{i}"));
        put(&client, &k, &v).await?;
        written.insert(k, v);
    }
    if print {
        println!("wrote {keys} keys through the MASTERs of {PARTITIONS} partitions on node_0 and node_1");
    }

    nodes.insert("node_2", KvNode::start(&mut cluster, "node_2").await?);
    anyhow::ensure!(
        spectator.wait_until(WAIT, |t| converged(t, 3)).await,
        "node_2 was never given replicas: {:?}",
        spectator.table().states(RESOURCE)
    );
    let new = nodes["node_2"].replicas.clone();
    if print {
        for (p, n) in new.bootstrapped.lock().unwrap().iter() {
            println!("node_2 bootstrapped {p}: {n} keys copied from a peer before it became SLAVE");
        }
    }

    // Writes after the join reach node_2's replicas too (its SLAVEs pull from the MASTER).
    for i in keys..keys + 10 {
        let (k, v) = (format!("key-{i}"), format!("value-{i}"));
        put(&client, &k, &v).await?;
        written.insert(k, v);
    }
    let expected = |p: &str| -> BTreeMap<String, String> {
        written
            .iter()
            .filter(|(k, _)| partition_of(k) == p)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let hosted = || -> Vec<String> {
        let mut v = new.in_state("SLAVE");
        v.extend(new.in_state("MASTER"));
        v
    };
    // Until node_2 hosts replicas again (a session it lost on a loaded machine steps them
    // all down for a moment) and each holds every key of its partition.
    let complete = || {
        let h = hosted();
        !h.is_empty() && h.iter().all(|p| new.map(p) == Some(expected(p)))
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline && !complete() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let new_node = hosted()
        .into_iter()
        .map(|p| (p.clone(), new.map(&p).unwrap_or_default()))
        .collect();
    if print {
        println!(
            "node_2 holds every key of its partitions, including 10 written after it joined: {}",
            complete()
        );
    }
    let bootstrapped = new.bootstrapped.lock().unwrap().clone();
    drop(nodes);
    drop(spectator);
    cluster.shutdown().await;
    Ok(Outcome {
        written,
        new_node,
        bootstrapped,
    })
}

#[tokio::main]
#[allow(dead_code)]
async fn main() -> anyhow::Result<()> {
    let keys = std::env::args().nth(1).map_or(Ok(200), |s| s.parse())?;
    run(keys, true).await?;
    Ok(())
}
