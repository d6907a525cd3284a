//! What only the QUIC transport can show: peers without the right certificate get nothing,
//! bad frames on a raw stream refuse only that stream, and a node killed with SIGKILL and
//! restarted at the same address is reconnected to (stateless reset, not an idle timeout).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use strand::transport::quic::{QuicConfig, QuicTransport};
use strand::transport::tls::{self, TlsDir, TlsMaterial};
use strand::transport::{PeerAddr, PeerRole, Service, Transport, TransportError};

use super::conformance::{serve, PATIENCE};
use super::{loopback, QuicNet};

/// Accepts any server certificate: a stand-in for an attacker's client, never for strand.
#[derive(Debug)]
struct AcceptAnything;

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn raw_endpoint() -> quinn::Endpoint {
    quinn::Endpoint::client(loopback()).unwrap()
}

fn quinn_client(crypto: rustls::ClientConfig) -> quinn::ClientConfig {
    quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(crypto).unwrap()))
}

/// A raw QUIC connection to `server` with a node certificate of `net`'s CA: strand's framing
/// is then written by hand.
async fn raw_node_connection(net: &QuicNet, server: &QuicTransport) -> (quinn::Endpoint, quinn::Connection) {
    raw_connection_as(net, server, "raw").await
}

/// [`raw_node_connection`] with the node certificate of `name`.
async fn raw_connection_as(
    net: &QuicNet,
    server: &QuicTransport,
    name: &str,
) -> (quinn::Endpoint, quinn::Connection) {
    let crypto = net.material(name, PeerRole::Node).client_config().unwrap();
    let endpoint = raw_endpoint();
    let conn = endpoint
        .connect_with(quinn_client(crypto), server.local_addr(), "strand")
        .unwrap()
        .await
        .unwrap();
    (endpoint, conn)
}

/// Opens a stream, writes `bytes`, finishes, and reads the whole answer.
async fn raw_exchange(conn: &quinn::Connection, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    // The peer may stop reading early (that is the point of some of these); ignore that.
    let _ = send.write_all(bytes).await;
    let _ = send.finish();
    recv.read_to_end(1 << 20).await.map_err(|e| e.to_string())
}

/// A request header as strand's framing writes it (see `src/transport/frame.rs`).
fn header(service: Service, len: u32) -> Vec<u8> {
    let mut h = vec![b'S', 1, 1, 0];
    h.extend_from_slice(&service.0.to_be_bytes());
    h.extend_from_slice(&len.to_be_bytes());
    h
}

