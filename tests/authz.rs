//! Authorization by role, end to end on the in-memory network: each refusal the store makes
//! (the STORE service against the caller's certificate roles, the Raft service against the
//! replica id a peer claims, the client against a replica whose certificate names another),
//! and that the same request is served when the role allows it.

use std::sync::Arc;
use std::time::Duration;

use strand::authz::{Role, RoleSet};
use strand::embedded::EmbeddedCluster;
use strand::model::{Layout, Record};
use strand::propertystore::protocol::{RaftRequest, RaftResponse};
use strand::propertystore::{
    ClientError, Cmp, Condition, Op, PropertyStore, ReplicaConfig, StoreClientConfig, StoreServer, Txn,
};
use strand::settings::{self, Settings, SettingsFlags};
use strand::transport::quic::{QuicConfig, QuicTransport};
use strand::transport::tls::{self, TlsDir, TlsMaterial};
use strand::transport::{self, reload, PeerAddr, PeerRole, Service, Transport, TransportError};

const C: &str = "AUTHZ";

fn roles(r: Role) -> RoleSet {
    RoleSet::of(r)
}

fn denied<T: std::fmt::Debug>(r: Result<T, ClientError>) -> strand::authz::Denied {
    match r {
        Err(ClientError::PermissionDenied(d)) => *d,
        other => panic!("expected a permission denial, got {other:?}"),
    }
}

