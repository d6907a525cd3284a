//! A replica handles at most `ReplicaConfig::max_requests` client requests at once. A request
//! past the limit waits for a slot and is answered in turn: never refused, never lost, and
//! never run beside the requests that hold the slots.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strand::propertystore::core::Event;
use strand::propertystore::protocol::{StoreRequest, StoreResponse};
use strand::propertystore::{replica_name, PropertyStore, ReplicaConfig, StoreClientConfig, StoreServer};
use strand::settings;
use strand::transport::quic::{QuicConfig, QuicTransport};
use strand::transport::{self, PeerAddr, Service, Transport};

use super::fences::settings_in;

/// An id no other test of this binary uses: the replica's watch gauge is read by its label.
const ID: u64 = 77;

/// The replica's `strand_store_watchers` gauge: watch requests it holds open.
fn watches_held() -> u64 {
    let text = strand::telemetry::recorder().render();
    let label = format!("strand_store_watchers{{replica=\"{ID}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&label))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_replicas_limit_wait_for_a_slot_and_are_answered_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_in(dir.path());
    let tls = settings::tls_material_for(&settings, &replica_name(ID), strand::authz::Role::Store).unwrap();
    let mut config = ReplicaConfig::new(ID, "127.0.0.1:0".parse().unwrap(), dir.path().join("data"), tls);
    config.max_requests = 1;
    let server = StoreServer::start(config).await.unwrap();
    let addr = server.local_addr();
    let tls = settings::tls_material_for(&settings, "test-client", strand::authz::Role::Admin).unwrap();
    let transport: Arc<dyn Transport> =
        QuicTransport::client(QuicConfig::new("127.0.0.1:0".parse().unwrap(), tls)).unwrap();
    let mut client_config = StoreClientConfig::new(vec![addr]);
    client_config.request_timeout = Duration::from_secs(20);
    client_config.deadline = Duration::from_secs(60);
    client_config.cache_capacity = 0;
    let client = PropertyStore::new(transport.clone(), client_config);

    // A new replica elects itself: write until the first write goes through.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        match client.set("/busy/first", b"1", None).await {
            Ok(stat) => break stat.mod_revision,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("no write went through: {e}"),
        }
    };

    // A watch of /busy/key from the next revision holds the only slot until a change of the
    // key or the end of its wait (1.5 s).
    let watch = tokio::spawn({
        let transport = transport.clone();
        async move {
            let req = StoreRequest::Watch {
                prefix: "/busy/key".into(),
                from: first + 1,
                max: 100,
                wait_ms: 1500,
            };
            let peer = PeerAddr::named(replica_name(ID), addr);
            let answer: StoreResponse =
                transport::call(&*transport, &peer, Service::STORE, &req, Duration::from_secs(20))
                    .await
                    .unwrap();
            answer
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while watches_held() == 0 {
        assert!(Instant::now() < deadline, "the watch never reached the replica");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Past the limit: the write and the read wait for the slot, then are answered.
    let stat = client
        .set("/busy/key", b"v", None)
        .await
        .expect("the write is answered");
    let read = client.get("/busy/key").await.expect("the read is answered");
    assert_eq!(read.map(|r| r.value), Some(b"v".to_vec()));

    // The watch held its slot to the end of its wait: the write ran only after it, so the
    // watch saw no event. (Run beside it, the write would have ended the watch's wait with
    // its event.)
    match watch.await.unwrap() {
        StoreResponse::Events { events, next } => {
            let events: Vec<Event> = events;
            assert!(
                events.is_empty(),
                "the write ran while the watch held the only slot: {events:?}"
            );
            assert!(next <= stat.mod_revision, "the watch ended before the write");
        }
        other => panic!("unexpected answer to the watch: {other:?}"),
    }
    server.shutdown().await;
}
