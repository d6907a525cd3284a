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
//! A follower refuses the leader's appends and snapshots (the RAFT service answers with
//! `DiskFull`, heartbeats still count) while less than half the reserve is free
//! ([`follower_admit`]): the majority goes on without it, and the leader's retries bring it
//! up to date once space returns. If RocksDB itself meets `ENOSPC` (another process took
//! the rest), the append fails, openraft stops this replica's Raft, and nothing
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

/// Whether a follower may append what its leader sends with `free` bytes left: while at
/// least half the leader's `reserve` is free. The leader refuses writes at the whole
/// reserve, so a follower refuses only when its own disk, not the cluster's load, is the
/// problem; it then takes nothing (the leader retries it later, the majority goes on
/// without it) instead of meeting `ENOSPC`, which would stop its Raft until a restart.
/// Entries that only free space (deletes, compaction; see [`admit`]) are taken regardless,
/// as the leader takes them: they are how space returns.
pub fn follower_admit<'a>(
    free: u64,
    reserve: u64,
    commands: impl IntoIterator<Item = &'a Command>,
) -> Result<(), StoreError> {
    if commands.into_iter().all(|c| admit(0, 1, c).is_ok()) {
        Ok(())
    } else {
        follower_room(free, reserve)
    }
}

/// Whether a follower has room for anything that writes (a snapshot, say) with `free`
/// bytes left: half the `reserve`, as in [`follower_admit`].
pub fn follower_room(free: u64, reserve: u64) -> Result<(), StoreError> {
    let needed = reserve / 2;
    if free >= needed {
        Ok(())
    } else {
        Err(StoreError::DiskFull {
            free_bytes: free,
            reserve_bytes: needed,
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

    /// [`follower_admit`] of `commands` against the last measurement.
    pub fn follower_admit<'a>(
        &self,
        commands: impl IntoIterator<Item = &'a Command>,
    ) -> Result<(), StoreError> {
        follower_admit(self.free(), self.reserve, commands)
    }

    /// [`follower_room`] against the last measurement.
    pub fn follower_room(&self) -> Result<(), StoreError> {
        follower_room(self.free(), self.reserve)
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
    fn a_follower_appends_writes_down_to_half_the_reserve_and_deletes_always() {
        assert_eq!(follower_admit(50, 100, [&set()]), Ok(()));
        assert_eq!(follower_admit(u64::MAX, 0, [&set()]), Ok(()));
        assert_eq!(follower_admit(0, 0, [&set()]), Ok(()));
        let full = Err(StoreError::DiskFull {
            free_bytes: 49,
            reserve_bytes: 50,
        });
        assert_eq!(follower_admit(49, 100, [&set()]), full);
        assert_eq!(follower_admit(49, 100, [&delete(), &set()]), full);
        assert_eq!(follower_admit(49, 100, [&delete(), &delete()]), Ok(()));
        assert_eq!(follower_admit(0, 100, []), Ok(()), "blank and membership entries");
        let space = Space::new(Path::new("/"), 100);
        space.simulate_free_bytes(Some(49));
        assert!(space.follower_room().is_err());
        space.simulate_free_bytes(Some(50));
        assert_eq!(space.follower_room(), Ok(()));
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
