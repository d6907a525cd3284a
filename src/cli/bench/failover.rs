//! `strand bench failover --json`: failover of a real cluster of processes.
//!
//! 3 store replicas, 2 controllers, 5 participants, one resource of 20 partitions × 3
//! replicas (MasterSlave, FULL_AUTO). Per trial:
//! - `participant_failover_ms`: SIGKILL the participant holding the most MASTERs → every
//!   partition has a MASTER in the external view (then it is restarted and the cluster
//!   converges again before the next trial);
//! - `controller_failover_ms`: SIGKILL the leading controller, at once add a small resource
//!   → the standby leads and that resource's external view shows it placed (then the
//!   killed controller is restarted as a standby);
//! - `convergence_ms`: a tutorial-size resource (6 partitions × 3, SEMI_AUTO): the
//!   `rebalance` write → external view equals the ideal state.
//!
//! `double_master_violations` counts overlapping MASTER intervals of one partition in every
//! participant's transition log (killed processes' intervals end at their kill).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::detect::summary;
use crate::admin::AddResource;
use crate::cli::local_cluster::{wait_for, LocalCluster};
use crate::cli::CliError;
use crate::model::RebalanceMode;
use crate::spectator::{RoutingTable, Spectator};

/// Arguments of `strand bench failover`.
#[derive(Debug, clap::Args)]
pub struct FailoverBenchArgs {
    /// Participant kills.
    #[arg(long, default_value_t = 20)]
    pub participant_trials: usize,
    /// Controller kills.
    #[arg(long, default_value_t = 10)]
    pub controller_trials: usize,
    /// Convergence trials.
    #[arg(long, default_value_t = 20)]
    pub convergence_trials: usize,
    /// Participants.
    #[arg(long, default_value_t = 5)]
    pub participants: usize,
    /// Print one JSON document (the default prints it too, with a summary on stderr).
    #[arg(long)]
    pub json: bool,
    /// Keep every process's data and log (`<name>.log`, with `STRAND_LOG` passed on) in
    /// this directory instead of a temporary one removed at the end.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
}

const CLUSTER: &str = "BENCH";
const RESOURCE: &str = "db";
const PARTITIONS: usize = 20;
const WAIT: Duration = Duration::from_secs(30);

fn one_master_each(t: &RoutingTable, resource: &str, partitions: usize, without: Option<&str>) -> bool {
    let s = t.states(resource);
    s.len() == partitions
        && s.values().all(|m| {
            m.values().filter(|st| *st == "MASTER").count() == 1 && without.is_none_or(|w| !m.contains_key(w))
        })
}

