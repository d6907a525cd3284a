//! A really full filesystem (a 64 MiB tmpfs, so root only; ignored by default): with the
//! reserve, writes are refused with `DiskFull` and taken again once space returns; without
//! it, RocksDB meets `ENOSPC`, and after a restart with space every acknowledged write is
//! there. Run: `cargo test --all-features --test store full_disk -- --ignored --nocapture`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strand::propertystore::{
    replica_name, ClientError, PropertyStore, ReplicaConfig, StoreClientConfig, StoreError, StoreServer,
};
use strand::settings::{self, Settings};
use strand::transport::quic::{QuicConfig, QuicTransport};
use strand::transport::Transport;

use super::fences::settings_in;

const VALUE: usize = 64 << 10;

async fn start(settings: &Settings, data: &Path, min_free_bytes: u64) -> (StoreServer, PropertyStore) {
    let tls = settings::tls_material_for(settings, &replica_name(1), strand::authz::Role::Store).unwrap();
    let mut config = ReplicaConfig::new(1, "127.0.0.1:0".parse().unwrap(), data.to_path_buf(), tls);
    config.min_free_bytes = min_free_bytes;
    config.snapshot_every = 100_000;
    // The previous instance's database closes once its last task has ended.
    let deadline = Instant::now() + Duration::from_secs(20);
    let server = loop {
        match StoreServer::start(config.clone()).await {
            Ok(s) => break s,
            Err(e) if e.to_string().contains("LOCK") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    let tls = settings::tls_material_for(settings, "test-client", strand::authz::Role::Admin).unwrap();
    let transport = QuicTransport::client(QuicConfig::new("127.0.0.1:0".parse().unwrap(), tls)).unwrap();
    let mut config = StoreClientConfig::new(vec![server.local_addr()]);
    config.request_timeout = Duration::from_secs(5);
    config.deadline = Duration::from_secs(10);
    let client = PropertyStore::new(transport as Arc<dyn Transport>, config);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = client.set("/warmup", b"x", None).await {
        assert!(Instant::now() < deadline, "the replica did not come up: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (server, client)
}

fn ballast(dir: &Path, mib: usize) {
    std::fs::write(dir.join("ballast"), vec![0u8; mib << 20]).unwrap();
}

/// Writes 64 KiB values until one fails; the keys acknowledged and the failure.
async fn fill(client: &PropertyStore, from: usize) -> (Vec<String>, ClientError) {
    let value = vec![b'v'; VALUE];
    let mut acked = Vec::new();
    for i in from.. {
        let path = format!("/fill/k{i}");
        match client.set(&path, &value, None).await {
            Ok(_) => acked.push(path),
            Err(e) => return (acked, e),
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: mounts a 64 MiB tmpfs"]
async fn a_really_full_filesystem_refuses_writes_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = settings_in(tmp.path());
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount a tmpfs (needs root)");
    let _unmount = Unmount(mnt.clone());
    let data = mnt.join("data");

    // With a 16 MiB reserve.
    let (server, client) = start(&settings, &data, 16 << 20).await;
    ballast(&mnt, 36);
    let (mut acked, err) = fill(&client, 0).await;
    eprintln!("reserve: {} writes of 64 KiB taken, then: {err}", acked.len());
    assert!(
        matches!(err, ClientError::Store(StoreError::DiskFull { .. })),
        "{err}"
    );
    std::fs::remove_file(mnt.join("ballast")).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.set("/fill/after", b"space returned", None).await.unwrap();
    server.shutdown().await;

    // No reserve: RocksDB itself runs out of space.
    let (server, client) = start(&settings, &data, 0).await;
    ballast(&mnt, 30);
    let (more, err) = fill(&client, 100_000).await;
    eprintln!("no reserve: {} more writes taken, then: {err}", more.len());
    acked.extend(more);
    let status = client.status_all().await.remove(0).1;
    eprintln!("status after ENOSPC: {status:?}");
    tokio::time::timeout(Duration::from_secs(30), server.shutdown())
        .await
        .expect("the replica shuts down");
    std::fs::remove_file(mnt.join("ballast")).unwrap();

    let (server, client) = start(&settings, &data, 0).await;
    for path in &acked {
        let record = client.get(path).await.unwrap();
        assert!(record.is_some_and(|r| r.value.len() == VALUE), "{path} was lost");
    }
    eprintln!(
        "after a restart with space: all {} acknowledged writes read back",
        acked.len()
    );
    server.shutdown().await;
}

/// Unmounts the tmpfs when the test ends, passed or not.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        // Lazily: the last replica may still be closing its files.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}
