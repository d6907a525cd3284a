//! Room on the data directory's disk: a leader takes a write only while the filesystem has
//! at least a reserve free, so a disk that fills up refuses writes with a clear error
//! ([`StoreError::DiskFull`]) before RocksDB ever meets `ENOSPC`, and takes them again as
//! soon as space returns. Deletes and compaction are always taken: they are how space
//! returns. The reserve leaves room for what is already under way (entries proposed before
//! the check, memtable flushes, compactions, a snapshot).
//!
//! ```text
//!   every 100 ms: statvfs(data dir) ─► free bytes ─┐
//!   write(cmd) on the leader ─► admit(free, reserve, cmd) ─► propose │ DiskFull (nothing written)
//! ```
//!
//! A follower does not check: a write the leader refused never reaches it, and one the
//! leader took is needed by the majority. If RocksDB itself meets `ENOSPC` (another process
//! took the reserve), the append fails, openraft stops this replica's Raft, and nothing
//! acknowledged is lost: the write-ahead log ends at the last whole write.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::core::{Command, Op, StoreError};

/// Free bytes a leader keeps before it refuses writes, by default.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 64 << 20;

/// Whether `cmd` may be proposed with `free` bytes left and `reserve` needed: deletes and
/// compaction always, anything else only with the reserve free.
pub fn admit(free: u64, reserve: u64, cmd: &Command) -> Result<(), StoreError> {
    let frees_space = match cmd {
        Command::Compact { .. } => true,
        Command::Txn(t) => t
            .success
            .iter()
            .chain(&t.failure)
            .all(|op| matches!(op, Op::Delete { .. })),
    };
    if frees_space || free >= reserve {
        Ok(())
    } else {
        Err(StoreError::DiskFull {
            free_bytes: free,
            reserve_bytes: reserve,
        })
    }
}

/// The data directory's free space as last measured, and the reserve.
#[derive(Debug)]
pub struct Space {
    dir: PathBuf,
    reserve: u64,
    /// Free bytes at the last [`Space::refresh`] (`u64::MAX` until one succeeds).
    free: AtomicU64,
    /// Test-only: the free space to report instead of the filesystem's.
    simulated: Mutex<Option<u64>>,
}

impl Space {
    /// The space of the filesystem holding `dir`, keeping `reserve` bytes free.
    pub fn new(dir: &Path, reserve: u64) -> Self {
        let space = Space {
            dir: dir.to_path_buf(),
            reserve,
            free: AtomicU64::new(u64::MAX),
            simulated: Mutex::new(None),
        };
        space.refresh();
        space
    }

    /// Measures the free space again (a failed measurement keeps the last one).
    pub fn refresh(&self) {
        let simulated = *self.simulated.lock().unwrap_or_else(|p| p.into_inner());
        let free = match simulated {
            Some(free) => Some(free),
            None => match nix::sys::statvfs::statvfs(self.dir.as_path()) {
                // Blocks available to unprivileged users, in fragment-size units. (`u64`
                // here; narrower on some platforms, hence the conversions.)
                #[allow(clippy::useless_conversion)]
                Ok(s) => Some(u64::from(s.blocks_available()).saturating_mul(u64::from(s.fragment_size()))),
                Err(e) => {
                    tracing::debug!(dir = %self.dir.display(), error = %e, "statvfs failed");
                    None
                }
            },
        };
        if let Some(free) = free {
            self.free.store(free, Ordering::Relaxed);
        }
    }

    /// Free bytes at the last measurement.
    pub fn free(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }

    /// [`admit`] against the last measurement.
    pub fn admit(&self, cmd: &Command) -> Result<(), StoreError> {
        admit(self.free(), self.reserve, cmd)
    }

    /// Fault injection: report `free` bytes instead of the filesystem's (`None`: measure
    /// again), at once. Test-only (the `testing` feature).
    #[cfg(any(test, feature = "testing"))]
    pub fn simulate_free_bytes(&self, free: Option<u64>) {
        *self.simulated.lock().unwrap_or_else(|p| p.into_inner()) = free;
        self.refresh();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propertystore::core::Txn;

    fn set() -> Command {
        Command::Txn(Txn::single(Op::Set {
            path: "/a".into(),
            value: b"v".to_vec(),
            expected_version: None,
        }))
    }

    fn delete() -> Command {
        Command::Txn(Txn::single(Op::Delete {
            path: "/a".into(),
            expected_version: None,
            recursive: true,
        }))
    }

    #[test]
    fn below_the_reserve_only_deletes_and_compaction_are_taken() {
        assert_eq!(admit(100, 100, &set()), Ok(()));
        assert_eq!(
            admit(99, 100, &set()),
            Err(StoreError::DiskFull {
                free_bytes: 99,
                reserve_bytes: 100
            })
        );
        assert_eq!(admit(0, 100, &delete()), Ok(()));
        assert_eq!(admit(0, 100, &Command::Compact { below: 5 }), Ok(()));
        let mixed = Command::Txn(Txn {
            conditions: vec![],
            success: vec![Op::Delete {
                path: "/a".into(),
                expected_version: None,
                recursive: false,
            }],
            failure: vec![Op::Create {
                path: "/b".into(),
                value: vec![],
            }],
        });
        assert!(
            admit(0, 100, &mixed).is_err(),
            "a transaction that may write is refused"
        );
    }

    #[test]
    fn the_filesystem_is_measured_and_a_simulation_overrides_it() {
        let dir = tempfile::tempdir().unwrap();
        let space = Space::new(dir.path(), 1);
        assert!(space.free() > 0 && space.free() < u64::MAX, "{}", space.free());
        space.simulate_free_bytes(Some(0));
        assert!(matches!(space.admit(&set()), Err(StoreError::DiskFull { .. })));
        space.simulate_free_bytes(None);
        assert_eq!(space.admit(&set()), Ok(()));
    }
}