fn converged(t: &RoutingTable, resource: &str, partitions: usize, replicas: usize) -> bool {
    let s = t.states(resource);
    s.len() == partitions
        && s.values().all(|m| {
            m.len() == replicas
                && m.values().filter(|st| *st == "MASTER").count() == 1
                && m.values().all(|st| st == "MASTER" || st == "SLAVE")
        })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `strand bench failover`.
pub fn run(args: FailoverBenchArgs) -> Result<(), CliError> {
    if args.participants < 3 {
        return Err(CliError::usage("--participants: at least 3"));
    }
    crate::cli::process::init_logging("error");
    let rt = crate::cli::node_setup::runtime()?;
    rt.block_on(async move {
        let mut cluster = LocalCluster::new(args.dir.as_deref(), CLUSTER)?;
        let result = bench(&mut cluster, &args).await;
        for p in cluster.participants.values_mut() {
            p.kill();
        }
        for c in cluster.controllers.values_mut() {
            c.kill();
        }
        for s in cluster.stores.values_mut() {
            s.kill();
        }
        let out = result?;
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        Ok(())
    })
}

async fn bench(cluster: &mut LocalCluster, args: &FailoverBenchArgs) -> Result<Value, CliError> {
    let instances: Vec<String> = (0..args.participants).map(|i| format!("node_{i}")).collect();
    let admin = cluster.start_store_and_cluster(3, &instances, WAIT).await?;
    let store = admin.store().clone();
    let mut spec = AddResource::new(PARTITIONS, "MasterSlave");
    spec.mode = RebalanceMode::FullAuto;
    admin
        .add_resource(CLUSTER, RESOURCE, &spec)
        .await
        .map_err(CliError::failed)?;
    admin
        .set_resource_property(CLUSTER, RESOURCE, "REPLICAS", "3")
        .await
        .map_err(CliError::failed)?;
    let spectator = Spectator::connect(store.clone(), CLUSTER)
        .await
        .map_err(CliError::failed)?;
    cluster.start_controllers_and_participants(&["controller-1", "controller-2"], &instances)?;
    wait_for(WAIT, "the first convergence", || {
        converged(&spectator.table(), RESOURCE, PARTITIONS, 3)
    })
    .await?;

    // Participant failover.
    let mut participant = Vec::new();
    for trial in 0..args.participant_trials {
        let masters = crate::cli::watch::masters_by_instance(&spectator.table(), RESOURCE);
        let victim = masters
            .iter()
            .max_by_key(|(i, n)| (**n, std::cmp::Reverse((*i).clone())))
            .map(|(i, _)| i.clone())
            .ok_or_else(|| CliError::failed("no MASTER in the external view"))?;
        let killed = cluster
            .end_participant(&victim, false)
            .ok_or_else(|| CliError::failed(format!("{victim} is not running")))?;
        let done = wait_for(WAIT, "a MASTER for every partition", || {
            one_master_each(&spectator.table(), RESOURCE, PARTITIONS, Some(&victim))
        })
        .await?;
        participant.push(ms(done - killed));
        eprintln!("participant trial {trial}: {:.1} ms", ms(done - killed));
        cluster.start_participant(&victim, &[])?;
        wait_for(WAIT, "convergence after the restart", || {
            let t = spectator.table();
            converged(&t, RESOURCE, PARTITIONS, 3)
                && t.states(RESOURCE).values().any(|m| m.contains_key(&victim))
        })
        .await?;
    }

    // Controller failover.
    let mut controller = Vec::new();
    for trial in 0..args.controller_trials {
        let (leader, epoch, _) = cluster
            .leading_controller()
            .ok_or_else(|| CliError::failed("no controller leads"))?;
        let probe = format!("probe_{trial}");
        let killed = Instant::now();
        if let Some(mut p) = cluster.controllers.remove(&leader) {
            p.kill();
        }
        let mut spec = AddResource::new(1, "OnlineOffline");
        spec.mode = RebalanceMode::FullAuto;
        admin
            .add_resource(CLUSTER, &probe, &spec)
            .await
            .map_err(CliError::failed)?;
        admin
            .set_resource_property(CLUSTER, &probe, "REPLICAS", "1")
            .await
            .map_err(CliError::failed)?;
        let done = wait_for(WAIT, "the new leader to place the probe resource", || {
            spectator
                .table()
                .states(&probe)
                .values()
                .any(|m| m.values().any(|s| s == "ONLINE"))
        })
        .await?;
        let leads = cluster
            .leading_controller()
            .is_some_and(|(n, e, _)| n != leader && e > epoch);
        if !leads {
            return Err(CliError::failed("the probe was placed but no new leader said so"));
        }
        controller.push(ms(done - killed));
        eprintln!("controller trial {trial}: {:.1} ms", ms(done - killed));
        admin
            .drop_resource(CLUSTER, &probe)
            .await
            .map_err(CliError::failed)?;
        cluster.start_controller(&leader)?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Convergence of a tutorial-size resource.
    let mut convergence = Vec::new();
    let mut trial_marks: Vec<String> = Vec::new();
    for trial in 0..args.convergence_trials {
        let name = format!("tutorial_{trial}");
        admin
            .add_resource(CLUSTER, &name, &AddResource::new(6, "MasterSlave"))
            .await
            .map_err(CliError::failed)?;
        let t0 = Instant::now();
        let t0_us = crate::participant::now_us();
        let ideal = admin
            .rebalance(CLUSTER, &name, 3, None)
            .await
            .map_err(CliError::failed)?;
        let want: BTreeMap<String, BTreeMap<String, String>> = ideal.record.map_fields.clone();
        let done = wait_for(WAIT, "the tutorial resource to converge", || {
            spectator.table().states(&name) == want
        })
        .await?;
        convergence.push(ms(done - t0));
        trial_marks.push(
            serde_json::json!({"kind": "convergence", "resource": name, "start_us": t0_us,
                "end_us": t0_us + (done - t0).as_micros() as u64})
            .to_string(),
        );
        admin
            .drop_resource(CLUSTER, &name)
            .await
            .map_err(CliError::failed)?;
        wait_for(WAIT, "the tutorial resource to be dropped", || {
            spectator.table().external_view(&name).is_none()
        })
        .await?;
    }

    let log = cluster.transition_log();
    if let Some(dir) = &args.dir {
        // With the processes' logs: every transition line, and when each trial ran.
        let write = |name: &str, text: String| {
            std::fs::write(dir.join(name), text)
                .map_err(|e| CliError::failed(format!("cannot write {name} in {}: {e}", dir.display())))
        };
        write("transitions.jsonl", log.clone())?;
        write("trials.jsonl", trial_marks.join("\n"))?;
    }
    let lines = crate::participant::audit::parse_lines(&log);
    let violations = crate::participant::audit::violations(&lines, "MASTER", 1, &cluster.ends);
    Ok(serde_json::json!({
        "participant_failover_ms": summary(&participant),
        "controller_failover_ms": summary(&controller),
        "convergence_ms": summary(&convergence),
        "double_master_violations": violations.len(),
        "transitions_checked": lines.len(),
        "setup": {
            "store_replicas": 3, "controllers": 2, "participants": args.participants,
            "partitions": PARTITIONS, "replicas": 3, "state_model": "MasterSlave", "mode": "FULL_AUTO",
        },
    }))
}
