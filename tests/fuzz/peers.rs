//! The peer that sends garbage is refused, and the others are unharmed: a real store
//! replica (on the in-memory network) takes mutated STORE and RAFT requests from two
//! peers, interleaved with a genuine client's writes and reads. Every garbage request gets
//! an answer (a refusal naming the problem, or, for a mutant that is still a valid request,
//! a valid answer); every genuine write is acknowledged and reads back.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use strand::codec;
use strand::propertystore::protocol::{ReadMode, StoreRequest, StoreResponse, BAD_REQUEST};
use strand::propertystore::{
    replica_name, Command, Op, PropertyStore, ReplicaConfig, StoreClientConfig, StoreServer, Txn,
};
use strand::settings::{self, Settings, SettingsFlags};
use strand::transport::mem::MemNetwork;
use strand::transport::{PeerAddr, Service, Transport, TransportError};

use super::mutate::{mutated, mutations};

const TIMEOUT: Duration = Duration::from_secs(20);

fn genuine_requests() -> Vec<Vec<u8>> {
    let write = |path: &str| {
        Command::Txn(Txn::single(Op::Set {
            path: path.into(),
            value: b"v".to_vec(),
            expected_version: None,
        }))
    };
    [
        StoreRequest::Write(write("/garbage/a")),
        StoreRequest::Writes(vec![write("/garbage/b"), Command::Compact { below: 0 }]),
        StoreRequest::Get {
            path: "/garbage/a".into(),
            mode: ReadMode::Linearizable,
        },
        StoreRequest::Range {
            prefix: "/".into(),
            mode: ReadMode::Serializable,
        },
        StoreRequest::Watch {
            prefix: "/garbage".into(),
            from: 1,
            max: 10,
            wait_ms: 0,
        },
        StoreRequest::Status,
    ]
    .iter()
    .map(|r| codec::encode(r).unwrap())
    .collect()
}

/// `n` mutants of genuine requests, the same on every run.
fn garbage(n: usize) -> Vec<Vec<u8>> {
    let genuine = genuine_requests();
    let mut runner = TestRunner::deterministic();
    let strategy = (0..genuine.len(), mutations(), proptest::bool::ANY);
    (0..n)
        .map(|_| {
            let (which, ms, keep_header) = strategy.new_tree(&mut runner).unwrap().current();
            mutated(&genuine[which], &ms, if keep_header { 3 } else { 0 })
        })
        .collect()
}

/// A garbage request's answer: a refusal, or a valid store answer.
fn check_answer(what: &str, answer: Result<Bytes, TransportError>) {
    match answer {
        Err(TransportError::Refused { reason, .. }) => {
            assert!(reason.contains(what), "the refusal names the problem: {reason}")
        }
        Ok(bytes) => {
            codec::decode::<StoreResponse>(&bytes).unwrap_or_else(|e| panic!("an answer that decodes: {e}"));
        }
        Err(e) => panic!("a garbage request must be answered, not {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_refuses_garbage_from_one_peer_and_serves_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::load_with_env(
        &SettingsFlags {
            tls_dir: Some(dir.path().join("tls")),
            store: vec![],
        },
        |_| None,
    )
    .unwrap();
    let net = MemNetwork::new(0xf022);
    let endpoint = net.endpoint(&replica_name(1));
    let addr = endpoint.local_addr();
    // The in-memory network checks names, not certificates; the material is unused.
    let tls = settings::tls_material_for(&settings, &replica_name(1), strand::authz::Role::Store).unwrap();
    let mut config = ReplicaConfig::new(1, addr, dir.path().join("data"), tls);
    config.peers = vec![(1, addr)];
    let server = StoreServer::start_on(config, endpoint as Arc<dyn Transport>)
        .await
        .unwrap();

    let mut client_config = StoreClientConfig::new(vec![addr]);
    client_config.cache_capacity = 0;
    let good = PropertyStore::new(net.client("good") as Arc<dyn Transport>, client_config);
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while good.set("/good/ready", b"1", None).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replica never took a write"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let bad_client = net.client("garbage-client");
    let bad_replica = net.endpoint(&replica_name(9));
    let to = PeerAddr::any(addr);
    for (i, g) in garbage(150).into_iter().enumerate() {
        let body = Bytes::from(g);
        check_answer(
            BAD_REQUEST,
            bad_client
                .request(&to, Service::STORE, body.clone(), TIMEOUT)
                .await,
        );
        match bad_replica.request(&to, Service::RAFT, body, TIMEOUT).await {
            Err(TransportError::Refused { reason, .. }) => assert!(!reason.is_empty()),
            Ok(_) => {}
            Err(e) => panic!("a garbage raft request must be answered, not {e}"),
        }
        if i % 10 == 0 {
            let path = format!("/good/k{i}");
            good.set(&path, format!("{i}").as_bytes(), None).await.unwrap();
            assert_eq!(
                good.get(&path).await.unwrap().unwrap().value,
                format!("{i}").into_bytes()
            );
        }
    }
    // The garbage sender itself is still served when it sends a genuine request.
    let status = bad_client
        .request(
            &to,
            Service::STORE,
            Bytes::from(codec::encode(&StoreRequest::Status).unwrap()),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert!(matches!(
        codec::decode::<StoreResponse>(&status),
        Ok(StoreResponse::Status(_))
    ));
    assert_eq!(good.children("/good").await.unwrap().len(), 16);
    server.shutdown().await;
}
