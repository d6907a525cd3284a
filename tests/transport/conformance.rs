//! One conformance suite for every [`Transport`]: the same async test functions run over the
//! in-memory network and over QUIC with mutual TLS (see `conformance_tests!` in
//! `tests/transport.rs`), so code that works over one works over the other.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use strand::transport::{self, Inbox, Incoming, PeerAddr, PeerRole, Service, Transport, TransportError};
use tokio::sync::mpsc;

/// A generous deadline for things that must happen (a busy 2-core machine is slow, not
/// broken).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Builds endpoints of one transport implementation.
pub trait Net {
    /// A node endpoint named `name` at a fresh address.
    async fn node(&self, name: &str) -> Arc<dyn Transport>;
    /// A node endpoint that sends and accepts frames of at most `max` bytes.
    async fn node_with_max_frame(&self, name: &str, max: usize) -> Arc<dyn Transport>;
    /// A client endpoint (client certificate, accepts nothing).
    async fn client(&self, name: &str) -> Arc<dyn Transport>;
    /// Shuts `node` down and starts a new endpoint with the same name at the same address.
    async fn restart(&self, node: Arc<dyn Transport>) -> Arc<dyn Transport>;
}

/// What a test service saw.
#[derive(Clone, Default)]
pub struct Seen {
    /// Request bodies, in arrival order, with the sender's name.
    pub requests: Arc<Mutex<Vec<(String, Bytes)>>>,
}

impl Seen {
    pub fn requests(&self) -> Vec<(String, Bytes)> {
        self.requests.lock().unwrap().clone()
    }
}

/// Serves `inbox` the way every test expects:
/// `refuse` → refused "no thanks", `drop` → responder dropped, `hang` → never answered,
/// `whoami` → "NAME:ROLE" of the sender, `big:N` → N bytes, anything else → echoed.
/// One-way messages go to the returned channel.
pub fn serve(mut inbox: Inbox) -> (Seen, mpsc::Receiver<(String, Bytes)>) {
    let seen = Seen::default();
    let (tx, rx) = mpsc::channel(1024);
    let record = seen.clone();
    tokio::spawn(async move {
        let mut hung = Vec::new();
        while let Some(incoming) = inbox.recv().await {
            match incoming {
                Incoming::Request { from, body, reply } => {
                    record
                        .requests
                        .lock()
                        .unwrap()
                        .push((from.name.clone(), body.clone()));
                    match body.as_ref() {
                        b"refuse" => reply.refuse("no thanks"),
                        b"drop" => drop(reply),
                        b"hang" => hung.push(reply),
                        b"whoami" => {
                            let role = match from.role {
                                PeerRole::Node => "node",
                                PeerRole::Client => "client",
                            };
                            reply.ok(Bytes::from(format!("{}:{role}", from.name)));
                        }
                        other if other.starts_with(b"big:") => {
                            let n: usize = std::str::from_utf8(&other[4..]).unwrap().parse().unwrap();
                            reply.ok(Bytes::from(vec![7u8; n]));
                        }
                        _ => reply.ok(body),
                    }
                }
                Incoming::Message { from, body } => {
                    let _ = tx.send((from.name, body)).await;
                }
                Incoming::Datagram { .. } => {}
            }
        }
    });
    (seen, rx)
}

