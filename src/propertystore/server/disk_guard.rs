//! The disk guards: `watch_disk` steps a leader down while its log fsyncs stall
//! ([`crate::propertystore::disk`]); `measure_space` keeps the free-space measurement that
//! [`crate::propertystore::space`] admits writes by fresh.

use std::sync::Arc;
use std::time::Duration;

use crate::watch;

use crate::propertystore::disk::{DiskCheck, DiskEvent};
use crate::propertystore::metrics::StoreMetrics;
use crate::propertystore::space::Space;
use crate::propertystore::StoreRaft;

/// Steps this replica down while its disk is stalled ([`crate::propertystore::disk`]): no heartbeats (so
/// the followers elect another leader), and `disk_stalled` set, which refuses writes and
/// linearizable reads and keeps the elector from campaigning. Undone when the disk recovers.
pub(super) async fn watch_disk(
    raft: StoreRaft,
    durability: Arc<crate::propertystore::durable::Durability>,
    mut check: DiskCheck,
    stalled: watch::Sender<bool>,
    metrics: StoreMetrics,
) {
    metrics.disk_stalled(false);
    let mut tick = tokio::time::interval(check.tick_every());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match check.handle_tick(crate::clock::now(), durability.unsynced_since()) {
            Some(DiskEvent::Stalled { waited }) => {
                tracing::warn!(
                    waited_ms = waited.as_millis() as u64,
                    "a log write has waited for its fsync longer than the bound: the disk is \
                     stalled; not leading or campaigning until it catches up"
                );
                raft.runtime_config().heartbeat(false);
                stalled.send_replace(true);
                metrics.disk_stalled(true);
            }
            Some(DiskEvent::Recovered) => {
                tracing::info!("the disk caught up: leading and campaigning again");
                stalled.send_replace(false);
                metrics.disk_stalled(false);
                raft.runtime_config().heartbeat(true);
            }
            None => {}
        }
    }
}

/// How often the data directory's free space is measured.
const SPACE_EVERY: Duration = Duration::from_millis(100);

/// Keeps [`Space`]'s measurement fresh.
pub(super) async fn measure_space(space: Arc<Space>, metrics: StoreMetrics) {
    let mut tick = tokio::time::interval(SPACE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        space.refresh();
        metrics.disk_free(space.free());
    }
}
