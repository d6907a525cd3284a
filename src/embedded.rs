//! `EmbeddedCluster`: a whole strand cluster in one process, for tests and examples.
//!
//! ```text
//!   MemNetwork (in-memory transport: can drop, delay, partition, crash)
//!     ├─ store-1..n     the property store's replicas (RocksDB in a temp dir; one by default)
//!     ├─ controllers    Controller tasks, each with its own endpoint and gossip
//!     └─ participants   Participant tasks with the caller's handlers
//! ```
//!
//! Everything runs the real code — store, gossip, controller, participants — only the
//! network is in memory, so a test can kill a member (`kill_*`), cut it off
//! (`network().isolate(addr)`) or stop it gracefully, and no process boundary costs time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::authz::{Role as AuthzRole, RoleSet};
use crate::controller::{Controller, ControllerError, Role};
use crate::model::{Layout, Record};
use crate::participant::{AcceptAll, Participant, ParticipantError, StateModelHandler};
use crate::propertystore::{
    replica_name, ClientError, PropertyStore, ReplicaConfig, StoreClientConfig, StoreServer,
};
use crate::settings::{self, Settings, SettingsFlags};
use crate::spectator::Spectator;
use crate::transport::mem::MemNetwork;
use crate::transport::Transport;

/// Why the embedded cluster could not do something.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// Setting up the temp dir or certificates failed.
    #[error("setup: {0}")]
    Setup(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] ClientError),
    /// A controller failed.
    #[error(transparent)]
    Controller(#[from] ControllerError),
    /// A participant failed.
    #[error(transparent)]
    Participant(#[from] ParticipantError),
    /// No member of that name.
    #[error("no member named {0}")]
    NoSuchMember(String),
}

/// How [`EmbeddedCluster::start_with`] starts the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The network's seed.
    pub seed: u64,
    /// Store replicas (1 or more).
    pub replicas: u64,
    /// Sync the Raft log on the appending task ([`ReplicaConfig::inline_log_sync`]).
    pub inline_log_sync: bool,
    /// Give replica `id` the election timeout `base + id·10 ms` (one millisecond wide) and
    /// an elector seeded from `seed` and `id`, instead of random ones: runs repeat.
    pub fixed_election_timeouts: Option<Duration>,
    /// A killed replica loses what its disk had not fsynced
    /// ([`ReplicaConfig::lose_unsynced_on_crash`]).
    pub lose_unsynced_on_crash: bool,
}

impl StoreOptions {
    /// One replica, the network seeded with `seed`, defaults otherwise.
    pub fn new(seed: u64) -> StoreOptions {
        StoreOptions {
            seed,
            replicas: 1,
            inline_log_sync: false,
            fixed_election_timeouts: None,
            lose_unsynced_on_crash: false,
        }
    }
}

/// A cluster in one process. Dropping it stops everything.
pub struct EmbeddedCluster {
    dir: tempfile::TempDir,
    net: MemNetwork,
    /// Running replicas by id.
    store_servers: BTreeMap<u64, StoreServer>,
    /// Each replica's configuration (for a restart), by id.
    replica_configs: BTreeMap<u64, ReplicaConfig>,
    store_addrs: Vec<std::net::SocketAddr>,
    /// The address of each controller's and participant's endpoint (the latest start's).
    member_addrs: BTreeMap<String, std::net::SocketAddr>,
    clients: u64,
    /// Running controllers by name.
    pub controllers: BTreeMap<String, Controller>,
    /// Running participants by instance name.
    pub participants: BTreeMap<String, Participant>,
}

impl EmbeddedCluster {
    /// Starts a single-replica store on an in-memory network seeded with `seed`.
    pub async fn start(seed: u64) -> Result<EmbeddedCluster, EmbeddedError> {
        Self::start_with(StoreOptions::new(seed)).await
    }

