//! Watches of bursts larger than one reply frame, against a real replica process: before
//! answers were bounded by bytes, a watch behind such a burst was answered with a frame the
//! transport refused, and retried the same revision until it gave up.

use std::time::Duration;

use strand::propertystore::{Command, EventKind, Op, Txn};

use super::cluster::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_behind_a_burst_larger_than_a_frame_catches_up() {
    let cluster = Cluster::start(1, 10_000);
    let client = cluster.client_with(0, Duration::from_secs(10));
    cluster.wait_leader(&client, None).await;
    let from = client.set("/burst/start", b"0", None).await.unwrap().mod_revision;
    // 20 revisions of 1 MiB each: 20 MiB, more than the 16 MiB frame.
    let value = vec![b'x'; 1 << 20];
    let mut last = 0;
    for i in 0..20 {
        last = client
            .set(&format!("/burst/k{i}"), &value, None)
            .await
            .unwrap()
            .mod_revision;
    }
    let mut watcher = client.watch("/burst/", from);
    let mut seen = Vec::new();
    let mut batches = 0;
    while watcher.next_revision() <= last {
        let events = watcher.next_batch().await.unwrap();
        batches += 1;
        seen.extend(events.into_iter().map(|e| e.revision));
    }
    assert_eq!(seen, (from..=last).collect::<Vec<_>>());
    assert!(batches >= 3, "{batches} answers carried 20 MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_larger_than_a_frame_reaches_the_watcher_in_pieces() {
    let cluster = Cluster::start(1, 10_000);
    let client = cluster.client_with(0, Duration::from_secs(10));
    cluster.wait_leader(&client, None).await;
    // 18 000 keys with 1000-byte paths: their deletion is one revision of 18 000 events,
    // ~18 MB of answer.
    let long = "x".repeat(980);
    let keys = 18_000;
    let mut puts = Vec::new();
    for chunk in (0..keys).collect::<Vec<_>>().chunks(250) {
        let ops = chunk
            .iter()
            .map(|i| Op::Set {
                path: format!("/huge/{long}{i:06}"),
                value: Vec::new(),
                expected_version: None,
            })
            .collect();
        puts.push({
            let client = client.clone();
            async move {
                client
                    .txn(Txn {
                        conditions: Vec::new(),
                        success: ops,
                        failure: Vec::new(),
                    })
                    .await
            }
        });
    }
    for r in futures::future::join_all(puts).await {
        r.unwrap();
    }
    let written = client
        .write(Command::Txn(Txn::single(Op::Delete {
            path: "/huge".into(),
            expected_version: None,
            recursive: true,
        })))
        .await
        .unwrap();
    let revision = written.revision;
    let mut watcher = client.watch("/huge/", revision);
    let events = watcher.next_batch().await.unwrap();
    assert_eq!(
        events.len() as u64,
        keys,
        "the whole revision, assembled from its pieces"
    );
    assert!(events
        .iter()
        .all(|e| e.revision == revision && e.kind == EventKind::Delete));
    let mut paths: Vec<&str> = events.iter().map(|e| e.path.as_str()).collect();
    paths.dedup();
    assert_eq!(paths.len() as u64, keys, "no event twice");
    assert_eq!(watcher.next_revision(), revision + 1);
}
