//! Shared set-up of the runtime tests: clusters written as Helix-shaped records, handlers
//! that record what they ran, the two-masters checker over what participants reported.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use strand::embedded::EmbeddedCluster;
use strand::model::{ClusterConfig, IdealState, InstanceConfig, Layout, RebalanceMode, Record};
use strand::participant::audit::{self, LogLine};
use strand::participant::{
    Cancellation, HandlerError, Participant, StateModelHandler, Transition, TransitionEvent,
};

/// How long a test waits for anything before failing.
pub const WAIT: Duration = Duration::from_secs(20);

/// Writes a cluster: its root key, the cluster config and the instance configs.
pub async fn cluster(c: &mut EmbeddedCluster, name: &str, instances: &[&str], config: &[(&str, &str)]) {
    let l = Layout::new(name);
    let store = c.store();
    store.set(&l.root(), b"", None).await.unwrap();
    let mut cc = ClusterConfig::new(Record::new(name));
    for (k, v) in config {
        cc.record.set_simple(*k, *v);
    }
    store
        .set(&l.cluster_config(), &cc.record.to_bytes(), None)
        .await
        .unwrap();
    for i in instances {
        add_instance(c, name, i, |_| {}).await;
    }
}

/// Adds an instance config, shaped by `edit`.
pub async fn add_instance(
    c: &mut EmbeddedCluster,
    cluster: &str,
    instance: &str,
    edit: impl FnOnce(&mut InstanceConfig),
) {
    let mut ic = InstanceConfig::create(instance);
    edit(&mut ic);
    c.put_record(&Layout::new(cluster).instance_config(instance), &ic.record)
        .await
        .unwrap();
}

/// Writes an ideal state.
pub async fn ideal_state(c: &mut EmbeddedCluster, cluster: &str, is: &IdealState) {
    c.put_record(&Layout::new(cluster).ideal_state(is.resource()), &is.record)
        .await
        .unwrap();
}

/// The tutorial's myDB: 6 partitions, MasterSlave, SEMI_AUTO, 3 replicas, the preference
/// lists `--rebalance MYCLUSTER myDB 3` wrote.
pub fn tutorial_ideal_state() -> IdealState {
    let mut is = IdealState::create("myDB", 6, "MasterSlave", RebalanceMode::SemiAuto);
    is.record.set_simple("REPLICAS", 3);
    let lists = [
        ["localhost_12914", "localhost_12915", "localhost_12913"],
        ["localhost_12915", "localhost_12914", "localhost_12913"],
        ["localhost_12913", "localhost_12915", "localhost_12914"],
        ["localhost_12915", "localhost_12914", "localhost_12913"],
        ["localhost_12913", "localhost_12914", "localhost_12915"],
        ["localhost_12914", "localhost_12915", "localhost_12913"],
    ];
    for (p, list) in lists.iter().enumerate() {
        is.record
            .list_fields
            .insert(format!("myDB_{p}"), list.iter().map(|s| s.to_string()).collect());
        let map = list
            .iter()
            .enumerate()
            .map(|(k, i)| (i.to_string(), if k == 0 { "MASTER" } else { "SLAVE" }.to_string()))
            .collect();
        is.record.map_fields.insert(format!("myDB_{p}"), map);
    }
    is
}

/// partition → {instance → state} from literal triples.
pub fn states(rows: &[(&str, &str, &str)]) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (p, i, s) in rows {
        out.entry(p.to_string())
            .or_default()
            .insert(i.to_string(), s.to_string());
    }
    out
}

/// Collects every transition event of the participants it is given, with kill times.
#[derive(Clone, Default)]
pub struct Journal {
    lines: Arc<Mutex<Vec<TransitionEvent>>>,
    ends: Arc<Mutex<BTreeMap<String, Vec<u64>>>>,
}

impl Journal {
    /// Records `p`'s events from now on.
    pub fn follow(&self, p: &Participant) {
        let mut rx = p.events();
        let lines = self.lines.clone();
        tokio::spawn(async move {
            while let Ok(e) = rx.recv().await {
                lines.lock().unwrap().push(e);
            }
        });
    }