    /// Starts a store as `options` say on an in-memory network.
    pub async fn start_with(options: StoreOptions) -> Result<EmbeddedCluster, EmbeddedError> {
        let setup = |e: &dyn std::fmt::Display| EmbeddedError::Setup(e.to_string());
        let dir = tempfile::tempdir().map_err(|e| setup(&e))?;
        let settings = Settings::load_with_env(
            &SettingsFlags {
                tls_dir: Some(dir.path().join("tls")),
                store: vec![],
            },
            |_| None,
        )
        .map_err(|e| setup(&e))?;
        let net = MemNetwork::new(options.seed);
        let n = options.replicas.max(1);
        let endpoints: Vec<_> = (1..=n)
            .map(|id| net.endpoint_with_roles(&replica_name(id), RoleSet::of(AuthzRole::Store)))
            .collect();
        let addrs: Vec<std::net::SocketAddr> = endpoints.iter().map(|e| e.local_addr()).collect();
        let peers: Vec<(u64, std::net::SocketAddr)> = if n == 1 {
            vec![]
        } else {
            (1..=n).zip(addrs.iter().copied()).collect()
        };
        let mut configs = BTreeMap::new();
        let mut servers = BTreeMap::new();
        for (id, endpoint) in (1..=n).zip(endpoints) {
            // The in-memory network checks names, not certificates; the material is unused.
            let tls = settings::tls_material_for(&settings, &replica_name(id), crate::authz::Role::Store)
                .map_err(|e| setup(&e))?;
            let data = if n == 1 {
                dir.path().join("store")
            } else {
                dir.path().join(format!("store-{id}"))
            };
            let mut config = ReplicaConfig::new(id, endpoint.local_addr(), data, tls);
            config.heartbeat = Duration::from_millis(50);
            config.peers = peers.clone();
            config.inline_log_sync = options.inline_log_sync;
            config.lose_unsynced_on_crash = options.lose_unsynced_on_crash;
            if let Some(base) = options.fixed_election_timeouts {
                let min = base + Duration::from_millis(10 * id);
                config.election_timeout = (min, min + Duration::from_millis(1));
                config.elector_seed = Some(options.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ id);
            }
            let server = StoreServer::start_on(config.clone(), endpoint as Arc<dyn Transport>)
                .await
                .map_err(|e| setup(&e))?;
            configs.insert(id, config);
            servers.insert(id, server);
        }
        Ok(EmbeddedCluster {
            dir,
            net,
            store_servers: servers,
            replica_configs: configs,
            store_addrs: addrs,
            member_addrs: BTreeMap::new(),
            clients: 0,
            controllers: BTreeMap::new(),
            participants: BTreeMap::new(),
        })
    }

    /// Kills store replica `id` as SIGKILL would: its endpoint vanishes, then its tasks stop.
    /// Started with [`StoreOptions::lose_unsynced_on_crash`], it is killed as a power loss
    /// would: once its database has closed (within `timeout`), its WAL is cut back to the
    /// last fsync; the answer says how many bytes that dropped (`None` otherwise).
    pub async fn kill_replica(&mut self, id: u64) -> Result<(), EmbeddedError> {
        self.crash_replica(id, Duration::from_secs(30)).await.map(|_| ())
    }

