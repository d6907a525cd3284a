//! The simulated cluster's members: an [`EmbeddedCluster`] with three store replicas, two
//! controllers and five participants on one in-memory network, the resources they serve,
//! and the recorder every participant's transition events go to, stamped with virtual time.
//! Crashing and restarting a member and cutting links are done here; deciding which is
//! [`super::faults`]'s.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::faults::{Fault, Member, Shape};
use super::invariants::{phase_name, Stamped};
use super::trace::{Kind, Trace};
use crate::embedded::{EmbeddedCluster, EmbeddedError, StoreOptions};
use crate::model::{ClusterConfig, IdealState, InstanceConfig, Layout, RebalanceMode, Record};
use crate::participant::{Cancellation, HandlerError, StateModelHandler, Transition};
use crate::propertystore::PropertyStore;
use futures::future::BoxFuture;

/// The simulated cluster's name.
pub const CLUSTER: &str = "SIM";

/// The members of every run.
pub const SHAPE: Shape = Shape {
    replicas: 3,
    controllers: 2,
    participants: 5,
};

/// A resource of the run: name, partitions, replicas, SEMI_AUTO (else FULL_AUTO).
pub const RESOURCES: [(&str, usize, usize, bool); 2] = [("db", 4, 3, false), ("kv", 3, 2, true)];

/// Every frame's delay when no fault adds more (virtual): a network takes time, and a
/// frame delivered in no time at all would let request loops spin without the clock
/// moving.
pub const BASE_DELAY: (Duration, Duration) = (Duration::from_micros(500), Duration::from_millis(2));

/// How long a restarted store replica may wait for its database to be released.
const REOPEN: Duration = Duration::from_secs(30);

/// A state model handler that takes a virtual while for each transition, drawn from the
/// run's seed and the transition (10–150 ms), as an application's would: a hand-over is
/// not instant, so a MASTER and its successor can overlap when something lets them.
struct Slow {
    seed: u64,
    instance: String,
}

impl StateModelHandler for Slow {
    fn on_transition(
        &self,
        t: Transition,
        _cancel: Cancellation,
    ) -> BoxFuture<'static, Result<(), HandlerError>> {
        let mut h: u64 = self.seed ^ 0xcbf2_9ce4_8422_2325;
        for part in [&self.instance, &t.resource, &t.partition, &t.from, &t.to] {
            for b in part.as_bytes() {
                h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        let ms = 10 + h % 141;
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(())
        })
    }
}

/// What the run records as it goes.
#[derive(Default)]
pub struct Recorder {
    /// The trace.
    pub trace: Trace,
    /// Every participant transition event.
    pub events: Vec<Stamped>,
    /// The virtual times each instance's process was killed.
    pub ends: BTreeMap<String, Vec<u64>>,
    /// Events the recorder missed (a participant's event channel overflowed).
    pub lagged: u64,
    /// WAL bytes that replica crashes dropped (written after the last fsync).
    pub unsynced_lost: u64,
}

/// The cluster of one run.
pub struct SimCluster {
    /// The members, on the in-memory network.
    pub inner: EmbeddedCluster,
    base: tokio::time::Instant,
    rec: Arc<Mutex<Recorder>>,
    down: BTreeSet<Member>,
    seed: u64,
    /// How far the wall clock jumped and is still off ([`Fault::ClockJump`]), ms.
    jumped_ms: std::cell::Cell<i64>,
}

/// The name of a member.
pub fn name(m: Member) -> String {
    m.to_string()
}

impl SimCluster {
    /// Starts the store, writes the cluster and its resources, starts the controllers and
    /// participants; what happens is recorded in `rec`.
    pub async fn start(seed: u64, rec: Arc<Mutex<Recorder>>) -> Result<SimCluster, EmbeddedError> {
        let base = tokio::time::Instant::now();
        let mut options = StoreOptions::new(seed);
        options.replicas = SHAPE.replicas;
        options.inline_log_sync = true;
        options.fixed_election_timeouts = Some(Duration::from_millis(150));
        options.lose_unsynced_on_crash = true;
        let inner = EmbeddedCluster::start_with(options).await?;
        inner.network().set_delay(BASE_DELAY.0, BASE_DELAY.1);
        let mut c = SimCluster {
            inner,
            base,
            rec,
            down: BTreeSet::new(),
            seed,
            jumped_ms: std::cell::Cell::new(0),
        };
        c.write_cluster().await?;
        for n in 0..SHAPE.controllers {
            c.start_member(Member::Controller(n)).await?;
        }
        for n in 0..SHAPE.participants {
            c.start_member(Member::Participant(n)).await?;
        }
        Ok(c)
    }

