//! `embedded_kv`: strand embedded in a latency-sensitive server. Three participant processes
//! host the partitions of `counters` (MASTER/SLAVE); the client routes every request through
//! its spectator's routing table (a lock-free snapshot read, no network) to the partition's
//! MASTER. The MASTER's host is SIGKILLed and requests resume at the new MASTER; the example
//! prints request latency p50/p99 before, during and after the failover, and the window in
//! which requests failed.
//!
//! Run: `cargo build && cargo run --example embedded_kv [REQUESTS_PER_PHASE]`
//! (the store and controller are the `strand` binary next to this one, or `$STRAND_EXE`;
//! participants are this example re-run as a child with `participant run …`).
//! `EMBEDDED_KV_DIR=DIR` keeps the processes' logs and data in `DIR`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use strand::admin::Admin;
use strand::cli::local_cluster::LocalCluster;
use strand::cli::{node_setup, process};
use strand::messaging::{AppMessage, Criteria, HandlerFn, Outgoing};
use strand::model::{IdealState, Layout, RebalanceMode};
use strand::participant::{Participant, TransitionEvent};
use strand::settings::SettingsFlags;
use strand::spectator::Spectator;

const CLUSTER: &str = "C";
const RESOURCE: &str = "counters";
const PARTITIONS: usize = 4;
const NODES: [&str; 3] = ["node_0", "node_1", "node_2"];

/// Latency percentiles of one phase, and how many requests failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// Requests that got an answer from the MASTER.
    pub ok: usize,
    /// Requests that failed (no MASTER in the table, or it did not answer).
    pub failed: usize,
    /// Median latency of the successful ones, µs.
    pub p50_us: u64,
    /// 99th percentile (the max when there are fewer than 100), µs.
    pub p99_us: u64,
}

/// What the run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Before the kill, during the failover (until requests succeed again), after it.
    pub before: Phase,
    /// From the kill until requests succeed again.
    pub during: Phase,
    /// After requests resumed.
    pub after: Phase,
    /// From the kill to the first request that succeeded at the new MASTER.
    pub failure_window: Duration,
    /// The MASTER killed, and the one that took over.
    pub old_master: String,
    /// The new MASTER.
    pub new_master: String,
}

fn phase(lat: &mut [u64], failed: usize) -> Phase {
    lat.sort_unstable();
    let at = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .copied()
    };
    Phase {
        ok: lat.len(),
        failed,
        p50_us: at(0.5).unwrap_or(0),
        p99_us: at(0.99).unwrap_or(0),
    }
}

/// One request for partition `p`: look up its MASTER in the table (no network), ask it.
/// Returns the instance that answered.
async fn request(
    spectator: &Spectator,
    client: &strand::messaging::Messaging,
    p: &str,
) -> Result<String, String> {
    let master = spectator.table().instances(RESOURCE, p, "MASTER");
    let m = master.first().ok_or("no MASTER in the routing table")?;
    let to = Criteria::parse(&format!("instanceName={m}")).map_err(|e| e.to_string())?;
    let r = client
        .send_and_wait(
            &to,
            Outgoing::new("INCR").body(json!(p)),
            Duration::from_millis(200),
        )
        .await
        .map_err(|e| e.to_string())?;
    r.replies
        .first()
        .map(|r| r.instance.clone())
        .ok_or_else(|| format!("{m}: {:?} {:?}", r.failed, r.timed_out))
}

/// `n` requests spread over the partitions, one after the other.
async fn steady(spectator: &Spectator, client: &strand::messaging::Messaging, n: usize) -> Phase {
    let (mut lat, mut failed) = (Vec::new(), 0);
    for i in 0..n {
        let p = format!("{RESOURCE}_{}", i % PARTITIONS);
        let t0 = Instant::now();
        match request(spectator, client, &p).await {
            Ok(_) => lat.push(t0.elapsed().as_micros() as u64),
            Err(_) => failed += 1,
        }
    }
    phase(&mut lat, failed)
}