    /// [`EmbeddedCluster::kill_replica`], telling what the cut dropped.
    pub async fn crash_replica(
        &mut self,
        id: u64,
        timeout: Duration,
    ) -> Result<Option<crate::propertystore::storage::Cut>, EmbeddedError> {
        let server = self
            .store_servers
            .remove(&id)
            .ok_or_else(|| EmbeddedError::NoSuchMember(replica_name(id)))?;
        let image = server.crash_image();
        self.net.crash(server.local_addr());
        // The crash happened: what a stalled disk still holds back may be synced now (so
        // that nothing waits on it while the replica stops) and is cut away below.
        server.stall_disk(false);
        server.shutdown().await;
        let Some(image) = image else { return Ok(None) };
        let deadline = tokio::time::Instant::now() + timeout;
        while !image.closed() {
            if tokio::time::Instant::now() >= deadline {
                return Err(EmbeddedError::Setup(format!(
                    "{}'s database did not close within {timeout:?} of its crash",
                    replica_name(id)
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let cut = image
            .cut()
            .map_err(|e| EmbeddedError::Setup(format!("{}: {e}", replica_name(id))))?;
        Ok(Some(cut))
    }

    /// Stalls (`true`) or releases store replica `id`'s log fsyncs, as a stalled disk would;
    /// `false` if no such replica runs.
    pub(crate) fn stall_replica_disk(&self, id: u64, stalled: bool) -> bool {
        match self.store_servers.get(&id) {
            Some(s) => {
                s.stall_disk(stalled);
                true
            }
            None => false,
        }
    }

    /// Restarts store replica `id` (killed before) at its address, over its data directory.
    /// The database of the killed replica may take a moment to close: the open is retried
    /// for up to `timeout`.
    pub async fn restart_replica(&mut self, id: u64, timeout: Duration) -> Result<(), EmbeddedError> {
        let config = self
            .replica_configs
            .get(&id)
            .cloned()
            .ok_or_else(|| EmbeddedError::NoSuchMember(replica_name(id)))?;
        if self.store_servers.contains_key(&id) {
            return Err(EmbeddedError::Setup(format!("{} is running", replica_name(id))));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let endpoint = self
                .net
                .endpoint_at_with_roles(
                    &replica_name(id),
                    config.listen,
                    crate::transport::PeerRole::Node,
                    RoleSet::of(AuthzRole::Store),
                )
                .map_err(|e| EmbeddedError::Setup(e.to_string()))?;
            match StoreServer::start_on(config.clone(), endpoint.clone() as Arc<dyn Transport>).await {
                Ok(server) => {
                    self.store_servers.insert(id, server);
                    return Ok(());
                }
                Err(e) => {
                    self.net.crash(config.listen);
                    if tokio::time::Instant::now() >= deadline {
                        return Err(EmbeddedError::Setup(e.to_string()));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// The running store replicas by id.
    pub fn replicas(&self) -> &BTreeMap<u64, StoreServer> {
        &self.store_servers
    }

    /// The address of controller or participant `name` (of its latest start).
    pub fn addr_of(&self, name: &str) -> Option<std::net::SocketAddr> {
        self.member_addrs.get(name).copied()
    }

    /// Every store replica's address, by id order.
    pub fn store_addrs(&self) -> &[std::net::SocketAddr] {
        &self.store_addrs
    }

    /// The in-memory network (to drop, delay, partition or crash members).
    pub fn network(&self) -> &MemNetwork {
        &self.net
    }

    /// The temp directory everything lives in.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A new store client (with a cache) with an admin certificate named `client-<n>`.
    pub fn store(&mut self) -> PropertyStore {
        self.clients += 1;
        let name = format!("client-{}", self.clients);
        self.store_as(&name, RoleSet::of(AuthzRole::Admin))
    }

    /// A new store client (with a cache) whose certificate names `name` and grants `roles`.
    pub fn store_as(&mut self, name: &str, roles: RoleSet) -> PropertyStore {
        let endpoint = self.net.client_with_roles(name, roles);
        self.store_over(endpoint as Arc<dyn Transport>)
    }

    /// The (first) store replica's address.
    pub fn store_addr(&self) -> std::net::SocketAddr {
        self.store_addrs[0]
    }

    /// A store client (with a cache) over a member's own endpoint: the store checks its
    /// writes against the member's name and roles.
    fn store_over(&self, endpoint: Arc<dyn Transport>) -> PropertyStore {
        let mut config = StoreClientConfig::new(self.store_addrs.clone());
        config.cache_capacity = 10_000;
        PropertyStore::new(endpoint, config)
    }

    /// The application property store of `cluster`, over a new store client.
    pub fn property_store(&mut self, cluster: &str) -> crate::config::AppPropertyStore {
        crate::config::AppPropertyStore::new(self.store(), cluster)
    }

    /// A config accessor over a new store client.
    pub fn config_accessor(&mut self) -> crate::config::ConfigAccessor {
        crate::config::ConfigAccessor::new(self.store())
    }

    /// Starts a controller of `clusters` named `name`.
    pub async fn add_controller(&mut self, name: &str, clusters: &[&str]) -> Result<(), EmbeddedError> {
        let endpoint = self
            .net
            .endpoint_with_roles(name, RoleSet::of(AuthzRole::Controller))
            as Arc<dyn Transport>;
        self.member_addrs.insert(name.to_string(), endpoint.local_addr());
        let mut b = Controller::builder(name)
            .store(self.store_over(endpoint.clone()))
            .transport(endpoint);
        for c in clusters {
            b = b.cluster(*c);
        }
        let c = b.start().await?;
        self.controllers.insert(name.to_string(), c);
        Ok(())
    }

    /// Starts participant `instance` of `cluster` with `handler` (None: accept everything).
    pub async fn add_participant(
        &mut self,
        cluster: &str,
        instance: &str,
        handler: Option<Arc<dyn StateModelHandler>>,
    ) -> Result<&Participant, EmbeddedError> {
        let endpoint = self
            .net
            .endpoint_with_roles(instance, RoleSet::of(AuthzRole::Participant))
            as Arc<dyn Transport>;
        self.member_addrs
            .insert(instance.to_string(), endpoint.local_addr());
        let p = Participant::builder(cluster, instance)
            .store(self.store_over(endpoint.clone()))
            .transport(endpoint)
            .handler(handler.unwrap_or_else(|| Arc::new(AcceptAll)))
            .connect()
            .await?;
        self.participants.insert(instance.to_string(), p);
        Ok(&self.participants[instance])
    }

    /// Kills a participant (as SIGKILL would: nobody is told).
    pub async fn kill_participant(&mut self, instance: &str) -> Result<(), EmbeddedError> {
        let p = self
            .participants
            .remove(instance)
            .ok_or_else(|| EmbeddedError::NoSuchMember(instance.to_string()))?;
        p.kill().await;
        Ok(())
    }

    /// Stops a participant gracefully.
    pub async fn stop_participant(&mut self, instance: &str) -> Result<(), EmbeddedError> {
        let p = self
            .participants
            .remove(instance)
            .ok_or_else(|| EmbeddedError::NoSuchMember(instance.to_string()))?;
        p.shutdown().await;
        Ok(())
    }

    /// Kills a controller (as SIGKILL would).
    pub async fn kill_controller(&mut self, name: &str) -> Result<(), EmbeddedError> {
        let c = self
            .controllers
            .remove(name)
            .ok_or_else(|| EmbeddedError::NoSuchMember(name.to_string()))?;
        c.kill().await;
        Ok(())
    }

    /// The name of the controller leading `cluster`, and its epoch, if one leads.
    pub fn leader(&self, cluster: &str) -> Option<(String, u64)> {
        self.controllers
            .iter()
            .find_map(|(name, c)| match c.role(cluster).map(|r| *r.borrow()) {
                Some(Role::Leader { epoch }) => Some((name.clone(), epoch)),
                _ => None,
            })
    }

    /// Waits until some controller leads `cluster`, at most `timeout`.
    pub async fn wait_leader(&self, cluster: &str, timeout: Duration) -> Option<(String, u64)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader(cluster) {
                return Some(l);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A spectator of `cluster`.
    pub async fn spectator(&mut self, cluster: &str) -> Result<Spectator, EmbeddedError> {
        self.clients += 1;
        let name = format!("spectator-{}", self.clients);
        let store = self.store_as(&name, RoleSet::of(AuthzRole::Spectator));
        Ok(Spectator::connect(store, cluster).await?)
    }

    /// Writes a record at a path (for tests that set up clusters by hand).
    pub async fn put_record(&mut self, path: &str, record: &Record) -> Result<(), EmbeddedError> {
        self.store().set(path, &record.to_bytes(), None).await?;
        Ok(())
    }

    /// The layout of `cluster`.
    pub fn layout(cluster: &str) -> Layout {
        Layout::new(cluster)
    }

    /// Stops everything: participants and controllers are killed, the store shut down.
    pub async fn shutdown(mut self) {
        for (_, p) in std::mem::take(&mut self.participants) {
            p.kill().await;
        }
        for (_, c) in std::mem::take(&mut self.controllers) {
            c.kill().await;
        }
        for (_, s) in std::mem::take(&mut self.store_servers) {
            s.shutdown().await;
        }
    }
}
