//! Resolution: [`Criteria`] over a [`ClusterView`] → the recipients, as Helix's
//! `CriteriaEvaluator` and `DefaultMessagingService.generateMessage` do it.
//!
//! ```text
//!   rows of the data source (instance, resource, partition, state)
//!     ── keep rows every pattern matches
//!     ── project onto instance + the fields the criteria name, deduplicate
//!     ── keep live instances (their session and address), drop the sender if self-excluded
//!   ▼  one Target per distinct projected row
//! ```
//!
//! So `resource=TestDB,partition=%` gives one message per replica of TestDB, while
//! `resource=TestDB` alone gives one per instance holding any of its replicas. Pure and
//! deterministic: targets come out sorted.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use super::criteria::{Criteria, DataSource, RecipientType};
use super::MessagingError;

/// partition → instance → state.
pub type PartitionMap = BTreeMap<String, BTreeMap<String, String>>;

/// A live instance's session and the address its messages go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEntry {
    /// `SESSION_ID`.
    pub session: String,
    /// `STRAND_ADDR`, if the record carries one.
    pub addr: Option<SocketAddr>,
}

/// The leading controller, as `CONTROLLER/LEADER` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderEntry {
    /// The controller's name (the record id).
    pub name: String,
    /// Its session.
    pub session: String,
    /// Its address.
    pub addr: Option<SocketAddr>,
}

/// What resolution reads: a snapshot of one cluster's records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// The cluster's name.
    pub cluster: String,
    /// `LIVEINSTANCES/*`.
    pub live: BTreeMap<String, LiveEntry>,
    /// `CONFIGS/PARTICIPANT/*` names.
    pub instances: BTreeSet<String>,
    /// `EXTERNALVIEW/*` mapFields, by resource.
    pub external_views: BTreeMap<String, PartitionMap>,
    /// `IDEALSTATES/*` mapFields, by resource.
    pub ideal_states: BTreeMap<String, PartitionMap>,
    /// `CONTROLLER/LEADER`.
    pub leader: Option<LeaderEntry>,
    /// The store revision the view reflects.
    pub revision: u64,
}

/// One recipient of one message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    /// Instance (or controller) name.
    pub instance: String,
    /// Its current session.
    pub session: String,
    /// Where to send it (`None`: the record has no address; the send fails for it).
    pub addr: Option<SocketAddr>,
    /// The resource, when the criteria name one.
    pub resource: Option<String>,
    /// The partition, when the criteria name one.
    pub partition: Option<String>,
    /// The partition's state, when the criteria name one.
    pub partition_state: Option<String>,
}

impl Target {
    /// `instance` or `instance/resource/partition/state` as far as known, for printing.
    pub fn label(&self) -> String {
        let mut s = self.instance.clone();
        for f in [&self.resource, &self.partition, &self.partition_state]
            .into_iter()
            .flatten()
        {
            s.push('/');
            s.push_str(f);
        }
        s
    }
}

/// The recipients of a message with `criteria`, sent by `sender` (for self-exclusion).
/// Only live instances, unless `include_offline` (a persistent message waits in the store
/// for an instance that is down): those come with an empty session and no address.
pub fn resolve(
    criteria: &Criteria,
    view: &ClusterView,
    sender: &str,
    include_offline: bool,
) -> Result<Vec<Target>, MessagingError> {
    match criteria.recipient_type {
        RecipientType::Controller => {
            let leader = view.leader.as_ref().ok_or_else(|| MessagingError::NoLeader {
                cluster: view.cluster.clone(),
            })?;
            if criteria.self_excluded && leader.name == sender {
                return Ok(Vec::new());
            }
            Ok(vec![Target {
                instance: leader.name.clone(),
                session: leader.session.clone(),
                addr: leader.addr,
                resource: None,
                partition: None,
                partition_state: None,
            }])
        }
        RecipientType::Spectator => Err(MessagingError::BadCriteria {
            reason: "recipientInstanceType=SPECTATOR: spectators register no address in the cluster's records, so nothing can reach them by criteria".into(),
        }),
        RecipientType::Participant => Ok(resolve_participants(criteria, view, sender, include_offline)),
    }
}