async fn cluster() -> (EmbeddedCluster, PropertyStore) {
    let mut c = EmbeddedCluster::start(19).await.unwrap();
    let admin = c.store();
    admin.set(&format!("/{C}"), b"", None).await.unwrap();
    (c, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_writes_its_own_current_state_and_is_denied_another_instances() {
    let (mut c, admin) = cluster().await;
    let l = Layout::new(C);
    let p1 = c.store_as("p1", roles(Role::Participant));
    let own = l.current_state("p1", "s1", "db");
    p1.set(&own, b"{}", None).await.unwrap();
    let other = l.current_state("p2", "s1", "db");
    let d = denied(p1.set(&other, b"{}", None).await);
    assert_eq!(d.name, "p1");
    assert!(d.action.contains(&other), "{d}");
    assert!(admin.get(&other).await.unwrap().is_none(), "nothing was written");
    // Nor may it delete another's, or its live instance.
    admin.set(&l.live_instance("p2"), b"{}", None).await.unwrap();
    denied(p1.delete(&l.live_instance("p2"), None, false).await);
    assert!(admin.get(&l.live_instance("p2")).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_reads_and_writes_nothing() {
    let (mut c, admin) = cluster().await;
    admin
        .set(&format!("/{C}/PROPERTYSTORE/k"), b"v", None)
        .await
        .unwrap();
    let viewer = c.store_as("eve", roles(Role::Viewer));
    let value = |s: PropertyStore| async move {
        s.get(&format!("/{C}/PROPERTYSTORE/k"))
            .await
            .unwrap()
            .unwrap()
            .value
    };
    assert_eq!(value(viewer.clone()).await, b"v".to_vec());
    denied(viewer.set(&format!("/{C}/PROPERTYSTORE/k"), b"w", None).await);
    denied(viewer.create(&format!("/{C}/PROPERTYSTORE/new"), b"w").await);
    denied(viewer.delete(&format!("/{C}"), None, true).await);
    denied(viewer.compact(1).await);
    assert_eq!(value(admin).await, b"v".to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_controller_writes_external_views() {
    let (mut c, admin) = cluster().await;
    let ev = Layout::new(C).external_view("db");
    for (name, role) in [
        ("p1", Role::Participant),
        ("op", Role::Spectator),
        ("v", Role::Viewer),
    ] {
        let s = c.store_as(name, roles(role));
        let d = denied(s.set(&ev, b"{}", None).await);
        assert!(d.roles.contains(role.name()), "{d}");
    }
    assert!(admin.get(&ev).await.unwrap().is_none());
    // A controller writes it only as the leader: its write must be fenced by the leadership
    // record, and that record must name it.
    let controller = c.store_as("ctrl", roles(Role::Controller));
    let d = denied(controller.set(&ev, b"{}", None).await);
    assert!(d.reason.contains("leader"), "{d}");
    let leader = Layout::new(C).leader();
    let record = |id: &str| Record::new(id).to_bytes();
    let fenced = |by: &str| Txn {
        conditions: vec![Condition::Value {
            path: leader.clone(),
            cmp: Cmp::Eq,
            value: record(by),
        }],
        success: vec![Op::Set {
            path: ev.clone(),
            value: b"{}".to_vec(),
            expected_version: None,
        }],
        failure: Vec::new(),
    };
    // Another controller's fence does not do, even while that one leads.
    let other = c.store_as("ctrl-2", roles(Role::Controller));
    other
        .txn(election_take(&leader, &record("ctrl-2")))
        .await
        .unwrap();
    denied(controller.txn(fenced("ctrl-2")).await);
    // Its own fence while another leads: allowed, and the store applies nothing.
    let w = controller.txn(fenced("ctrl")).await.unwrap();
    assert!(!w.succeeded);
    assert!(admin.get(&ev).await.unwrap().is_none());
    // The leader's fenced write goes through.
    assert!(other.txn(fenced("ctrl-2")).await.unwrap().succeeded);
    assert!(admin.get(&ev).await.unwrap().is_some());
}

/// The transaction that takes the (vacant) leadership record.
fn election_take(leader: &str, mine: &[u8]) -> Txn {
    Txn {
        conditions: vec![Condition::Missing {
            path: leader.to_string(),
        }],
        success: vec![Op::Set {
            path: leader.to_string(),
            value: mine.to_vec(),
            expected_version: None,
        }],
        failure: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_replica_or_compacting_needs_the_admin_role() {
    let (mut c, admin) = cluster().await;
    let operator = c.store_as("ops", roles(Role::Operator));
    // An operator writes cluster records ...
    operator.set(&format!("/{C}/CONFIGS"), b"", None).await.unwrap();
    // ... but neither removes a replica nor compacts.
    let d = denied(operator.remove_replica(1).await);
    assert!(d.reason.contains("admin"), "{d}");
    denied(operator.compact(2).await);
    let participant = c.store_as("p1", roles(Role::Participant));
    denied(participant.remove_replica(1).await);
    // The replica is still there, and the admin compacts.
    let all = admin.status_all().await;
    assert_eq!(all[0].1.as_ref().unwrap().voters.len(), 1);
    admin.compact(2).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raft_peer_speaks_only_for_the_replica_its_certificate_names() {
    let (c, _admin) = cluster().await;
    let net = c.network();
    let vote = |id: u64| {
        RaftRequest::Vote(openraft::raft::VoteRequest {
            vote: openraft::Vote::new(1, id),
            last_log_id: None,
        })
    };
    let to = PeerAddr::named("store-1", c.store_addr());
    let call = |t: Arc<dyn Transport>, req: RaftRequest| {
        let to = to.clone();
        async move {
            transport::call::<_, RaftResponse>(&*t, &to, Service::RAFT, &req, Duration::from_secs(5)).await
        }
    };
    // store-2's certificate claiming to be replica 3: refused.
    let store2: Arc<dyn Transport> = net.endpoint_with_roles("store-2", roles(Role::Store));
    match call(store2.clone(), vote(3)).await {
        Err(TransportError::Refused { reason, .. }) => {
            assert!(
                reason.contains("replica 3") && reason.contains("store-2"),
                "{reason}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Speaking for itself, it is heard (openraft answers; this replica is no member of it).
    assert!(matches!(call(store2, vote(2)).await, Ok(RaftResponse::Vote(_))));
    // A certificate named like a replica without the store role: refused.
    let imposter: Arc<dyn Transport> = net.endpoint_with_roles("store-2", roles(Role::Participant));
    match call(imposter, vote(2)).await {
        Err(TransportError::Refused { reason, .. }) => {
            assert!(reason.contains("not a store replica"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_refuses_a_replica_whose_certificate_names_another() {
    let (c, _admin) = cluster().await;
    let net = c.network().clone();
    let addr = c.store_addr();
    let client_endpoint = net.client("pinning-client");
    let mut config = StoreClientConfig::new(vec![addr]);
    config.deadline = Duration::from_secs(3);
    config.cache_capacity = 0;
    let client = PropertyStore::new(client_endpoint as Arc<dyn Transport>, config);
    client
        .set(&format!("/{C}/PROPERTYSTORE/k"), b"v", None)
        .await
        .unwrap();
    // store-1 vanishes; another store's replica 2 comes up at its address.
    assert!(net.crash(addr));
    let tmp = tempfile::tempdir().unwrap();
    let settings = Settings::load_with_env(
        &SettingsFlags {
            tls_dir: Some(tmp.path().join("tls")),
            store: vec![],
        },
        |_| None,
    )
    .unwrap();
    let tls = settings::tls_material_for(&settings, "store-2", Role::Store).unwrap();
    let endpoint = net
        .endpoint_at_with_roles("store-2", addr, PeerRole::Node, roles(Role::Store))
        .unwrap();
    let other = StoreServer::start_on(
        ReplicaConfig::new(2, addr, tmp.path().join("store"), tls),
        endpoint as Arc<dyn Transport>,
    )
    .await
    .unwrap();
    // Its own clients use it ...
    let fresh = PropertyStore::new(
        net.client("fresh") as Arc<dyn Transport>,
        StoreClientConfig::new(vec![addr]),
    );
    assert!(fresh
        .get(&format!("/{C}/PROPERTYSTORE/k"))
        .await
        .unwrap()
        .is_none());
    // ... but the client that knew store-1 there refuses it.
    match client.get(&format!("/{C}/PROPERTYSTORE/k")).await {
        Err(ClientError::Authentication { reason, .. }) => {
            assert!(
                reason.contains("store-2") && reason.contains("store-1"),
                "{reason}"
            )
        }
        other => panic!("expected an authentication failure, got {other:?}"),
    }
    other.shutdown().await;
}

/// A QUIC node that answers every ADMIN request with the caller's name and roles.
fn whoami_server(dir: &TlsDir, name: &str) -> Arc<QuicTransport> {
    let node = QuicTransport::bind(QuicConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.load(name, PeerRole::Node).unwrap(),
    ))
    .unwrap();
    let mut inbox = node.register(Service::ADMIN, 8).unwrap();
    tokio::spawn(async move {
        while let Some(incoming) = inbox.recv().await {
            if let transport::Incoming::Request { from, reply, .. } = incoming {
                reply.ok(format!("{}:{}", from.name, from.roles).into());
            }
        }
    });
    node
}

async fn whoami(client: &QuicTransport, server: &QuicTransport) -> Result<String, TransportError> {
    let to = PeerAddr::named("srv", server.local_addr());
    let answer = client
        .request(
            &to,
            Service::ADMIN,
            bytes::Bytes::from_static(b"?"),
            Duration::from_secs(5),
        )
        .await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

fn tls_dir() -> (tempfile::TempDir, TlsDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = TlsDir::new(tmp.path().join("tls"));
    dir.create_ca("test CA", false).unwrap();
    dir.issue("srv", PeerRole::Node, roles(Role::Store), &[], &[], false)
        .unwrap();
    (tmp, dir)
}

/// Waits until `f` holds, at most 10 s.
async fn eventually<F: std::future::Future<Output = bool>>(mut f: impl FnMut() -> F) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_used_by_new_connections_without_a_restart() {
    let (_tmp, dir) = tls_dir();
    dir.issue("cli", PeerRole::Client, roles(Role::Viewer), &[], &[], false)
        .unwrap();
    let server = whoami_server(&dir, "srv");
    let client = QuicTransport::client(QuicConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.load("cli", PeerRole::Client).unwrap(),
    ))
    .unwrap();
    let _watch = reload::watch_material(
        &client,
        dir.clone(),
        "cli".into(),
        PeerRole::Client,
        Duration::from_millis(50),
        false,
    );
    assert_eq!(whoami(&client, &server).await.unwrap(), "cli:viewer");
    // The certificate is rotated on disk (a new key, another role): the running endpoint
    // picks it up and its next connection presents it.
    dir.issue("cli", PeerRole::Client, roles(Role::Operator), &[], &[], true)
        .unwrap();
    assert!(
        eventually(|| async { whoami(&client, &server).await.ok().as_deref() == Some("cli:operator") }).await,
        "the rotated certificate was never presented"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_refused() {
    let (_tmp, dir) = tls_dir();
    dir.issue("mallory", PeerRole::Client, roles(Role::Admin), &[], &[], false)
        .unwrap();
    dir.issue("alice", PeerRole::Client, roles(Role::Admin), &[], &[], false)
        .unwrap();
    let server = whoami_server(&dir, "srv");
    let _watch = reload::watch_material(
        &server,
        dir.clone(),
        "srv".into(),
        PeerRole::Node,
        Duration::from_millis(50),
        false,
    );
    // Loaded before the revocation: a revoked certificate cannot be loaded to run with.
    let mallory = dir.load("mallory", PeerRole::Client).unwrap();
    let alice = dir.load("alice", PeerRole::Client).unwrap();
    let client = |tls: &TlsMaterial| {
        QuicTransport::client(QuicConfig::new("127.0.0.1:0".parse().unwrap(), tls.clone())).unwrap()
    };
    assert_eq!(whoami(&client(&mallory), &server).await.unwrap(), "mallory:admin");
    // Connections open when the revocation arrives: mallory's is cut, alice's goes on.
    let (mallory_open, alice_open) = (client(&mallory), client(&alice));
    assert_eq!(whoami(&mallory_open, &server).await.unwrap(), "mallory:admin");
    assert_eq!(whoami(&alice_open, &server).await.unwrap(), "alice:admin");
    let serial = {
        let pem = std::fs::read_to_string(dir.cert_path("mallory", PeerRole::Client)).unwrap();
        use rustls::pki_types::pem::PemObject;
        tls::serial_hex(&rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()).unwrap()
    };
    dir.revoke(&format!("serial {serial}")).unwrap();
    // The server reloads its list; mallory's new connections are refused, alice's are not.
    assert!(
        eventually(|| async {
            matches!(
                whoami(&client(&mallory), &server).await,
                Err(TransportError::Authentication { .. })
            )
        })
        .await,
        "the revoked certificate was still accepted"
    );
    assert_eq!(whoami(&client(&alice), &server).await.unwrap(), "alice:admin");
    assert!(
        whoami(&mallory_open, &server).await.is_err(),
        "the revoked peer's open connection still serves it"
    );
    assert_eq!(whoami(&alice_open, &server).await.unwrap(), "alice:admin");
    // A revoked certificate cannot even be loaded to run with.
    let e = dir.load("mallory", PeerRole::Client).unwrap_err();
    assert!(e.to_string().contains("revoked"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrative_writes_are_audited_with_who_what_and_when() {
    let (mut c, admin) = cluster().await;
    let l = Layout::new(C);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let operator = c.store_as("ops", roles(Role::Operator));
    operator.set(&l.ideal_state("db"), b"{}", None).await.unwrap();
    operator.delete(&l.ideal_state("db"), None, false).await.unwrap();
    let participant = c.store_as("p1", roles(Role::Participant));
    participant
        .set(&l.live_instance("p1"), b"{}", None)
        .await
        .unwrap();
    denied(participant.compact(1).await);
    let other = c.store_as("ops2", roles(Role::Operator));
    other.set("/OTHER", b"", None).await.unwrap();

    let log = admin.audit(C, 100).await.unwrap();
    let by_ops: Vec<_> = log.iter().filter(|e| e.who == "ops").collect();
    assert_eq!(by_ops.len(), 2, "{log:#?}");
    assert_eq!(by_ops[0].what, vec![format!("set {}", l.ideal_state("db"))]);
    assert_eq!(by_ops[1].what, vec![format!("delete {}", l.ideal_state("db"))]);
    assert_eq!(by_ops[0].roles, "operator");
    assert!(
        by_ops[0].outcome.starts_with("revision "),
        "{}",
        by_ops[0].outcome
    );
    assert!(by_ops[0].when_ms >= before && by_ops[0].when_ms <= by_ops[1].when_ms);
    // The participant's own writes and refused requests are not administrative; another
    // cluster's writes are not this cluster's.
    assert!(log.iter().all(|e| e.who != "p1" && e.who != "ops2"), "{log:#?}");
    // The admin's creation of the cluster is there, first.
    assert_eq!(log[0].what, vec![format!("set /{C}")]);
    assert_eq!(admin.audit(C, 1).await.unwrap().len(), 1);
}
