//! An in-process single-replica store with TLS material in a temp dir, and an [`Admin`]
//! over it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strand::admin::Admin;
use strand::model::Record;
use strand::propertystore::{replica_name, PropertyStore, ReplicaConfig, StoreClientConfig, StoreServer};
use strand::settings::{self, Settings, SettingsFlags};
use strand::transport::quic::{QuicConfig, QuicTransport};
use strand::transport::Transport;

/// The timestamp the test admin's clock gives.
pub const NOW_MS: u64 = 1_700_000_000_000;

pub struct Store {
    _dir: tempfile::TempDir,
    settings: Settings,
    addr: SocketAddr,
    server: StoreServer,
}

impl Store {
    /// Starts one replica on a free loopback port and waits until it takes writes.
    pub async fn start() -> Store {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::load_with_env(
            &SettingsFlags {
                tls_dir: Some(dir.path().join("tls")),
                store: vec![],
            },
            |_| None,
        )
        .unwrap();
        let tls =
            settings::tls_material_for(&settings, &replica_name(1), strand::authz::Role::Store).unwrap();
        let config = ReplicaConfig::new(1, "127.0.0.1:0".parse().unwrap(), dir.path().join("data"), tls);
        let server = StoreServer::start(config).await.unwrap();
        let addr = server.local_addr();
        let store = Store {
            _dir: dir,
            settings,
            addr,
            server,
        };
        let client = store.client();
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = client.set("/warmup", b"x", None).await {
            assert!(
                Instant::now() < deadline,
                "the store took no write within 30 s: {e}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        store
    }

    pub fn client(&self) -> PropertyStore {
        let tls =
            settings::tls_material_for(&self.settings, "test-client", strand::authz::Role::Admin).unwrap();
        let transport = QuicTransport::client(QuicConfig::new("127.0.0.1:0".parse().unwrap(), tls)).unwrap();
        let mut config = StoreClientConfig::new(vec![self.addr]);
        config.request_timeout = Duration::from_secs(5);
        config.deadline = Duration::from_secs(30);
        config.cache_capacity = 0;
        PropertyStore::new(transport as Arc<dyn Transport>, config)
    }

    /// An admin with a fixed clock, numbered message ids and operator `tester`.
    pub fn admin(&self) -> Admin {
        let next = Arc::new(std::sync::atomic::AtomicU64::new(1));
        Admin::new(self.client())
            .with_clock(|| NOW_MS)
            .with_id_source(move || {
                format!("msg-{}", next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
            })
            .with_user("tester")
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// The record stored at `path` (panics when absent or not a record).
pub async fn record(client: &PropertyStore, path: &str) -> Record {
    let r = client
        .get(path)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{path} is absent"));
    Record::from_json(std::str::from_utf8(&r.value).unwrap()).unwrap()
}

/// Writes a record at `path`.
pub async fn put(client: &PropertyStore, path: &str, record: &Record) {
    client
        .set(path, record.to_helix_json().as_bytes(), None)
        .await
        .unwrap();
}

/// Whether `path` exists.
pub async fn exists(client: &PropertyStore, path: &str) -> bool {
    client.get(path).await.unwrap().is_some()
}

/// A cluster `C` with instances `localhost_12913..` (`n` of them).
pub async fn cluster_with_instances(admin: &Admin, cluster: &str, n: u16) -> Vec<String> {
    admin.add_cluster(cluster).await.unwrap();
    let mut names = Vec::new();
    for i in 0..n {
        names.push(
            admin
                .add_instance(cluster, &format!("localhost:{}", 12913 + i))
                .await
                .unwrap(),
        );
    }
    names
}