    async fn write_cluster(&mut self) -> Result<(), EmbeddedError> {
        let l = Layout::new(CLUSTER);
        let store = self.inner.store();
        store.set(&l.root(), b"", None).await?;
        let cc = ClusterConfig::new(Record::new(CLUSTER));
        store
            .set(&l.cluster_config(), &cc.record.to_bytes(), None)
            .await?;
        let nodes: Vec<String> = (0..SHAPE.participants)
            .map(|n| name(Member::Participant(n)))
            .collect();
        for n in &nodes {
            let ic = InstanceConfig::create(n);
            store
                .set(&l.instance_config(n), &ic.record.to_bytes(), None)
                .await?;
        }
        for (k, (resource, partitions, replicas, semi)) in RESOURCES.iter().enumerate() {
            let mode = if *semi {
                RebalanceMode::SemiAuto
            } else {
                RebalanceMode::FullAuto
            };
            let mut is = IdealState::create(resource, *partitions, "MasterSlave", mode);
            is.record.set_simple("REPLICAS", *replicas);
            if *semi {
                for p in 0..*partitions {
                    let list: Vec<String> = (0..*replicas)
                        .map(|r| nodes[(p + r + k) % nodes.len()].clone())
                        .collect();
                    let map = list
                        .iter()
                        .enumerate()
                        .map(|(i, n)| (n.clone(), if i == 0 { "MASTER" } else { "SLAVE" }.to_string()))
                        .collect();
                    is.record.list_fields.insert(format!("{resource}_{p}"), list);
                    is.record.map_fields.insert(format!("{resource}_{p}"), map);
                }
            }
            store
                .set(&l.ideal_state(resource), &is.record.to_bytes(), None)
                .await?;
        }
        Ok(())
    }

    /// Virtual µs since the run started.
    pub fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    fn rec(&self) -> MutexGuard<'_, Recorder> {
        self.rec.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a line to the trace.
    pub fn note(&self, kind: Kind, text: impl Into<String>) {
        let at = self.now_us();
        self.rec().trace.push(at, kind, text);
    }

    /// Takes what was recorded (the events, kill times and trace).
    pub fn take_record(&self) -> Recorder {
        std::mem::take(&mut *self.rec())
    }

    /// A new admin store client.
    pub fn client(&mut self) -> PropertyStore {
        self.inner.store()
    }