fn resolve_participants(
    c: &Criteria,
    view: &ClusterView,
    sender: &str,
    include_offline: bool,
) -> Vec<Target> {
    // (instance, resource, partition, state), the last three only when the criteria name them.
    type Row = (String, Option<String>, Option<String>, Option<String>);
    let mut rows: BTreeSet<Row> = BTreeSet::new();
    let mut consider = |instance: &str, resource: &str, partition: &str, state: &str| {
        let ok = c.instance.matches(instance)
            && c.resource.as_ref().is_none_or(|l| l.matches(resource))
            && c.partition.as_ref().is_none_or(|l| l.matches(partition))
            && c.partition_state.as_ref().is_none_or(|l| l.matches(state));
        if ok {
            rows.insert((
                instance.to_string(),
                c.resource.as_ref().map(|_| resource.to_string()),
                c.partition.as_ref().map(|_| partition.to_string()),
                c.partition_state.as_ref().map(|_| state.to_string()),
            ));
        }
    };
    match c.data_source {
        DataSource::ExternalView | DataSource::IdealStates => {
            let maps = if c.data_source == DataSource::ExternalView {
                &view.external_views
            } else {
                &view.ideal_states
            };
            for (resource, partitions) in maps {
                for (partition, replicas) in partitions {
                    for (instance, state) in replicas {
                        consider(instance, resource, partition, state);
                    }
                }
            }
        }
        DataSource::LiveInstances => {
            for i in view.live.keys() {
                consider(i, "", "", "");
            }
        }
        DataSource::Instances => {
            for i in &view.instances {
                consider(i, "", "", "");
            }
        }
    }
    rows.into_iter()
        .filter(|(i, ..)| !(c.self_excluded && i == sender))
        .filter_map(|(instance, resource, partition, partition_state)| {
            let (session, addr) = match view.live.get(&instance) {
                Some(live) => (live.session.clone(), live.addr),
                None if include_offline => (String::new(), None),
                None => return None,
            };
            Some(Target {
                session,
                addr,
                instance,
                resource,
                partition,
                partition_state,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], n)))
    }

    /// Three live instances n0..n2 (n3 configured, not live); TestDB with 4 partitions × 2
    /// replicas in the external view; the ideal state places TestDB_3 on n3 too.
    fn view() -> ClusterView {
        let mut v = ClusterView {
            cluster: "C".into(),
            ..Default::default()
        };
        for i in 0..3u16 {
            v.live.insert(
                format!("n{i}"),
                LiveEntry {
                    session: format!("s{i}"),
                    addr: addr(9000 + i),
                },
            );
        }
        v.instances = (0..4).map(|i| format!("n{i}")).collect();
        let mut ev = PartitionMap::new();
        for p in 0..4usize {
            let mut m = BTreeMap::new();
            m.insert(format!("n{}", p % 3), "MASTER".to_string());
            m.insert(format!("n{}", (p + 1) % 3), "SLAVE".to_string());
            ev.insert(format!("TestDB_{p}"), m);
        }
        let mut is = ev.clone();
        is.get_mut("TestDB_3")
            .unwrap()
            .insert("n3".into(), "SLAVE".into());
        v.external_views.insert("TestDB".into(), ev);
        v.ideal_states.insert("TestDB".into(), is);
        v.leader = Some(LeaderEntry {
            name: "ctl".into(),
            session: "c1".into(),
            addr: addr(8000),
        });
        v
    }

    fn labels(text: &str, sender: &str) -> Vec<String> {
        resolve(&Criteria::parse(text).unwrap(), &view(), sender, false)
            .unwrap()
            .iter()
            .map(Target::label)
            .collect()
    }

    #[test]
    fn criteria_table() {
        let cases: &[(&str, &str, &[&str])] = &[
            // Every live instance holding a replica, one message each; the sender excluded.
            ("instanceName=%", "n0", &["n1", "n2"]),
            ("instanceName=%,selfExcluded=false", "n0", &["n0", "n1", "n2"]),
            ("instanceName=n1", "n0", &["n1"]),
            ("instanceName=n_", "x", &["n0", "n1", "n2"]),
            ("instanceName=n9", "x", &[]),
            // By partition: one per replica of it.
            (
                "instanceName=%,resource=TestDB,partition=TestDB_1",
                "x",
                &["n1/TestDB/TestDB_1", "n2/TestDB/TestDB_1"],
            ),
            (
                "instanceName=%,resource=TestDB,partition=TestDB_1,partitionState=MASTER",
                "x",
                &["n1/TestDB/TestDB_1/MASTER"],
            ),
            // partition=% is one message per replica: 4 partitions × 2.
            (
                "instanceName=%,resource=TestDB,partition=%,partitionState=SLAVE",
                "x",
                &[
                    "n0/TestDB/TestDB_2/SLAVE",
                    "n1/TestDB/TestDB_0/SLAVE",
                    "n1/TestDB/TestDB_3/SLAVE",
                    "n2/TestDB/TestDB_1/SLAVE",
                ],
            ),
            // Resource named without partition: one per instance holding any replica.
            (
                "instanceName=%,resource=Test%",
                "x",
                &["n0/TestDB", "n1/TestDB", "n2/TestDB"],
            ),
            ("instanceName=%,resource=Other", "x", &[]),
            // Ideal states: n3 is placed but not live, so it gets nothing.
            (
                "instanceName=%,resource=TestDB,partition=TestDB_3,dataSource=IDEALSTATES",
                "x",
                &["n0/TestDB/TestDB_3", "n1/TestDB/TestDB_3"],
            ),
            (
                "instanceName=%,dataSource=LIVEINSTANCES",
                "x",
                &["n0", "n1", "n2"],
            ),
            ("instanceName=%,dataSource=INSTANCES", "n2", &["n0", "n1"]),
            // Live/instance sources have no resources: naming one selects nothing.
            (
                "instanceName=%,resource=TestDB,dataSource=LIVEINSTANCES",
                "x",
                &[],
            ),
            ("recipientInstanceType=CONTROLLER", "n0", &["ctl"]),
            ("recipientInstanceType=CONTROLLER", "ctl", &[]),
        ];
        for (text, sender, want) in cases {
            assert_eq!(labels(text, sender), *want, "{text} from {sender}");
        }
    }

    #[test]
    fn targets_carry_session_and_address() {
        let t = resolve(&Criteria::instance("n2"), &view(), "x", false).unwrap();
        assert_eq!(t[0].session, "s2");
        assert_eq!(t[0].addr, addr(9002));
        // A configured instance that is down is a target only for a persistent message.
        let c = Criteria::parse("instanceName=n3,dataSource=INSTANCES").unwrap();
        assert!(resolve(&c, &view(), "x", false).unwrap().is_empty());
        let t = resolve(&c, &view(), "x", true).unwrap();
        assert_eq!(
            (t[0].instance.as_str(), t[0].session.as_str(), t[0].addr),
            ("n3", "", None)
        );
    }

    #[test]
    fn no_leader_and_spectators_are_errors() {
        let mut v = view();
        v.leader = None;
        let e = resolve(&Criteria::controller(), &v, "x", false).unwrap_err();
        assert!(matches!(e, MessagingError::NoLeader { .. }), "{e}");
        let c = Criteria::parse("recipientInstanceType=SPECTATOR").unwrap();
        assert!(resolve(&c, &v, "x", false)
            .unwrap_err()
            .to_string()
            .contains("spectators"));
    }
}
