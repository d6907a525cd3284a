//! Range reads against real replica processes: consistent at one revision while writes
//! apply, exact about the subtree, and refused rather than cut when too large.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strand::propertystore::{ClientError, EventKind, PropertyStore, Record, StoreError};

use super::cluster::Cluster;

/// Every key and record as the watch history has them after each revision up to `upto`.
async fn history(client: &PropertyStore, upto: u64) -> Vec<strand::propertystore::Event> {
    let mut watcher = client.watch("/", 1);
    let mut events = Vec::new();
    while watcher.next_revision() <= upto {
        events.extend(watcher.next_batch().await.unwrap());
    }
    events
}

/// The state replayed from `events` up to `revision`, of the keys equal to `path` or under it.
fn state_at(events: &[strand::propertystore::Event], revision: u64, path: &str) -> Vec<(String, Record)> {
    let mut state: BTreeMap<String, Record> = BTreeMap::new();
    for e in events.iter().take_while(|e| e.revision <= revision) {
        match &e.kind {
            EventKind::Put { value, stat } => {
                state.insert(
                    e.path.clone(),
                    Record {
                        value: value.clone(),
                        stat: *stat,
                    },
                );
            }
            EventKind::Delete => {
                state.remove(&e.path);
            }
        }
    }
    let under = format!("{path}/");
    state
        .into_iter()
        .filter(|(k, _)| k == path || k.starts_with(&under))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_read_under_concurrent_writes_is_the_state_at_its_revision() {
    let cluster = Cluster::start(3, 10_000);
    let client = cluster.client(0);
    cluster.wait_leader(&client, None).await;
    // Keys beside the prefix, which a range of /r/a leaves out: /r/ab sorts after /r/a/…,
    // /r/a-b and /r/a.x between /r/a and /r/a/.
    for k in ["/r/a", "/r/ab", "/r/ab/x", "/r/a-b", "/r/a.x"] {
        client.set(k, b"beside", None).await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4u64)
        .map(|t| {
            let (client, stop, written) = (client.clone(), stop.clone(), written.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let key = format!("/r/a/t{t}/k{}", i % 13);
                    let r = if i.is_multiple_of(5) {
                        client.delete(&key, None, false).await.map(|_| ())
                    } else {
                        client
                            .set(&key, format!("{t}-{i}").as_bytes(), None)
                            .await
                            .map(|_| ())
                    };
                    written.fetch_add(1, Ordering::Relaxed);
                    match r {
                        // Unknown: on a busy machine; the history has it or not, either way.
                        Ok(())
                        | Err(ClientError::Store(StoreError::NotFound { .. }))
                        | Err(ClientError::OutcomeUnknown { .. }) => {}
                        Err(e) => panic!("write {key}: {e}"),
                    }
                    if i.is_multiple_of(7) {
                        let _ = client.set("/r/ab/y", b"beside", None).await;
                    }
                }
            })
        })
        .collect();
    // Each read once more writes have ended, so that the reads meet a moving store.
    let mut reads = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while reads.len() < 40 {
        let before = written.load(Ordering::Relaxed);
        while written.load(Ordering::Relaxed) < before + 3 {
            assert!(Instant::now() < deadline, "the writers stalled");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        reads.push(client.range("/r/a").await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let last = reads.iter().map(|(_, r)| *r).max().unwrap();
    let events = history(&client, last).await;
    let mut revisions: Vec<u64> = reads.iter().map(|(_, r)| *r).collect();
    revisions.dedup();
    eprintln!(
        "{} range reads at {} distinct revisions",
        reads.len(),
        revisions.len()
    );
    for (entries, revision) in &reads {
        assert_eq!(
            entries,
            &state_at(&events, *revision, "/r/a"),
            "the range at revision {revision}"
        );
        assert_eq!(entries.first().map(|(k, _)| k.as_str()), Some("/r/a"));
    }
    // Linearizable: a range after a write reflects it.
    let w = client.set("/r/a/after", b"x", None).await.unwrap();
    let (entries, revision) = client.range("/r/a").await.unwrap();
    assert!(revision >= w.mod_revision);
    assert!(entries.iter().any(|(k, _)| k == "/r/a/after"));
    // The root reads every key, the neighbours included.
    let (all, _) = client.range("/").await.unwrap();
    for k in ["/r/ab", "/r/ab/x", "/r/a-b", "/r/a.x", "/r/a"] {
        assert!(all.iter().any(|(key, _)| key == k), "/ holds {k}");
    }
    assert!(matches!(
        client.range("/r/a/").await,
        Err(ClientError::Store(StoreError::InvalidPath { .. }))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_larger_than_half_a_frame_is_refused_with_its_sizes() {
    let cluster = Cluster::start(1, 10_000);
    let client = cluster.client_with(0, Duration::from_secs(10));
    cluster.wait_leader(&client, None).await;
    let value = vec![7u8; 1 << 20];
    for i in 0..9 {
        client.set(&format!("/big/k{i}"), &value, None).await.unwrap();
    }
    match client.range("/big").await {
        Err(ClientError::Store(StoreError::RangeTooLarge { path, bytes, max })) => {
            assert_eq!(path, "/big");
            assert_eq!(max, strand::transport::DEFAULT_MAX_FRAME / 2);
            assert!(bytes > max);
        }
        other => panic!(
            "expected RangeTooLarge, got {:?}",
            other.map(|(e, r)| (e.len(), r))
        ),
    }
    // A narrower path fits.
    let (entries, _) = client.range("/big/k3").await.unwrap();
    assert_eq!(entries.len(), 1);
}
