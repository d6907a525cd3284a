//! A replica's own metrics, registered once per replica (label `replica`) and updated where
//! the work happens: the log's fsyncs, the commit index openraft saves, each client write
//! from proposal to its answer, each read, and the watch requests held open. (Term, role,
//! log and applied indexes are gauges set at scrape time by `http::metrics::store_collector`.)
//!
//! | metric | kind | meaning |
//! |---|---|---|
//! | `strand_store_fsync_seconds` | histogram | one fsync of the Raft log's WAL (group commit, a follower's inline sync, a vote or truncation) |
//! | `strand_store_commit_index` | gauge | the commit index openraft last saved on this replica |
//! | `strand_store_write_seconds` | histogram | a client write at the leader: queued for proposal → applied and answered |
//! | `strand_store_read_seconds` | histogram (`mode`: linearizable, serializable) | a get, children or range read, lease or read-index wait included |
//! | `strand_store_watchers` | gauge | watch requests this replica holds open, waiting for a change |
//! | `strand_store_disk_stalled` | gauge (0/1) | a log write has waited past `--disk-stall-ms` for its fsync: not leading |
//! | `strand_store_disk_free_bytes` | gauge | free bytes on the data directory's filesystem (writes refused below `--min-free-bytes`) |

use std::time::Instant;

use metrics::{Gauge, Histogram};

use super::protocol::ReadMode;
use super::ReplicaId;

/// The handles of one replica.
#[derive(Clone)]
pub struct StoreMetrics {
    fsync: Histogram,
    commit_index: Gauge,
    write: Histogram,
    read_linearizable: Histogram,
    read_serializable: Histogram,
    watchers: Gauge,
    disk_stalled: Gauge,
    disk_free: Gauge,
}

impl StoreMetrics {
    /// Registers (or finds again) the handles of replica `id`.
    pub fn register(id: ReplicaId) -> Self {
        crate::telemetry::recorder();
        let replica = id.to_string();
        StoreMetrics {
            fsync: metrics::histogram!("strand_store_fsync_seconds", "replica" => replica.clone()),
            commit_index: metrics::gauge!("strand_store_commit_index", "replica" => replica.clone()),
            write: metrics::histogram!("strand_store_write_seconds", "replica" => replica.clone()),
            read_linearizable: metrics::histogram!("strand_store_read_seconds",
                "replica" => replica.clone(), "mode" => "linearizable"),
            read_serializable: metrics::histogram!("strand_store_read_seconds",
                "replica" => replica.clone(), "mode" => "serializable"),
            watchers: metrics::gauge!("strand_store_watchers", "replica" => replica.clone()),
            disk_stalled: metrics::gauge!("strand_store_disk_stalled", "replica" => replica.clone()),
            disk_free: metrics::gauge!("strand_store_disk_free_bytes", "replica" => replica),
        }
    }

    /// Times an fsync: recorded when the guard drops.
    pub fn time_fsync(&self) -> Timed<'_> {
        Timed(&self.fsync, Instant::now())
    }

    /// openraft saved `index` as committed.
    pub fn committed(&self, index: u64) {
        self.commit_index.set(index as f64);
    }

    /// Whether the disk counts as stalled now.
    pub fn disk_stalled(&self, stalled: bool) {
        self.disk_stalled.set(if stalled { 1.0 } else { 0.0 });
    }

    /// The data directory's free space as last measured.
    pub fn disk_free(&self, bytes: u64) {
        self.disk_free.set(bytes as f64);
    }

    /// Times a client write from its proposal to its answer.
    pub fn time_write(&self) -> Timed<'_> {
        Timed(&self.write, Instant::now())
    }

    /// Times a read in `mode`.
    pub fn time_read(&self, mode: ReadMode) -> Timed<'_> {
        let h = match mode {
            ReadMode::Linearizable => &self.read_linearizable,
            ReadMode::Serializable => &self.read_serializable,
        };
        Timed(h, Instant::now())
    }

    /// A watch request held open until the guard drops.
    pub fn watching(&self) -> Watching<'_> {
        self.watchers.increment(1.0);
        Watching(&self.watchers)
    }
}

/// Records the time since it was made into its histogram when dropped.
pub struct Timed<'a>(&'a Histogram, Instant);

impl Drop for Timed<'_> {
    fn drop(&mut self) {
        self.0.record(self.1.elapsed());
    }
}

/// Counts one open watch request until dropped.
pub struct Watching<'a>(&'a Gauge);

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