fn named(t: &Arc<dyn Transport>) -> PeerAddr {
    PeerAddr::named(t.local_name(), t.local_addr())
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

async fn ask(from: &Arc<dyn Transport>, to: &PeerAddr, body: &'static str) -> Result<Bytes, TransportError> {
    from.request(to, Service::STORE, b(body), PATIENCE).await
}

fn refused_with(r: &Result<Bytes, TransportError>, needle: &str) -> bool {
    matches!(r, Err(TransportError::Refused { reason, .. }) if reason.contains(needle))
}

pub async fn request_answer_and_identity<N: Net>(net: &N) {
    let a = net.node("node-a").await;
    let server = net.node("localhost_12913").await;
    let (_seen, _) = serve(server.register(Service::STORE, 64).unwrap());
    let to = named(&server);
    assert_eq!(ask(&a, &to, "hello").await.unwrap(), b("hello"));
    assert_eq!(ask(&a, &to, "whoami").await.unwrap(), b("node-a:node"));
    // Typed calls in strand's envelope (the echo returns the encoded request).
    let typed: String = transport::call(&*a, &to, Service::STORE, &"typed".to_string(), PATIENCE)
        .await
        .unwrap();
    assert_eq!(typed, "typed");
    // Any node of the cluster, and an empty body.
    assert_eq!(
        ask(&a, &PeerAddr::any(server.local_addr()), "").await.unwrap(),
        b("")
    );
    // A client is seen as a client.
    let cli = net.client("admin").await;
    assert_eq!(ask(&cli, &to, "whoami").await.unwrap(), b("admin:client"));
    assert_eq!(a.local_name(), "node-a");
}

pub async fn refusals_are_refused_not_unknown<N: Net>(net: &N) {
    let a = net.node("a").await;
    let server = net.node("b").await;
    let (_seen, _) = serve(server.register(Service::STORE, 64).unwrap());
    let to = named(&server);
    let r = ask(&a, &to, "refuse").await;
    assert!(
        matches!(&r, Err(TransportError::Refused { reason, .. }) if reason == "no thanks"),
        "{r:?}"
    );
    let e = r.unwrap_err();
    assert!(!e.is_outcome_unknown() && !e.is_not_delivered());
    let r = ask(&a, &to, "drop").await;
    assert!(refused_with(&r, "dropped"), "{r:?}");
    let r = a.request(&to, Service::RAFT, b("x"), PATIENCE).await;
    assert!(refused_with(&r, "no such service"), "{r:?}");
    // An inbox dropped unregisters its service.
    drop(server.register(Service::ADMIN, 4).unwrap());
    let r = a.request(&to, Service::ADMIN, b("x"), PATIENCE).await;
    assert!(refused_with(&r, "no such service"), "{r:?}");
    assert!(matches!(
        server.register(Service::STORE, 4),
        Err(TransportError::AlreadyRegistered { .. })
    ));
    // The connection is fine after all that.
    assert_eq!(ask(&a, &to, "still").await.unwrap(), b("still"));
}

pub async fn name_mismatch_is_refused_before_delivery<N: Net>(net: &N) {
    let a = net.node("a").await;
    let server = net.node("b").await;
    let (seen, _) = serve(server.register(Service::STORE, 64).unwrap());
    let wrong = PeerAddr::named("c", server.local_addr());
    let r = ask(&a, &wrong, "secret").await;
    let Err(e @ TransportError::Authentication { .. }) = r else {
        panic!("expected an authentication error, got {r:?}");
    };
    assert!(e.is_not_delivered());
    let r = a.send(&wrong, Service::STORE, b("secret"), PATIENCE).await;
    assert!(matches!(r, Err(TransportError::Authentication { .. })), "{r:?}");
    a.send_datagram(&wrong, Service::STORE, b("secret")).unwrap();
    // The right name still works, and the server never saw the mismatched requests.
    assert_eq!(ask(&a, &named(&server), "ok").await.unwrap(), b("ok"));
    assert_eq!(seen.requests(), vec![("a".to_string(), b("ok"))]);
}

pub async fn frame_limits_hold_at_both_ends<N: Net>(net: &N) {
    let small = net.node_with_max_frame("small", 8).await;
    let big = net.node("big").await;
    let (_s1, _) = serve(small.register(Service::STORE, 64).unwrap());
    let (_s2, _) = serve(big.register(Service::STORE, 64).unwrap());
    assert_eq!(small.max_frame_size(), 8);
    // Sending: refused locally, nothing sent.
    let r = small
        .request(&named(&big), Service::STORE, Bytes::from(vec![1u8; 9]), PATIENCE)
        .await;
    assert!(
        matches!(r, Err(TransportError::FrameTooLarge { size: 9, max: 8 })),
        "{r:?}"
    );
    let r = small
        .send(&named(&big), Service::STORE, Bytes::from(vec![1u8; 9]), PATIENCE)
        .await;
    assert!(
        matches!(r, Err(TransportError::FrameTooLarge { size: 9, max: 8 })),
        "{r:?}"
    );
    // Receiving: the small endpoint refuses a larger frame, and carries on.
    let r = big
        .request(
            &named(&small),
            Service::STORE,
            Bytes::from(vec![1u8; 9]),
            PATIENCE,
        )
        .await;
    assert!(refused_with(&r, "exceeds"), "{r:?}");
    let r = big
        .send(
            &named(&small),
            Service::STORE,
            Bytes::from(vec![1u8; 100_000]),
            PATIENCE,
        )
        .await;
    assert!(
        matches!(&r, Err(TransportError::Refused { reason, .. }) if reason.contains("exceeds")),
        "{r:?}"
    );
    assert_eq!(ask(&big, &named(&small), "fits").await.unwrap(), b("fits"));
    // Answers: too large for the requester, or for the responder.
    let r = ask(&small, &named(&big), "big:100").await;
    assert!(refused_with(&r, "exceeds"), "{r:?}");
    let r = ask(&big, &named(&small), "big:100").await;
    assert!(refused_with(&r, "exceeds"), "{r:?}");
    assert_eq!(ask(&small, &named(&big), "big:8").await.unwrap().len(), 8);
    // A large frame within the default limit goes through whole.
    let large = Bytes::from((0..3_000_000u32).map(|i| i as u8).collect::<Vec<u8>>());
    let echoed = big
        .request(&named(&small), Service::STORE, Bytes::from_static(b"x"), PATIENCE)
        .await
        .unwrap();
    assert_eq!(echoed, b("x"));
    let other = net.node("other").await;
    let (_s3, _) = serve(other.register(Service::STORE, 64).unwrap());
    assert_eq!(
        big.request(&named(&other), Service::STORE, large.clone(), PATIENCE)
            .await
            .unwrap(),
        large
    );
}

pub async fn timeout_is_outcome_unknown<N: Net>(net: &N) {
    let a = net.node("a").await;
    let server = net.node("b").await;
    let (seen, _) = serve(server.register(Service::STORE, 64).unwrap());
    let to = named(&server);
    // Connect first, so the deadline passes while waiting for the answer.
    assert_eq!(ask(&a, &to, "warm").await.unwrap(), b("warm"));
    let r = a
        .request(&to, Service::STORE, b("hang"), Duration::from_millis(300))
        .await;
    let Err(e @ TransportError::TimedOut { .. }) = r else {
        panic!("expected a timeout, got {r:?}");
    };
    assert!(e.is_outcome_unknown() && !e.is_not_delivered());
    assert!(
        seen.requests().iter().any(|(_, body)| body == "hang"),
        "it was delivered"
    );
    assert_eq!(ask(&a, &to, "after").await.unwrap(), b("after"));
}

pub async fn one_way_messages_are_delivered<N: Net>(net: &N) {
    let a = net.node("a").await;
    let server = net.node("b").await;
    let (_seen, mut messages) = serve(server.register(Service::MESSAGING, 64).unwrap());
    let to = named(&server);
    for i in 0..20 {
        a.send(&to, Service::MESSAGING, Bytes::from(format!("m{i}")), PATIENCE)
            .await
            .unwrap();
    }
    for i in 0..20 {
        let (from, body) = tokio::time::timeout(PATIENCE, messages.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((from.as_str(), body), ("a", Bytes::from(format!("m{i}"))));
    }
    let r = a.send(&to, Service::RAFT, b("x"), PATIENCE).await;
    assert!(
        matches!(&r, Err(TransportError::Refused { reason, .. }) if reason.contains("no such service")),
        "{r:?}"
    );
}

pub async fn datagrams_arrive_and_are_bounded<N: Net>(net: &N) {
    let a = net.node("a").await;
    let server = net.node("b").await;
    let mut gossip = server.register(Service::MEMBERSHIP, 64).unwrap();
    let to = named(&server);
    let max = a.max_datagram_size();
    assert!(max >= 1000, "room for SWIM packets: {max}");
    let r = a.send_datagram(&to, Service::MEMBERSHIP, Bytes::from(vec![0u8; max + 1]));
    assert!(matches!(r, Err(TransportError::FrameTooLarge { .. })), "{r:?}");
    // Unreliable, so keep sending until one arrives; the first ones also open the connection.
    let full = Bytes::from(vec![9u8; max]);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let got = loop {
        a.send_datagram(&to, Service::MEMBERSHIP, full.clone()).unwrap();
        match tokio::time::timeout(Duration::from_millis(50), gossip.recv()).await {
            Ok(Some(Incoming::Datagram { from, body })) => break (from, body),
            Ok(other) => panic!("expected a datagram, got {other:?}"),
            Err(_) => assert!(tokio::time::Instant::now() < deadline, "no datagram arrived"),
        }
    };
    assert_eq!(
        (got.0.name.as_str(), got.0.role, got.1.len()),
        ("a", PeerRole::Node, max)
    );
}

pub async fn many_concurrent_requests_on_one_connection<N: Net>(net: &N) {
    let a = net.node("a").await;
    let server = net.node("b").await;
    let (_seen, _) = serve(server.register(Service::STORE, 1024).unwrap());
    let to = named(&server);
    let answers = join_all((0..512).map(|i| {
        let body = Bytes::from(format!("request-{i}-{}", "x".repeat(i % 97)));
        let pending = a.request(&to, Service::STORE, body.clone(), PATIENCE);
        async move { (body, pending.await) }
    }))
    .await;
    for (body, answer) in answers {
        assert_eq!(answer.unwrap(), body);
    }
}

pub async fn peer_restart_at_the_same_address_reconnects<N: Net>(net: &N) {
    let a = net.node("a").await;
    let server = net.node("b").await;
    let (_seen, _) = serve(server.register(Service::STORE, 64).unwrap());
    let to = named(&server);
    assert_eq!(ask(&a, &to, "before").await.unwrap(), b("before"));
    let addr = server.local_addr();
    let server = net.restart(server).await;
    assert_eq!(server.local_addr(), addr);
    let (_seen, _) = serve(server.register(Service::STORE, 64).unwrap());
    // A request on the old connection may be "outcome unknown"; then the new one works.
    let mut failures = Vec::new();
    loop {
        match ask(&a, &to, "after").await {
            Ok(answer) => {
                assert_eq!(answer, b("after"));
                break;
            }
            Err(e) => {
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
    // Gossip reaches the new incarnation too.
    let mut gossip = server.register(Service::MEMBERSHIP, 8).unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        a.send_datagram(&to, Service::MEMBERSHIP, b("ping")).unwrap();
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), gossip.recv()).await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no datagram after the restart"
        );
    }
}

pub async fn unreachable_peers_and_clients_are_unreachable<N: Net>(net: &N) {
    let a = net.node("a").await;
    let nobody = PeerAddr::any("127.0.0.1:1".parse().unwrap());
    let r = a
        .request(&nobody, Service::STORE, b("x"), Duration::from_millis(500))
        .await;
    assert!(matches!(r, Err(TransportError::Unreachable { .. })), "{r:?}");
    assert!(r.unwrap_err().is_not_delivered());
    // Client endpoints accept no connections.
    let cli = net.client("admin").await;
    let r = a
        .request(
            &PeerAddr::any(cli.local_addr()),
            Service::STORE,
            b("x"),
            Duration::from_secs(2),
        )
        .await;
    assert!(matches!(r, Err(TransportError::Unreachable { .. })), "{r:?}");
}

pub async fn shutdown_closes_everything<N: Net>(net: &N) {
    let a = net.node("a").await;
    let server = net.node("b").await;
    let (_seen, _) = serve(server.register(Service::STORE, 64).unwrap());
    let mut a_inbox = a.register(Service::STORE, 8).unwrap();
    let to = named(&server);
    assert_eq!(ask(&a, &to, "x").await.unwrap(), b("x"));
    a.shutdown().await;
    let r = ask(&a, &to, "x").await;
    assert!(matches!(r, Err(TransportError::Closed)), "{r:?}");
    let r = a.send(&to, Service::STORE, b("x"), PATIENCE).await;
    assert!(matches!(r, Err(TransportError::Closed)), "{r:?}");
    assert!(matches!(
        a.send_datagram(&to, Service::STORE, b("x")),
        Err(TransportError::Closed)
    ));
    assert!(matches!(
        a.register(Service::RAFT, 8),
        Err(TransportError::Closed)
    ));
    assert!(tokio::time::timeout(PATIENCE, a_inbox.recv())
        .await
        .unwrap()
        .is_none());
    // Its peers find it gone: nothing is delivered to a shut-down endpoint.
    let r = server
        .request(&named(&a), Service::STORE, b("x"), Duration::from_millis(500))
        .await;
    assert!(r.as_ref().is_err_and(|e| e.is_not_delivered()), "{r:?}");
}

/// The handler of [`a_handler_serves_without_an_inbox`]: `now` answers before returning,
/// `later` from a task of its own, `boom` panics; one-way messages and datagrams go to the
/// channel.
struct TestHandler {
    heard: mpsc::Sender<(String, Bytes)>,
}

impl transport::Handler for TestHandler {
    fn handle(&self, incoming: Incoming) {
        match incoming {
            Incoming::Request { body, reply, .. } => match body.as_ref() {
                b"boom" => panic!("this handler panics"),
                b"later" => {
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        reply.ok(b("answered later"));
                    });
                }
                _ => reply.ok(body),
            },
            Incoming::Message { from, body } | Incoming::Datagram { from, body } => {
                let _ = self.heard.try_send((from.name, body));
            }
        }
    }
}

