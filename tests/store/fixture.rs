//! A data directory written by store format version 1 (`tests/fixtures/store-v1/data`) must
//! be read by every later build: a one-replica store with a snapshot, a purged log and log
//! entries after the snapshot, its keys and watch history listed in `expected.txt`. A copy
//! whose format marker or values name an unknown version is refused with a clear error.
//!
//! Regenerate (only when the format version changes, as a new `store-v<N>` directory):
//! `cargo test --all-features --test store fixture::write_the_store_v1_fixture -- --ignored`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strand::propertystore::server::ServerError;
use strand::propertystore::storage::OpenError;
use strand::propertystore::{
    replica_name, Event, EventKind, Op, PropertyStore, ReplicaConfig, StoreClientConfig, StoreServer, Txn,
};
use strand::settings::{self, Settings};
use strand::transport::quic::{QuicConfig, QuicTransport};
use strand::transport::Transport;

use super::fences::settings_in;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1")
}

/// Copies the fixture's data directory into `to` (a test never opens the checked-in one:
/// RocksDB writes on open).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn client(settings: &Settings, addr: SocketAddr) -> PropertyStore {
    let tls = settings::tls_material_for(settings, "test-client", strand::authz::Role::Admin).unwrap();
    let transport = QuicTransport::client(QuicConfig::new("127.0.0.1:0".parse().unwrap(), tls)).unwrap();
    let mut config = StoreClientConfig::new(vec![addr]);
    config.request_timeout = Duration::from_secs(2);
    config.deadline = Duration::from_secs(30);
    PropertyStore::new(transport as Arc<dyn Transport>, config)
}

/// A one-replica store over `data`, with TLS material under `tls`.
async fn start(settings: &Settings, data: &Path, snapshot_every: u64) -> Result<StoreServer, ServerError> {
    let tls = settings::tls_material_for(settings, &replica_name(1), strand::authz::Role::Store).unwrap();
    let mut config = ReplicaConfig::new(1, "127.0.0.1:0".parse().unwrap(), data.to_path_buf(), tls);
    config.snapshot_every = snapshot_every;
    StoreServer::start(config).await
}