    async fn start_member(&mut self, m: Member) -> Result<(), EmbeddedError> {
        let n = name(m);
        match m {
            Member::Replica(id) => {
                self.inner.restart_replica(id, REOPEN).await?;
                if let Some(server) = self.inner.replicas().get(&id) {
                    let m = server.raft().metrics().borrow().clone();
                    self.note(
                        Kind::Fault,
                        format!(
                            "{n} restarted: term {}, {:?}, last log {:?}",
                            m.current_term, m.state, m.last_log_index
                        ),
                    );
                }
            }
            Member::Controller(_) => self.inner.add_controller(&n, &[CLUSTER]).await?,
            Member::Participant(_) => {
                let handler = Arc::new(Slow {
                    seed: self.seed,
                    instance: n.clone(),
                });
                let p = self.inner.add_participant(CLUSTER, &n, Some(handler)).await?;
                let mut rx = p.events();
                let rec = self.rec.clone();
                let base = self.base;
                tokio::spawn(async move {
                    loop {
                        match rx.recv().await {
                            Ok(e) => {
                                let at_us = base.elapsed().as_micros() as u64;
                                let mut r = rec.lock().unwrap_or_else(|e| e.into_inner());
                                let text = format!(
                                    "{} {} {} {}->{} {} epoch {}",
                                    e.instance,
                                    e.resource,
                                    e.partition,
                                    e.from,
                                    e.to,
                                    phase_name(e.phase),
                                    e.epoch
                                );
                                r.trace.push(at_us, Kind::Event, text);
                                r.events.push(Stamped { at_us, event: e });
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(k)) => {
                                rec.lock().unwrap_or_else(|e| e.into_inner()).lagged += k;
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                        }
                    }
                });
            }
        }
        self.down.remove(&m);
        Ok(())
    }

    /// Kills `m`: a store replica as a power loss would (its WAL cut back to its last fsync,
    /// its unflushed memtables gone; the trace says how many WAL bytes that dropped), a
    /// controller or participant as SIGKILL would.
    pub async fn crash(&mut self, m: Member) -> Result<(), EmbeddedError> {
        let n = name(m);
        match m {
            Member::Replica(id) => {
                if let Some(cut) = self.inner.crash_replica(id, REOPEN).await? {
                    self.rec().unsynced_lost += cut.bytes;
                    self.note(
                        Kind::Note,
                        format!("{n} lost {} unsynced WAL bytes ({} files)", cut.bytes, cut.files),
                    );
                }
            }
            Member::Controller(_) => self.inner.kill_controller(&n).await?,
            Member::Participant(_) => {
                self.inner.kill_participant(&n).await?;
                let at = self.now_us();
                self.rec().ends.entry(n).or_default().push(at);
            }
        }
        self.down.insert(m);
        Ok(())
    }

    /// Restarts `m` after a crash (a new session for controllers and participants).
    pub async fn restart(&mut self, m: Member) -> Result<(), EmbeddedError> {
        self.start_member(m).await
    }

    /// The member's current address.
    pub fn addr(&self, m: Member) -> Option<SocketAddr> {
        match m {
            Member::Replica(id) => self.inner.store_addrs().get(id as usize - 1).copied(),
            _ => self.inner.addr_of(&name(m)),
        }
    }

    fn addrs(&self, ms: &[Member]) -> Vec<SocketAddr> {
        ms.iter().filter_map(|m| self.addr(*m)).collect()
    }

    /// Applies a network fault (a crash is [`SimCluster::crash`]'s).
    pub fn cut(&self, fault: &Fault) {
        let net = self.inner.network();
        match fault {
            Fault::Crash(_) => {}
            Fault::StallDisk { replica } => {
                self.inner.stall_replica_disk(*replica, true);
            }
            Fault::Partition { side } => {
                let rest: Vec<Member> = SHAPE
                    .members()
                    .into_iter()
                    .filter(|m| !side.contains(m))
                    .collect();
                net.partition(&self.addrs(side), &self.addrs(&rest));
            }
            Fault::OneWay { from, to } => {
                if let (Some(f), Some(t)) = (self.addr(*from), self.addr(*to)) {
                    net.block(f, t);
                }
            }
            Fault::Isolate(m) => {
                if let Some(a) = self.addr(*m) {
                    net.isolate(a);
                }
            }
            Fault::Loss { percent } => net.set_datagram_loss(f64::from(*percent) / 100.0),
            Fault::Delay { min_ms, max_ms } => net.set_delay(
                BASE_DELAY.0 + Duration::from_millis(*min_ms),
                BASE_DELAY.1 + Duration::from_millis(*max_ms),
            ),
            Fault::ClockJump { ms } => {
                // The run's thread has its wall clock simulated: this moves every member's.
                if crate::clock::jump(*ms) {
                    self.jumped_ms.set(self.jumped_ms.get() + ms);
                }
            }
        }
    }

    /// Removes every network fault, releases every stalled disk and steps the wall clock
    /// back to virtual time.
    pub fn heal(&self) {
        let jumped = self.jumped_ms.replace(0);
        if jumped != 0 {
            crate::clock::jump(-jumped);
            self.note(Kind::Fault, format!("the wall clock steps back {:+} ms", -jumped));
        }
        for id in 1..=SHAPE.replicas {
            self.inner.stall_replica_disk(id, false);
        }
        let net = self.inner.network();
        net.heal();
        net.set_datagram_loss(0.0);
        net.set_delay(BASE_DELAY.0, BASE_DELAY.1);
    }

    /// The store leader of the highest term any running replica knows of.
    pub fn leader(&self) -> Option<u64> {
        self.inner
            .replicas()
            .values()
            .map(|s| {
                let m = s.raft().metrics().borrow().clone();
                (m.current_term, m.current_leader)
            })
            .max()
            .and_then(|(_, leader)| leader)
    }

    /// Whether store replica `id` runs and its disk guard has stepped it down.
    pub fn disk_stalled(&self, id: u64) -> bool {
        self.inner.replicas().get(&id).is_some_and(|s| s.disk_stalled())
    }

    /// Members down now.
    pub fn down(&self) -> Vec<Member> {
        self.down.iter().copied().collect()
    }

    /// The external view of `resource`: partition → instance → state (empty if none).
    pub async fn external_view(
        store: &PropertyStore,
        resource: &str,
    ) -> Option<BTreeMap<String, BTreeMap<String, String>>> {
        let path = Layout::new(CLUSTER).external_view(resource);
        match store.get(&path).await {
            Ok(Some(r)) => Record::from_stored(&r.value)
                .ok()
                .map(|rec| rec.map(|rec| rec.map_fields).unwrap_or_default()),
            Ok(None) => Some(BTreeMap::new()),
            Err(_) => None,
        }
    }

    /// Stops every member (the recorder keeps what it has).
    pub async fn shutdown_members(self) {
        self.inner.shutdown().await;
    }
}
