//! The transport: one conformance suite over the in-memory network and over QUIC, QUIC's
//! security and framing checks, settings' TLS bootstrap, and `strand tls`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strand::transport::mem::MemNetwork;
use strand::transport::quic::{QuicConfig, QuicTransport};
use strand::transport::tls::{self, CertAndKey, TlsMaterial};
use strand::transport::{PeerRole, Transport};

#[path = "transport/cli_tls.rs"]
mod cli_tls;
#[path = "transport/conformance.rs"]
mod conformance;
#[path = "transport/quic_only.rs"]
mod quic_only;

use conformance::Net;

/// The in-memory network, with no loss or delay.
pub struct MemNet {
    net: MemNetwork,
}

impl MemNet {
    fn new() -> Self {
        MemNet {
            net: MemNetwork::new(7),
        }
    }
}

impl Net for MemNet {
    async fn node(&self, name: &str) -> Arc<dyn Transport> {
        self.net.endpoint(name)
    }

    async fn node_with_max_frame(&self, name: &str, max: usize) -> Arc<dyn Transport> {
        Arc::new(self.net.endpoint(name).with_max_frame(max))
    }

    async fn client(&self, name: &str) -> Arc<dyn Transport> {
        self.net.client(name)
    }

    async fn restart(&self, node: Arc<dyn Transport>) -> Arc<dyn Transport> {
        let (name, addr) = (node.local_name().to_string(), node.local_addr());
        node.shutdown().await;
        self.net.endpoint_at(&name, addr, PeerRole::Node).unwrap()
    }
}

/// QUIC endpoints on loopback, with certificates from one test CA.
pub struct QuicNet {
    ca: CertAndKey,
    materials: Mutex<BTreeMap<(String, bool), TlsMaterial>>,
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

impl QuicNet {
    fn new() -> Self {
        QuicNet {
            ca: tls::generate_ca("test CA").unwrap(),
            materials: Mutex::new(BTreeMap::new()),
        }
    }

    /// The same material for the same name every time (so a restart keeps its key).
    pub fn material(&self, name: &str, role: PeerRole) -> TlsMaterial {
        let mut materials = self.materials.lock().unwrap();
        materials
            .entry((name.to_string(), role == PeerRole::Node))
            .or_insert_with(|| {
                let issued = tls::issue_certificate(
                    &self.ca,
                    name,
                    role,
                    match role {
                        PeerRole::Node => strand::transport::mem::MemNetwork::NODE_ROLES,
                        PeerRole::Client => strand::transport::mem::MemNetwork::CLIENT_ROLES,
                    },
                    &[],
                    &[],
                )
                .unwrap();
                TlsMaterial::from_pem(&self.ca.cert_pem, &issued.cert_pem, &issued.key_pem).unwrap()
            })
            .clone()
    }

    pub fn config(&self, name: &str) -> QuicConfig {
        QuicConfig::new(loopback(), self.material(name, PeerRole::Node))
    }
}

impl Net for QuicNet {
    async fn node(&self, name: &str) -> Arc<dyn Transport> {
        QuicTransport::bind(self.config(name)).unwrap()
    }

    async fn node_with_max_frame(&self, name: &str, max: usize) -> Arc<dyn Transport> {
        let mut config = self.config(name);
        config.max_frame = max;
        QuicTransport::bind(config).unwrap()
    }

    async fn client(&self, name: &str) -> Arc<dyn Transport> {
        QuicTransport::client(QuicConfig::new(loopback(), self.material(name, PeerRole::Client))).unwrap()
    }

    async fn restart(&self, node: Arc<dyn Transport>) -> Arc<dyn Transport> {
        let (name, addr) = (node.local_name().to_string(), node.local_addr());
        node.shutdown().await;
        drop(node);
        let mut config = self.config(&name);
        config.listen = addr;
        // shutdown() gives the port back at once; allow for a slow machine all the same.
        let deadline = tokio::time::Instant::now() + conformance::PATIENCE;
        loop {
            match QuicTransport::bind(config.clone()) {
                Ok(t) => return t,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("rebinding {addr}: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot rebind {addr}: {e}"),
            }
        }
    }
}

macro_rules! conformance_tests {
    ($make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let net = $make;
                crate::conformance::$case(&net).await;
            }
        )*
    };
}

macro_rules! all_conformance_tests {
    ($make:expr) => {
        conformance_tests!($make;
            request_answer_and_identity,
            refusals_are_refused_not_unknown,
            name_mismatch_is_refused_before_delivery,
            frame_limits_hold_at_both_ends,
            timeout_is_outcome_unknown,
            one_way_messages_are_delivered,
            datagrams_arrive_and_are_bounded,
            many_concurrent_requests_on_one_connection,
            peer_restart_at_the_same_address_reconnects,
            unreachable_peers_and_clients_are_unreachable,
            shutdown_closes_everything,
            a_handler_serves_without_an_inbox,
        );
    };
}

mod over_mem {
    use super::*;
    all_conformance_tests!(MemNet::new());
}

mod over_quic {
    use super::*;
    all_conformance_tests!(QuicNet::new());
}