/// Starts the cluster, measures `n` requests before, runs until requests succeed again after
/// the SIGKILL of partition 0's MASTER, then measures `n` more.
pub async fn run(strand_exe: PathBuf, self_exe: PathBuf, n: usize) -> anyhow::Result<Report> {
    // `EMBEDDED_KV_DIR` keeps the processes' files (logs, data) there instead of in a temp
    // dir removed at the end: the test reads the logs when a run fails.
    let keep = std::env::var_os("EMBEDDED_KV_DIR").map(PathBuf::from);
    let mut lc = LocalCluster::new(keep.as_deref(), CLUSTER)?.with_exe(&strand_exe);
    lc.start_store(1)?;
    let admin = Admin::new(lc.client()?);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = admin.add_cluster(CLUSTER).await {
        anyhow::ensure!(Instant::now() < deadline, "the store never answered: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in NODES {
        admin.add_instance(CLUSTER, i).await?;
    }
    let mut is = IdealState::create(RESOURCE, PARTITIONS, "MasterSlave", RebalanceMode::FullAuto);
    is.record.set_simple("REPLICAS", 2);
    lc.client()?
        .set(
            &Layout::new(CLUSTER).ideal_state(RESOURCE),
            &is.record.to_bytes(),
            None,
        )
        .await?;
    lc.start_controller("ctl-1")?;
    // The participants are this program, re-run as a child (see `main`).
    let mut lc = lc.with_exe(&self_exe);
    for i in NODES {
        lc.start_participant(i, &[])?;
    }
    let spectator = Spectator::connect(lc.client()?, CLUSTER).await?;
    let (endpoint, _) = strand::cli::store::client_endpoint(&lc.settings())?;
    let client = spectator.messaging("client", endpoint)?;
    let ready = spectator
        .wait_until(Duration::from_secs(60), |t| {
            (0..PARTITIONS).all(|p| t.instances(RESOURCE, &format!("{RESOURCE}_{p}"), "MASTER").len() == 1)
        })
        .await;
    anyhow::ensure!(ready, "the partitions never got a MASTER");
    // The controller may still be moving replicas as the last participants' states come
    // in: measure a settled cluster, where every partition has its MASTER and SLAVE and
    // the placement has not changed for half a second.
    let placement = |t: &strand::spectator::RoutingTable| -> Vec<(Vec<String>, Vec<String>)> {
        (0..PARTITIONS)
            .map(|p| {
                let p = format!("{RESOURCE}_{p}");
                (
                    t.instances(RESOURCE, &p, "MASTER"),
                    t.instances(RESOURCE, &p, "SLAVE"),
                )
            })
            .collect()
    };
    let mut last = placement(&spectator.table());
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = placement(&spectator.table());
        if now == last && now.iter().all(|(m, s)| m.len() == 1 && s.len() == 1) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline + Duration::from_secs(60),
            "the placement never settled"
        );
        last = now;
    }
    // Warm up: every MASTER has answered once (connections open, its transition recorded).
    for p in 0..PARTITIONS {
        let p = format!("{RESOURCE}_{p}");
        while let Err(e) = request(&spectator, &client, &p).await {
            anyhow::ensure!(Instant::now() < deadline + Duration::from_secs(60), "{p}: {e}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    let p0 = format!("{RESOURCE}_0");
    let before = steady(&spectator, &client, n).await;

    let old_master = spectator.table().instances(RESOURCE, &p0, "MASTER")[0].clone();
    let killed = lc
        .end_participant(&old_master, false)
        .ok_or_else(|| anyhow::anyhow!("no process for {old_master}"))?;
    let (mut lat, mut failed) = (Vec::new(), 0);
    let new_master = loop {
        anyhow::ensure!(
            killed.elapsed() < Duration::from_secs(60),
            "requests never resumed"
        );
        let t0 = Instant::now();
        match request(&spectator, &client, &p0).await {
            Ok(m) => {
                lat.push(t0.elapsed().as_micros() as u64);
                if m != old_master {
                    break m;
                }
            }
            Err(_) => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let failure_window = killed.elapsed();
    let during = phase(&mut lat, failed);

    let after = steady(&spectator, &client, n).await;
    drop(lc);
    Ok(Report {
        before,
        during,
        after,
        failure_window,
        old_master,
        new_master,
    })
}

/// The child: a participant that counts INCR requests per partition it is MASTER of.
fn participant(args: &[String]) -> anyhow::Result<()> {
    process::honour_exit_with_parent();
    process::init_logging("warn");
    let flag = |name: &str| {
        args.windows(2)
            .find(|w| w[0] == name)
            .map(|w| w[1].clone())
            .ok_or_else(|| anyhow::anyhow!("missing {name}"))
    };
    let (cluster, instance) = (flag("--cluster")?, flag("--instance")?);
    let flags = SettingsFlags {
        tls_dir: None,
        store: vec![flag("--store")?],
    };
    node_setup::runtime()?.block_on(async move {
        // The participant reaches the store over its own endpoint: its writes are checked
        // against its own certificate (the participant role).
        let endpoint = node_setup::endpoint(
            &flags,
            &instance,
            strand::authz::Role::Participant,
            "127.0.0.1:0".parse()?,
        )?;
        let p = Participant::builder(&cluster, &instance)
            .store(node_setup::store_over(&flags, endpoint.clone())?)
            .transport(endpoint)
            .connect()
            .await?;
        // Which partitions this node is MASTER of, from its own transition events.
        let masters = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
        let mut events = p.events();
        let m = masters.clone();
        tokio::spawn(async move {
            while let Ok(TransitionEvent {
                partition, to, phase, ..
            }) = events.recv().await
            {
                if phase == strand::participant::Phase::Ok {
                    let mut m = m.lock().unwrap();
                    if to == "MASTER" {
                        m.entry(partition).or_insert(0);
                    } else {
                        m.remove(&partition);
                    }
                }
            }
        });
        p.messaging().register_handler(
            "INCR",
            None,
            HandlerFn(move |msg: AppMessage| {
                let masters = masters.clone();
                async move {
                    let partition: String = serde_json::from_str(&msg.body).map_err(|e| e.to_string())?;
                    let mut m = masters.lock().unwrap();
                    let n = m
                        .get_mut(&partition)
                        .ok_or(format!("not the MASTER of {partition}"))?;
                    *n += 1;
                    Ok(json!(*n))
                }
            }),
        );
        node_setup::terminated().await?;
        p.shutdown().await;
        Ok(())
    })
}

fn print(name: &str, p: &Phase) {
    println!(
        "{name:>7}: {} ok, {} failed, latency p50 {} µs, p99 {} µs{}",
        p.ok,
        p.failed,
        p.p50_us,
        p.p99_us,
        if p.ok < 100 {
            " (p99: max of fewer than 100)"
        } else {
            ""
        }
    );
}

#[allow(dead_code)]
fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("participant") {
        return participant(&args);
    }
    let n = args.get(1).map_or(Ok(400), |s| s.parse())?;
    let me = std::env::current_exe()?;
    let strand_exe = match std::env::var_os("STRAND_EXE") {
        Some(p) => PathBuf::from(p),
        None => me
            .parent()
            .and_then(|d| d.parent())
            .map(|d| d.join("strand"))
            .ok_or_else(|| anyhow::anyhow!("set STRAND_EXE to the strand binary"))?,
    };
    let rt = tokio::runtime::Runtime::new()?;
    let r = rt.block_on(run(strand_exe, me, n))?;
    print("before", &r.before);
    print("during", &r.during);
    print("after", &r.after);
    println!(
        "{} SIGKILLed; requests failed for {:?}, then resumed at {}",
        r.old_master, r.failure_window, r.new_master
    );
    Ok(())
}