    /// Notes that `instance`'s process ended now.
    pub fn ended(&self, instance: &str) {
        self.ends
            .lock()
            .unwrap()
            .entry(instance.to_string())
            .or_default()
            .push(strand::participant::now_us());
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<TransitionEvent> {
        self.lines.lock().unwrap().clone()
    }

    /// Fails the test if two replicas of a partition were ever MASTER at once.
    pub fn assert_never_two_masters(&self) {
        let lines: Vec<LogLine> = self
            .events()
            .into_iter()
            .map(|e| LogLine {
                ts_us: e.ts_us,
                instance: e.instance,
                resource: e.resource,
                partition: e.partition,
                from: e.from,
                to: e.to,
                phase: serde_json::to_value(e.phase)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string(),
            })
            .collect();
        assert!(!lines.is_empty(), "no transition was reported at all");
        let v = audit::violations(&lines, "MASTER", 1, &self.ends.lock().unwrap());
        assert!(v.is_empty(), "two MASTERs at once: {v:#?}");
    }
}

/// A handler whose transitions fail, hang or succeed as told, and that counts calls.
#[derive(Default)]
pub struct TestHandler {
    /// (partition, from, to) that fail while present.
    pub fail: Mutex<Vec<(String, String, String)>>,
    /// (partition, from, to) that hang until cancelled.
    pub hang: Mutex<Vec<(String, String, String)>>,
    /// Every transition started.
    pub calls: Mutex<Vec<Transition>>,
    /// Errors reported through the error callback.
    pub errors: Mutex<Vec<(Transition, String)>>,
}

impl TestHandler {
    fn has(list: &Mutex<Vec<(String, String, String)>>, t: &Transition) -> bool {
        list.lock()
            .unwrap()
            .iter()
            .any(|(p, f, to)| (p == &t.partition || p == "*") && f == &t.from && to == &t.to)
    }
}

impl StateModelHandler for TestHandler {
    fn on_transition(
        &self,
        t: Transition,
        mut cancel: Cancellation,
    ) -> BoxFuture<'static, Result<(), HandlerError>> {
        self.calls.lock().unwrap().push(t.clone());
        let fail = Self::has(&self.fail, &t);
        let hang = Self::has(&self.hang, &t);
        Box::pin(async move {
            if hang {
                cancel.cancelled().await;
                return Err(HandlerError::new("cancelled"));
            }
            if fail {
                return Err(HandlerError::new("told to fail"));
            }
            Ok(())
        })
    }

    fn on_error(&self, t: &Transition, reason: &str) {
        self.errors.lock().unwrap().push((t.clone(), reason.to_string()));
    }
}

/// Waits until the external view of `resource` is exactly `want`.
pub async fn wait_ev(
    spectator: &strand::spectator::Spectator,
    resource: &str,
    want: &BTreeMap<String, BTreeMap<String, String>>,
) {
    let ok = spectator.wait_until(WAIT, |t| &t.states(resource) == want).await;
    assert!(
        ok,
        "external view of {resource} never became {want:#?}; it is {:#?}",
        spectator.table().states(resource)
    );
}

/// Waits until `pred` holds for the external view of `resource`.
pub async fn wait_ev_where(
    spectator: &strand::spectator::Spectator,
    resource: &str,
    what: &str,
    pred: impl Fn(&BTreeMap<String, BTreeMap<String, String>>) -> bool,
) {
    let ok = spectator.wait_until(WAIT, |t| pred(&t.states(resource))).await;
    assert!(
        ok,
        "external view of {resource}: never {what}; it is {:#?}",
        spectator.table().states(resource)
    );
}

/// Count of replicas per instance in `state`.
pub fn count_in(states: &BTreeMap<String, BTreeMap<String, String>>, state: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for m in states.values() {
        for (i, s) in m {
            if s == state {
                *out.entry(i.clone()).or_insert(0) += 1;
            }
        }
    }
    out
}

/// Every partition has exactly one MASTER.
pub fn one_master_each(states: &BTreeMap<String, BTreeMap<String, String>>, partitions: usize) -> bool {
    states.len() == partitions
        && states
            .values()
            .all(|m| m.values().filter(|s| *s == "MASTER").count() == 1)
}
