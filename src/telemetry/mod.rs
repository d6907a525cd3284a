//! The process's metrics recorder: the `metrics` crate's Prometheus exporter, installed as
//! the global recorder the first time any part of strand registers a metric.
//!
//! ```text
//!   membership, propertystore, controller, messaging, participant
//!     │  each registers its handles once (counter!, gauge!, histogram!) when it starts,
//!     │  after calling recorder(), and updates them on its hot paths without lookups
//!     ▼
//!   recorder() ── PrometheusRecorder (global) ──► http /metrics: handle().render()
//!                      ▲
//!                      └── upkeep thread: drains histogram samples every few seconds, so
//!                          a process that is never scraped does not keep them all
//! ```
//!
//! Handles registered before a recorder is installed are no-ops for good; that is why every
//! instrumented module calls [`recorder`] before it registers. When a library user installed
//! a recorder of their own first, strand's metrics go to it and `/metrics` shows only
//! strand's scrape-time gauges.

pub mod marks;

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets for durations, in seconds (100 µs … 30 s): store reads take tenths of
/// a millisecond, rounds and transitions milliseconds to seconds.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process's recorder, installed as the global one on first use (with its upkeep
/// thread). Every instrumented module calls this before registering its handles.
pub fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        let builder = builder
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "metrics: a global recorder was already installed; /metrics shows strand's own only"
            );
        }
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            });
        if let Err(e) = spawned {
            tracing::warn!("metrics: no upkeep thread ({e}); histograms are drained only when scraped");
        }
        handle
    })
}

/// The exposition text (Prometheus text format, version 0.0.4).
pub fn render() -> String {
    recorder().render()
}