/// Splits an answer into (refused?, body).
fn parse_answer(answer: &[u8]) -> (bool, String) {
    assert!(answer.len() >= 5, "answer too short: {answer:?}");
    let len = u32::from_be_bytes([answer[1], answer[2], answer[3], answer[4]]) as usize;
    assert_eq!(answer.len(), 5 + len, "answer length");
    (answer[0] == 1, String::from_utf8_lossy(&answer[5..]).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_a_client_certificate_gets_nothing() {
    let net = QuicNet::new();
    let server = QuicTransport::bind(net.config("b")).unwrap();
    let (seen, _) = serve(server.register(Service::STORE, 8).unwrap());
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything))
        .with_no_client_auth();
    crypto.alpn_protocols = vec![tls::ALPN.to_vec()];
    let endpoint = raw_endpoint();
    let outcome = async {
        // TLS 1.3: the client may finish its side of the handshake before the server has
        // judged its (missing) certificate, so the refusal can arrive after a stream opens.
        let conn = match endpoint
            .connect_with(quinn_client(crypto), server.local_addr(), "strand")
            .unwrap()
            .await
        {
            Ok(conn) => conn,
            Err(e) => return e,
        };
        let mut request = header(Service::STORE, 5);
        request.extend_from_slice(b"hello");
        let answer = raw_exchange(&conn, &request).await;
        assert!(
            answer.is_err(),
            "answered without a client certificate: {answer:?}"
        );
        conn.closed().await
    };
    let err = tokio::time::timeout(PATIENCE, outcome).await.unwrap();
    // A TLS alert (QUIC CRYPTO_ERROR 0x100-0x1ff) from the server.
    let quinn::ConnectionError::ConnectionClosed(close) = &err else {
        panic!("expected the server to close the connection, got {err:?}");
    };
    assert!((0x100..0x200).contains(&u64::from(close.error_code)), "{close}");
    assert!(seen.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused_both_ways() {
    let net = QuicNet::new();
    let other = QuicNet::new();
    let server = QuicTransport::bind(net.config("b")).unwrap();
    let (seen, _) = serve(server.register(Service::STORE, 8).unwrap());
    // Same name, other CA.
    let impostor = QuicTransport::bind(other.config("a")).unwrap();
    let (impostor_seen, _) = serve(impostor.register(Service::STORE, 8).unwrap());
    let r = impostor
        .request(
            &PeerAddr::any(server.local_addr()),
            Service::STORE,
            Bytes::from_static(b"x"),
            PATIENCE,
        )
        .await;
    assert!(matches!(r, Err(TransportError::Authentication { .. })), "{r:?}");
    let r = server
        .request(
            &PeerAddr::named("a", impostor.local_addr()),
            Service::STORE,
            Bytes::from_static(b"x"),
            PATIENCE,
        )
        .await;
    assert!(matches!(r, Err(TransportError::Authentication { .. })), "{r:?}");
    let r = impostor
        .send(
            &PeerAddr::any(server.local_addr()),
            Service::STORE,
            Bytes::from_static(b"x"),
            PATIENCE,
        )
        .await;
    assert!(matches!(r, Err(TransportError::Authentication { .. })), "{r:?}");
    assert!(seen.requests().is_empty() && impostor_seen.requests().is_empty());
    // A client certificate of the other CA fares no better.
    let cli = QuicTransport::client(QuicConfig::new(
        loopback(),
        other.material("admin", PeerRole::Client),
    ))
    .unwrap();
    let r = cli
        .request(
            &PeerAddr::any(server.local_addr()),
            Service::STORE,
            Bytes::from_static(b"x"),
            PATIENCE,
        )
        .await;
    assert!(matches!(r, Err(TransportError::Authentication { .. })), "{r:?}");
    assert!(seen.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_cannot_serve() {
    let net = QuicNet::new();
    // strand refuses to serve with one...
    let r = QuicTransport::bind(QuicConfig::new(
        loopback(),
        net.material("admin", PeerRole::Client),
    ));
    assert!(matches!(r, Err(TransportError::Setup { .. })), "{r:?}");
    // ...and a strand node refuses a server that presents one.
    let ca = tls::generate_ca("ca").unwrap();
    let issued = tls::issue_certificate(
        &ca,
        "admin",
        PeerRole::Client,
        strand::authz::RoleSet::of(strand::authz::Role::Admin),
        &[],
        &[],
    )
    .unwrap();
    let node_issued = tls::issue_certificate(
        &ca,
        "a",
        PeerRole::Node,
        strand::authz::RoleSet::of(strand::authz::Role::Store),
        &[],
        &[],
    )
    .unwrap();
    let node_material =
        TlsMaterial::from_pem(&ca.cert_pem, &node_issued.cert_pem, &node_issued.key_pem).unwrap();
    let cert = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    let mut crypto = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    crypto.alpn_protocols = vec![tls::ALPN.to_vec()];
    let server_config =
        quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(crypto).unwrap()));
    let rogue = quinn::Endpoint::server(server_config, loopback()).unwrap();
    let rogue_addr = rogue.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    let acceptor = tokio::spawn(async move {
        while let Some(incoming) = rogue.accept().await {
            if let Ok(conn) = incoming.await {
                if conn.accept_bi().await.is_ok() {
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }
    });
    let node = QuicTransport::bind(QuicConfig::new(loopback(), node_material)).unwrap();
    let r = node
        .request(
            &PeerAddr::any(rogue_addr),
            Service::STORE,
            Bytes::from_static(b"secret"),
            PATIENCE,
        )
        .await;
    assert!(matches!(r, Err(TransportError::Authentication { .. })), "{r:?}");
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no stream reached the rogue"
    );
    acceptor.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_frames_refuse_only_their_stream() {
    let net = QuicNet::new();
    let mut config = net.config("b");
    config.max_frame = 1024;
    let server = QuicTransport::bind(config).unwrap();
    let (seen, _) = serve(server.register(Service::STORE, 64).unwrap());
    let (_endpoint, conn) = raw_node_connection(&net, &server).await;

    let mut valid = header(Service::STORE, 10);
    valid.extend_from_slice(b"still-here");
    let mut short_body = header(Service::STORE, 100);
    short_body.extend_from_slice(b"only ten b");
    let mut bad_kind = header(Service::STORE, 1);
    bad_kind[2] = 9;
    let mut bad_version = header(Service::STORE, 1);
    bad_version[1] = 200;
    let oversized = {
        let mut h = header(Service::STORE, 1025);
        h.extend(std::iter::repeat_n(0u8, 200_000));
        h
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad magic", b"XXXXXXXXXXXXXXXX".to_vec()),
        ("stream ended after 3", b"S\x01\x01".to_vec()),
        ("unknown kind", bad_kind),
        ("version 200", bad_version),
        ("exceeds the maximum of 1024", oversized),
        ("body ended after 10 of 100", short_body),
        ("no such service", {
            let mut h = header(Service(999), 1);
            h.push(0);
            h
        }),
    ];
    // Every bad stream, and a good one, at the same time on one connection.
    let bad = futures::future::join_all(cases.iter().map(|(_, bytes)| raw_exchange(&conn, bytes)));
    let (bad, good) = tokio::join!(bad, raw_exchange(&conn, &valid));
    for ((needle, _), answer) in cases.iter().zip(bad) {
        let (refused, reason) = parse_answer(&answer.unwrap());
        assert!(refused && reason.contains(needle), "{needle}: {reason}");
    }
    assert_eq!(parse_answer(&good.unwrap()), (false, "still-here".to_string()));
    // The connection survived, and so did the endpoint.
    assert!(conn.close_reason().is_none());
    let (refused, body) = parse_answer(&raw_exchange(&conn, &valid).await.unwrap());
    assert!(!refused && body == "still-here");
    let a = QuicTransport::bind(net.config("a")).unwrap();
    let r = a
        .request(
            &PeerAddr::named("b", server.local_addr()),
            Service::STORE,
            Bytes::from_static(b"ok"),
            PATIENCE,
        )
        .await;
    assert_eq!(r.unwrap(), Bytes::from_static(b"ok"));
    assert_eq!(
        seen.requests().len(),
        3,
        "only the well-formed requests were delivered"
    );
    // Garbage datagrams are dropped without harm.
    conn.send_datagram(Bytes::from_static(b"\xff")).unwrap();
    conn.send_datagram(Bytes::from_static(b"\x01\x00")).unwrap();
    let (refused, _) = parse_answer(&raw_exchange(&conn, &valid).await.unwrap());
    assert!(!refused);
}

/// This process's virtual size in bytes (Linux).
fn virtual_size() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_frame_lengths_are_not_allocated_before_the_bytes_arrive() {
    const STREAMS: usize = 512;
    let net = QuicNet::new();
    let server = QuicTransport::bind(net.config("b")).unwrap();
    let (seen, _) = serve(server.register(Service::STORE, 64).unwrap());
    let (_endpoint, conn) = raw_node_connection(&net, &server).await;
    let before = virtual_size();
    // Each stream claims a body of the maximum frame (16 MiB) and sends none of it: 8 GiB
    // if the claims were allocated.
    let mut held = Vec::new();
    for _ in 0..STREAMS {
        let (mut send, recv) = conn.open_bi().await.unwrap();
        send.write_all(&header(Service::STORE, 16 << 20)).await.unwrap();
        held.push((send, recv));
    }
    // A request after them is still served, and by then the server has read every header.
    let mut valid = header(Service::STORE, 2);
    valid.extend_from_slice(b"ok");
    let (refused, body) = parse_answer(&raw_exchange(&conn, &valid).await.unwrap());
    assert!(!refused && body == "ok");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let grown = virtual_size().saturating_sub(before);
    assert!(
        grown < 2 << 30,
        "{STREAMS} unsent 16 MiB bodies grew the process by {} MiB",
        grown >> 20
    );
    assert_eq!(seen.requests().len(), 1);
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_over_its_connection_limit_is_refused_with_the_reason_and_others_are_served() {
    let net = QuicNet::new();
    let mut config = net.config("b");
    config.max_connections_per_peer = 2;
    let server = QuicTransport::bind(config).unwrap();
    let (seen, _) = serve(server.register(Service::STORE, 64).unwrap());
    let mut echo = header(Service::STORE, 2);
    echo.extend_from_slice(b"hi");
    let (_e1, c1) = raw_connection_as(&net, &server, "greedy").await;
    let (_e2, c2) = raw_connection_as(&net, &server, "greedy").await;
    for c in [&c1, &c2] {
        assert_eq!(
            parse_answer(&raw_exchange(c, &echo).await.unwrap()),
            (false, "hi".into())
        );
    }
    // The third is closed at once, saying why.
    let (_e3, c3) = raw_connection_as(&net, &server, "greedy").await;
    match tokio::time::timeout(PATIENCE, c3.closed()).await.unwrap() {
        quinn::ConnectionError::ApplicationClosed(ac) => {
            let reason = String::from_utf8_lossy(&ac.reason).into_owned();
            assert!(reason.contains("greedy already holds 2 connections"), "{reason}");
        }
        other => panic!("closed for another reason: {other}"),
    }
    // Another identity is served; and the greedy one again once it closed one.
    let (_e4, other) = raw_connection_as(&net, &server, "polite").await;
    assert_eq!(
        parse_answer(&raw_exchange(&other, &echo).await.unwrap()),
        (false, "hi".into())
    );
    c1.close(0u32.into(), b"done");
    let mut admitted = false;
    for _ in 0..50 {
        let (_e5, c5) = raw_connection_as(&net, &server, "greedy").await;
        if let Ok(answer) = raw_exchange(&c5, &echo).await {
            assert_eq!(parse_answer(&answer), (false, "hi".into()));
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted, "a closed connection was never released");
    assert_eq!(seen.requests().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_over_its_in_flight_limit_gets_refused_streams_and_others_are_served() {
    const LIMIT: usize = 4;
    let net = QuicNet::new();
    let mut config = net.config("b");
    config.max_streams_per_peer = LIMIT;
    let server = QuicTransport::bind(config).unwrap();
    let to = PeerAddr::named("b", server.local_addr());
    let (seen, _) = serve(server.register(Service::STORE, 64).unwrap());
    let greedy = QuicTransport::client(QuicConfig::new(
        loopback(),
        net.material("greedy", PeerRole::Client),
    ))
    .unwrap();
    let polite = QuicTransport::client(QuicConfig::new(
        loopback(),
        net.material("polite", PeerRole::Client),
    ))
    .unwrap();
    // LIMIT requests the server holds unanswered.
    let mut hanging = Vec::new();
    for _ in 0..LIMIT {
        hanging.push(greedy.request(
            &to,
            Service::STORE,
            Bytes::from_static(b"hang"),
            Duration::from_secs(60),
        ));
    }
    let hanging: Vec<_> = hanging.into_iter().map(tokio::spawn).collect();
    let deadline = std::time::Instant::now() + PATIENCE;
    while seen.requests().len() < LIMIT {
        assert!(
            std::time::Instant::now() < deadline,
            "the held requests never arrived"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // One more from the same identity is refused, saying why; another identity is served.
    let over = greedy
        .request(&to, Service::STORE, Bytes::from_static(b"more"), PATIENCE)
        .await;
    match over {
        Err(TransportError::Refused { reason, .. }) => {
            assert!(reason.contains("already has 4 requests in flight"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let ok = polite
        .request(&to, Service::STORE, Bytes::from_static(b"whoami"), PATIENCE)
        .await
        .unwrap();
    assert_eq!(ok, Bytes::from_static(b"polite:client"));
    assert_eq!(
        seen.requests().len(),
        LIMIT + 1,
        "the refused request reached the service"
    );
    for h in hanging {
        h.abort();
    }
}

/// Environment variable that turns [`child_node`] into a node process.
const CHILD_ENV: &str = "STRAND_TEST_CHILD_NODE";

/// Not a test by itself: when [`CHILD_ENV`] is set ("TLS_DIR ADDR"), runs an echo node at ADDR
/// until killed, printing `READY addr` once it listens.
#[test]
#[ignore = "helper process for killed_node_restarted_at_the_same_address_is_reconnected"]
fn child_node() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (dir, addr) = spec.split_once(' ').unwrap();
    let addr: SocketAddr = addr.parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let material = TlsDir::new(dir).load("b", PeerRole::Node).unwrap();
        let mut config = QuicConfig::new(addr, material);
        config.keep_alive = Duration::ZERO;
        config.idle_timeout = Duration::from_secs(120);
        let node = QuicTransport::bind(config).unwrap();
        let _served = serve(node.register(Service::STORE, 64).unwrap());
        println!("READY {}", node.local_addr());
        futures::future::pending::<()>().await;
    });
}

/// A child node process, killed (SIGKILL) when dropped, so a failing test leaves none behind.
struct ChildNode(Child);

impl ChildNode {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        self.kill();
    }
}

fn start_child(dir: &std::path::Path, addr: SocketAddr) -> (ChildNode, SocketAddr) {
    let mut child = ChildNode(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "quic_only::child_node",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, format!("{} {addr}", dir.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let ready = loop {
        match lines.next() {
            Some(Ok(line)) => {
                // libtest prints "test NAME ... " on the same line first.
                if let Some((_, addr)) = line.split_once("READY ") {
                    break addr.trim().parse().unwrap();
                }
            }
            other => panic!("the child node did not start: {other:?}"),
        }
    };
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, ready)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_restarted_at_the_same_address_is_reconnected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = TlsDir::new(tmp.path());
    dir.create_ca("test CA", false).unwrap();
    let store = strand::authz::RoleSet::of(strand::authz::Role::Store);
    for name in ["b", "a"] {
        dir.issue(name, PeerRole::Node, store, &[], &[], false).unwrap();
    }
    // No keep-alive and long idle timeouts at both ends: only a stateless reset can reveal the
    // restart before the request's deadline (without it, this test fails with TimedOut).
    let mut config = QuicConfig::new(loopback(), dir.load("a", PeerRole::Node).unwrap());
    config.keep_alive = Duration::ZERO;
    config.idle_timeout = Duration::from_secs(120);
    let a = QuicTransport::bind(config).unwrap();

    let (mut child, addr) = start_child(tmp.path(), loopback());
    let to = PeerAddr::named("b", addr);
    let ask = || a.request(&to, Service::STORE, Bytes::from_static(b"ping"), PATIENCE);
    assert_eq!(ask().await.unwrap(), Bytes::from_static(b"ping"));

    child.kill(); // SIGKILL: no close frame is sent
    let (mut child, again) = start_child(tmp.path(), addr);
    assert_eq!(again, addr);
    let mut failures = Vec::new();
    loop {
        match ask().await {
            Ok(answer) => {
                assert_eq!(answer, Bytes::from_static(b"ping"));
                break;
            }
            Err(e) => {
                // The old connection's first packet draws a stateless reset: "lost" at once
                // (outcome unknown: the old process might have run it), never a timeout.
                assert!(
                    matches!(
                        e,
                        TransportError::Lost { .. } | TransportError::Unreachable { .. }
                    ),
                    "{e:?}"
                );
                failures.push(e);
                assert!(failures.len() < 3, "no reconnect: {failures:?}");
            }
        }
    }
    child.kill();
}

/// The fault layer of fault runs (`transport::faults`, `strand --net-faults`): an endpoint's
/// rules drop what it sends and hears, by address or all, and healing restores the link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn net_fault_rules_cut_a_link_one_way_or_both_and_healing_restores_it() {
    use strand::transport::faults::{NetFaults, Rules};
    let net = QuicNet::new();
    let faults = Arc::new(NetFaults::default());
    let mut config = net.config("b");
    config.net_faults = Some(faults.clone());
    let b = QuicTransport::bind(config).unwrap();
    let (seen, _) = serve(b.register(Service::STORE, 64).unwrap());
    let a = QuicTransport::bind(net.config("a")).unwrap();
    let c = QuicTransport::bind(net.config("c")).unwrap();
    let to_b = PeerAddr::named(b.local_name(), b.local_addr());
    let short = Duration::from_millis(400);
    let ask = |from: &Arc<QuicTransport>, body: &'static str| {
        let (from, to) = (from.clone(), to_b.clone());
        async move {
            from.request(&to, Service::STORE, Bytes::from_static(body.as_bytes()), short)
                .await
        }
    };
    ask(&a, "before").await.expect("no faults: answered");
    // b hears nothing from a: a's requests go unanswered, c's are served.
    faults.set(Rules::parse(&format!("in {}", a.local_addr())).unwrap());
    assert!(ask(&a, "cut-in").await.is_err(), "b must not hear a");
    ask(&c, "other").await.expect("c is not cut");
    // b says nothing to anyone: even c's requests go unanswered.
    faults.set(Rules::parse("out all").unwrap());
    assert!(ask(&c, "cut-out").await.is_err(), "b's answers must be dropped");
    // Healed: a is answered again (QUIC retransmits or redials).
    faults.set(Rules::default());
    let mut healed = false;
    for _ in 0..50 {
        if ask(&a, "after").await.is_ok() {
            healed = true;
            break;
        }
    }
    assert!(healed, "the link never came back after the rules were cleared");
    let bodies: Vec<Bytes> = seen.requests().into_iter().map(|(_, b)| b).collect();
    assert!(
        bodies.contains(&Bytes::from_static(b"cut-out")),
        "b heard c; only its answer was lost"
    );
}

/// After a spell of total loss, QUIC's probe timeout has backed off to seconds and the
/// connection's congestion window is full of lost data: a request on that connection would
/// wait for the next probe long after the link healed. A request that times out on a
/// connection that heard nothing from the peer meanwhile makes the transport close and
/// forget it, so the first request after the heal goes out on a fresh connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_total_loss_heals_the_next_request_is_answered_promptly() {
    use strand::transport::faults::{NetFaults, Rules};
    let net = QuicNet::new();
    let faults = Arc::new(NetFaults::default());
    let mut config = net.config("a");
    config.net_faults = Some(faults.clone());
    let a = QuicTransport::bind(config).unwrap();
    let b = QuicTransport::bind(net.config("b")).unwrap();
    let _served = serve(b.register(Service::STORE, 64).unwrap());
    let to_b = PeerAddr::named(b.local_name(), b.local_addr());
    let body = Bytes::from(vec![7u8; 4096]);
    a.request(&to_b, Service::STORE, body.clone(), PATIENCE)
        .await
        .expect("no faults: answered");
    // Four and a half seconds of total loss with requests going out all along: each is lost.
    faults.set(Rules::parse("loss 1").unwrap());
    let lossy_until = tokio::time::Instant::now() + Duration::from_millis(4500);
    while tokio::time::Instant::now() < lossy_until {
        let r = a
            .request(&to_b, Service::STORE, body.clone(), Duration::from_millis(250))
            .await;
        assert!(r.is_err(), "every datagram is lost: no answer can come");
    }
    faults.set(Rules::default());
    let healed = std::time::Instant::now();
    // Healed: answered well before the backed-off probe timeout (seconds by now) would fire.
    a.request(&to_b, Service::STORE, body, Duration::from_millis(1000))
        .await
        .expect("answered within a second of the heal");
    eprintln!("answered {:?} after the heal", healed.elapsed());
}