/// [`Transport::serve`]: a handler answers at once or later, a panic fails its request
/// only, one-way messages and datagrams reach it, and dropping the [`transport::Serving`]
/// unregisters the service (refused, then free to register again).
pub async fn a_handler_serves_without_an_inbox<N: Net>(net: &N) {
    let a = net.node("a").await;
    let server = net.node("b").await;
    let (heard, mut heard_rx) = mpsc::channel(64);
    let serving = server
        .serve(Service::STORE, 64, Arc::new(TestHandler { heard }))
        .unwrap();
    assert!(matches!(
        server.register(Service::STORE, 8),
        Err(TransportError::AlreadyRegistered { .. })
    ));
    let to = named(&server);
    assert_eq!(ask(&a, &to, "now").await.unwrap(), b("now"));
    assert_eq!(ask(&a, &to, "later").await.unwrap(), b("answered later"));
    let r = ask(&a, &to, "boom").await;
    assert!(refused_with(&r, "handler dropped the request"), "{r:?}");
    // The connection and the service go on after a panic.
    let answers = join_all((0..64).map(|i| {
        let body = Bytes::from(format!("after-{i}"));
        let pending = a.request(&to, Service::STORE, body.clone(), PATIENCE);
        async move { (body, pending.await) }
    }))
    .await;
    for (body, answer) in answers {
        assert_eq!(answer.unwrap(), body);
    }
    a.send(&to, Service::STORE, b("one-way"), PATIENCE).await.unwrap();
    let got = tokio::time::timeout(PATIENCE, heard_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, ("a".to_string(), b("one-way")));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        a.send_datagram(&to, Service::STORE, b("gossip")).unwrap();
        match tokio::time::timeout(Duration::from_millis(50), heard_rx.recv()).await {
            Ok(Some(got)) => {
                assert_eq!(got, ("a".to_string(), b("gossip")));
                break;
            }
            Ok(None) => panic!("the handler is gone"),
            Err(_) => assert!(tokio::time::Instant::now() < deadline, "no datagram arrived"),
        }
    }
    drop(serving);
    // Unregistered: refused as no such service (a frame already queued when it was dropped
    // may still be dropped with it), and the service can be registered again.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let r = ask(&a, &to, "now").await;
        if refused_with(&r, "no such service") {
            break;
        }
        assert!(r.is_err(), "answered after its handler was dropped: {r:?}");
        assert!(tokio::time::Instant::now() < deadline, "{r:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_seen, _) = serve(server.register(Service::STORE, 64).unwrap());
    assert_eq!(ask(&a, &to, "again").await.unwrap(), b("again"));
}