/// Writes until the first one goes through (a new replica elects itself first).
async fn first_write(client: &PropertyStore, path: &str, value: &[u8]) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.set(path, value, None).await {
            Ok(stat) => return stat.mod_revision,
            Err(e) => assert!(Instant::now() < deadline, "no write went through: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// The store as `expected.txt` lists it: the revision, every key, every event of the history.
async fn describe(client: &PropertyStore) -> String {
    let (entries, revision) = client.range("/").await.unwrap();
    let mut out = format!("revision {revision}\n");
    for (path, r) in entries {
        let s = r.stat;
        out += &format!(
            "key {path} version {} create {} mod {} value {}\n",
            s.version,
            s.create_revision,
            s.mod_revision,
            text(&r.value)
        );
    }
    let status = client.status_all().await.remove(0).1.unwrap();
    let mut watcher = client.watch("/", status.oldest_revision);
    let mut events: Vec<Event> = Vec::new();
    while watcher.next_revision() <= revision {
        events.extend(watcher.next_batch().await.unwrap());
    }
    for e in events {
        out += &match e.kind {
            EventKind::Put { value, stat } => format!(
                "event {} put {} version {} value {}\n",
                e.revision,
                e.path,
                stat.version,
                text(&value)
            ),
            EventKind::Delete => format!("event {} delete {}\n", e.revision, e.path),
        };
    }
    out
}

/// Keys of the fixture: enough entries for openraft to purge the log (it purges in batches
/// of 256 entries).
const KEYS: usize = 300;

/// Writes the fixture: 300 keys, one set again, one deleted, a two-key transaction, with a
/// snapshot every 16 entries (so the log is purged), then writes after the last snapshot
/// until there is one; a clean shutdown. The directory keeps only RocksDB's own files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the checked-in fixture; run by hand when the format version changes"]
async fn write_the_store_v1_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = settings_in(tmp.path());
    let data = tmp.path().join("data");
    let server = start(&settings, &data, 16).await.unwrap();
    let client = client(&settings, server.local_addr());
    first_write(&client, "/fixture/k000", b"v000").await;
    for i in 1..KEYS {
        client
            .set(&format!("/fixture/k{i:03}"), format!("v{i:03}").as_bytes(), None)
            .await
            .unwrap();
    }
    client.set("/fixture/k000", b"v000-again", Some(1)).await.unwrap();
    client.delete("/fixture/k001", Some(1), false).await.unwrap();
    let txn = Txn {
        conditions: vec![],
        success: vec![
            Op::Create {
                path: "/fixture/txn/x".into(),
                value: b"x".to_vec(),
            },
            Op::Create {
                path: "/fixture/txn/y".into(),
                value: b"y".to_vec(),
            },
        ],
        failure: vec![],
    };
    assert!(client.txn(txn).await.unwrap().succeeded);
    // A snapshot, a purge, and entries after the snapshot that only the log holds.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = 0;
    let status = loop {
        let s = client.status_all().await.remove(0).1.unwrap();
        if s.snapshot_index.is_some() && s.purged_index.is_some() && s.applied_index == s.commit_index {
            if s.snapshot_index < s.applied_index {
                break s;
            }
            after += 1;
            let path = format!("/fixture/z-after-snapshot/{after}");
            client.set(&path, b"a", None).await.unwrap();
            continue;
        }
        assert!(Instant::now() < deadline, "no snapshot and purge: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let expected = describe(&client).await;
    server.shutdown().await;

    let out = fixture_dir();
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(out.join("data")).unwrap();
    for entry in std::fs::read_dir(&data).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        // RocksDB's info logs and strand's audit log are not part of the format.
        if name.starts_with("LOG") || name == "audit.jsonl" {
            continue;
        }
        std::fs::copy(entry.path(), out.join("data").join(&name)).unwrap();
    }
    std::fs::write(out.join("expected.txt"), expected).unwrap();
    eprintln!("fixture written to {}: {status:?}", out.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_written_by_format_version_1_is_read_back_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = settings_in(tmp.path());
    let data = tmp.path().join("data");
    copy_dir(&fixture_dir().join("data"), &data);
    let expected = std::fs::read_to_string(fixture_dir().join("expected.txt")).unwrap();
    let server = start(&settings, &data, 16).await.unwrap();
    let client = client(&settings, server.local_addr());
    let status = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = client.status_all().await.remove(0).1.unwrap();
            if s.role == "leader" && s.applied_index.is_some() && s.applied_index == s.commit_index {
                break s;
            }
            assert!(Instant::now() < deadline, "the replica did not come up: {s:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert!(
        status.purged_index.is_some() && status.snapshot_index.is_some(),
        "the fixture has a snapshot and a purged log: {status:?}"
    );
    // The state machine on disk is at the last snapshot's flush: opening re-applies the
    // entries after it from the log, so the log's format is read too.
    assert_eq!(
        describe(&client).await,
        expected,
        "the store read back from the fixture"
    );
    // And it goes on from there.
    let revision: u64 = expected.lines().next().unwrap()["revision ".len()..]
        .parse()
        .unwrap();
    let stat = client.set("/fixture/after", b"next", None).await.unwrap();
    assert_eq!(stat.mod_revision, revision + 1);
    server.shutdown().await;
}

/// Rewrites `key` of column family `cf` in the copy at `data` with `patch`.
fn patch(data: &Path, cf: &str, key: &[u8], patch: impl FnOnce(&mut Vec<u8>)) {
    let mut opts = rocksdb::Options::default();
    opts.set_atomic_flush(true);
    let cfs = rocksdb::DB::list_cf(&opts, data).unwrap();
    let db = rocksdb::DB::open_cf(&opts, data, cfs).unwrap();
    let handle = db.cf_handle(cf).unwrap();
    let mut value = db
        .get_cf(handle, key)
        .unwrap()
        .expect("the fixture holds the key");
    patch(&mut value);
    db.put_cf(handle, key, value).unwrap();
    db.flush_cf(handle).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_of_an_unknown_version_is_refused_naming_both_versions() {
    for (cf, key, what) in [
        ("meta", &b"format"[..], "a directory marker"),
        ("meta", &b"meta"[..], "the value meta/meta"),
        ("kv", &b"/fixture/k000"[..], "the first value of kv"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let settings = settings_in(tmp.path());
        let data = tmp.path().join("data");
        copy_dir(&fixture_dir().join("data"), &data);
        patch(&data, cf, key, |v| {
            let at = if cf == "meta" && key == b"format" { 0 } else { 2 };
            assert_eq!(v[at], 1, "{cf}/{key:?} is written in version 1");
            v[at] = 2;
        });
        let err = match start(&settings, &data, 16).await {
            Ok(_) => panic!("{cf}/{key:?} of version 2 was accepted"),
            Err(e) => e,
        };
        let text = err.to_string();
        assert!(
            matches!(
                &err,
                ServerError::Open(OpenError::UnsupportedVersion { found: 2, supported: 1, what: w, .. })
                    if w == what
            ),
            "{cf}/{key:?}: {text}"
        );
        assert!(
            text.contains("format version 2") && text.contains("reads version 1"),
            "{text}"
        );
    }
}
