//! `live_config`: a service that reads its limits (`max_qps`, `timeout_ms`) from the
//! RESOURCE scope config of its resource and applies every change within milliseconds,
//! without a restart, through a config subscription.
//!
//! Run: `cargo run --example live_config`
//!
//! ```text
//!   admin: config set RESOURCE=C,orders max_qps=500 ─► store ─► subscription (in order,
//!   old → new, revision) ─► Limits::apply (pure) ─► ArcSwap<Limits> ─► each request reads it
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use strand::admin::{AddResource, Admin};
use strand::config::{ConfigAccessor, ConfigChange, ConfigError, ConfigFilter, ConfigScope, ConfigStart};
use strand::embedded::EmbeddedCluster;
use tokio::sync::mpsc;

/// The limits a request handler reads (lock-free) on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests per second the service admits.
    pub max_qps: u32,
    /// How long one request may take.
    pub timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_qps: 100,
            timeout_ms: 1_000,
        }
    }
}

impl Limits {
    /// The limits after one config change (a key removed or unparsable: its default).
    pub fn apply(self, key: &str, value: Option<&str>) -> Limits {
        let d = Limits::default();
        match key {
            "max_qps" => Limits {
                max_qps: value.and_then(|v| v.parse().ok()).unwrap_or(d.max_qps),
                ..self
            },
            "timeout_ms" => Limits {
                timeout_ms: value.and_then(|v| v.parse().ok()).unwrap_or(d.timeout_ms),
                ..self
            },
            _ => self,
        }
    }
}

/// The running service's view of its limits, kept current by a subscription task.
pub struct LiveLimits {
    current: Arc<ArcSwap<Limits>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LiveLimits {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LiveLimits {
    /// Subscribes to `scope`, reads the values set now, and applies every later change.
    /// Each change applied is also sent on `applied` (for the demo and its test).
    pub async fn start(
        config: &ConfigAccessor,
        scope: ConfigScope,
        applied: mpsc::UnboundedSender<(ConfigChange, Limits)>,
    ) -> Result<LiveLimits, ConfigError> {
        // Subscribe first, then read: a change made in between is seen twice, never missed.
        let mut sub = config
            .subscribe(ConfigFilter::Scope(scope.clone()), ConfigStart::Now)
            .await?;
        let mut limits = Limits::default();
        for key in ["max_qps", "timeout_ms"] {
            let value = config.get_key(&scope, key).await?;
            limits = limits.apply(key, value.as_deref());
        }
        let current = Arc::new(ArcSwap::from_pointee(limits));
        let shared = current.clone();
        let task = tokio::spawn(async move {
            while let Ok(change) = sub.next().await {
                let next = shared.load().apply(&change.key, change.new.as_deref());
                shared.store(Arc::new(next));
                let _ = applied.send((change, next));
            }
        });
        Ok(LiveLimits { current, task })
    }

    /// The limits now (what a request handler calls).
    pub fn get(&self) -> Limits {
        **self.current.load()
    }
}

/// The demo: a cluster with resource `orders`, the service started on its config, then two
/// changes made by an operator. Returns the changes in the order the service applied them.
pub async fn run(print: bool) -> anyhow::Result<(Limits, Vec<(ConfigChange, Limits)>)> {
    let mut cluster = EmbeddedCluster::start(1).await?;
    let admin = Admin::new(cluster.store());
    admin.add_cluster("C").await?;
    admin
        .add_resource("C", "orders", &AddResource::new(4, "MasterSlave"))
        .await?;
    let scope = ConfigScope::parse("RESOURCE=C,orders")?;
    let operator = cluster.config_accessor();
    operator.set_key(&scope, "max_qps", "200").await?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let service = LiveLimits::start(&cluster.config_accessor(), scope.clone(), tx).await?;
    let initial = service.get();
    if print {
        println!("service started with {initial:?}");
    }
    let mut seen = Vec::new();
    for (key, value) in [("max_qps", "500"), ("timeout_ms", "250")] {
        let t0 = Instant::now();
        operator.set_key(&scope, key, value).await?;
        let (change, limits) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the subscription ended"))?;
        if print {
            println!(
                "set {key}={value}: the service applied {} {:?} -> {:?} (revision {}) {:?} after the set; now {:?}",
                change.key,
                change.old,
                change.new,
                change.revision,
                t0.elapsed(),
                service.get()
            );
        }
        seen.push((change, limits));
    }
    drop(service);
    cluster.shutdown().await;
    Ok((initial, seen))
}

#[tokio::main]
#[allow(dead_code)]
async fn main() -> anyhow::Result<()> {
    run(true).await?;
    Ok(())
}
