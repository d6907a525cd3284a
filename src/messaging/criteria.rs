//! Helix's `Criteria`: who a message is for, parsed from `key=value,…` text.
//!
//! Fields and defaults follow Helix: `instanceName`, `resource`, `partition` and
//! `partitionState` are SQL LIKE patterns (`%` any run, `_` one character; absent means
//! `%`), `recipientInstanceType` is `PARTICIPANT` unless told, `selfExcluded` is true,
//! `sessionSpecific` false and `dataSource` `EXTERNALVIEW`. Keys are matched
//! case-insensitively; unknown keys and bad values are errors, never ignored.

use std::fmt;

use super::MessagingError;

/// Which kind of member a message is for (Helix's `InstanceType` of the recipient).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RecipientType {
    /// Participants (live instances).
    Participant,
    /// The cluster's leading controller.
    Controller,
    /// Spectators.
    Spectator,
}

impl RecipientType {
    /// Helix's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientType::Participant => "PARTICIPANT",
            RecipientType::Controller => "CONTROLLER",
            RecipientType::Spectator => "SPECTATOR",
        }
    }

    fn parse(v: &str) -> Option<Self> {
        match v.to_ascii_uppercase().as_str() {
            "PARTICIPANT" => Some(RecipientType::Participant),
            "CONTROLLER" | "CONTROLLER_PARTICIPANT" => Some(RecipientType::Controller),
            "SPECTATOR" => Some(RecipientType::Spectator),
            _ => None,
        }
    }
}

/// The records criteria are evaluated against (Helix's `DataSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DataSource {
    /// `EXTERNALVIEW/*` mapFields: where replicas are, in which state (the default).
    ExternalView,
    /// `IDEALSTATES/*` mapFields: where replicas should be.
    IdealStates,
    /// `LIVEINSTANCES/*`: instance names only.
    LiveInstances,
    /// `CONFIGS/PARTICIPANT/*`: configured instances, instance names only.
    Instances,
}

impl DataSource {
    /// Helix's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DataSource::ExternalView => "EXTERNALVIEW",
            DataSource::IdealStates => "IDEALSTATES",
            DataSource::LiveInstances => "LIVEINSTANCES",
            DataSource::Instances => "INSTANCES",
        }
    }

    fn parse(v: &str) -> Option<Self> {
        match v.to_ascii_uppercase().as_str() {
            "EXTERNALVIEW" => Some(DataSource::ExternalView),
            "IDEALSTATES" => Some(DataSource::IdealStates),
            "LIVEINSTANCES" => Some(DataSource::LiveInstances),
            "INSTANCES" => Some(DataSource::Instances),
            _ => None,
        }
    }
}

/// A SQL LIKE pattern: `%` matches any run of characters (also none), `_` exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Like(String);

impl Like {
    /// A pattern from its text.
    pub fn new(pattern: impl Into<String>) -> Self {
        Like(pattern.into())
    }

    /// Matches everything.
    pub fn any() -> Self {
        Like("%".into())
    }

    /// The pattern's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the pattern is exactly `%` (so naming it in criteria selects nothing more).
    pub fn is_any(&self) -> bool {
        self.0 == "%"
    }

    /// Whether `text` matches, case-sensitively, as SQL LIKE does. Allocates nothing unless
    /// a wildcard pattern meets non-ASCII text (then it matches by characters).
    pub fn matches(&self, text: &str) -> bool {
        let p = self.0.as_str();
        if p == "%" {
            return true;
        }
        if !p.contains(['%', '_']) {
            return p == text;
        }
        if p.is_ascii() && text.is_ascii() {
            return like(p.as_bytes(), text.as_bytes(), b'%', b'_');
        }
        let p: Vec<char> = p.chars().collect();
        let t: Vec<char> = text.chars().collect();
        like(&p, &t, '%', '_')
    }
}

/// SQL LIKE over units (bytes of ASCII text, or characters): `any` matches any run, `one`
/// exactly one unit. Greedy two-pointer match with backtracking to the last `any`.
fn like<T: PartialEq + Copy>(p: &[T], t: &[T], any: T, one: T) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == one || (p[pi] != any && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == any {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == any)
}

impl fmt::Display for Like {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a message is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Criteria {
    /// The cluster (`clusterName`; default: the sender's own cluster).
    pub cluster: Option<String>,
    /// Instance names (`instanceName`).
    pub instance: Like,
    /// Recipient kind (`recipientInstanceType`).
    pub recipient_type: RecipientType,
    /// Resources (`resource`); `None`: not part of the selection.
    pub resource: Option<Like>,
    /// Partitions (`partition`); `None`: not part of the selection.
    pub partition: Option<Like>,
    /// Partition states (`partitionState`); `None`: not part of the selection.
    pub partition_state: Option<Like>,
    /// The message is for the recipient's current session only (`sessionSpecific`).
    pub session_specific: bool,
    /// The sender is never a recipient (`selfExcluded`).
    pub self_excluded: bool,
    /// The records evaluated (`dataSource`).
    pub data_source: DataSource,
}

impl Default for Criteria {
    fn default() -> Self {
        Criteria {
            cluster: None,
            instance: Like::any(),
            recipient_type: RecipientType::Participant,
            resource: None,
            partition: None,
            partition_state: None,
            session_specific: false,
            self_excluded: true,
            data_source: DataSource::ExternalView,
        }
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool, MessagingError> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(MessagingError::BadCriteria {
            reason: format!("{key}={v:?}: expected true or false"),
        }),
    }
}

impl Criteria {
    /// Every participant of the cluster (Helix's `instanceName=%`).
    pub fn all_participants() -> Self {
        Criteria::default()
    }

    /// The cluster's leading controller.
    pub fn controller() -> Self {
        Criteria {
            recipient_type: RecipientType::Controller,
            ..Criteria::default()
        }
    }

    /// One instance by name.
    pub fn instance(name: &str) -> Self {
        Criteria {
            instance: Like::new(name),
            ..Criteria::default()
        }
    }

    /// Parses `instanceName=%,resource=TestDB,partition=TestDB_15,partitionState=SLAVE`.
    pub fn parse(text: &str) -> Result<Criteria, MessagingError> {
        let bad = |reason: String| MessagingError::BadCriteria { reason };
        let mut c = Criteria::default();
        if text.trim().is_empty() {
            return Err(bad(
                "empty criteria; give at least instanceName=% (all participants)".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{part:?} is not key=value")))?;
            let (k, v) = (k.trim(), v.trim());
            let key = k.to_ascii_lowercase();
            if !seen.insert(key.clone()) {
                return Err(bad(format!("{k} is given twice")));
            }
            if v.is_empty() {
                return Err(bad(format!("{k} has no value")));
            }
            match key.as_str() {
                "instancename" => c.instance = Like::new(v),
                "resource" | "resourcename" => c.resource = Some(Like::new(v)),
                "partition" | "partitionname" => c.partition = Some(Like::new(v)),
                "partitionstate" => c.partition_state = Some(Like::new(v)),
                "recipientinstancetype" => {
                    c.recipient_type = RecipientType::parse(v).ok_or_else(|| {
                        bad(format!(
                            "recipientInstanceType={v:?}: expected PARTICIPANT, CONTROLLER or SPECTATOR"
                        ))
                    })?
                }
                "datasource" => {
                    c.data_source = DataSource::parse(v).ok_or_else(|| {
                        bad(format!(
                            "dataSource={v:?}: expected EXTERNALVIEW, IDEALSTATES, LIVEINSTANCES or INSTANCES"
                        ))
                    })?
                }
                "sessionspecific" => c.session_specific = parse_bool(k, v)?,
                "selfexcluded" => c.self_excluded = parse_bool(k, v)?,
                "clustername" => c.cluster = Some(v.to_string()),
                _ => {
                    return Err(bad(format!(
                        "unknown key {k:?}; known: instanceName, recipientInstanceType, resource, partition, partitionState, sessionSpecific, selfExcluded, dataSource, clusterName"
                    )))
                }
            }
        }
        Ok(c)
    }
}

impl fmt::Display for Criteria {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "instanceName={},recipientInstanceType={}",
            self.instance,
            self.recipient_type.as_str()
        )?;
        for (k, v) in [
            ("resource", &self.resource),
            ("partition", &self.partition),
            ("partitionState", &self.partition_state),
        ] {
            if let Some(v) = v {
                write!(f, ",{k}={v}")?;
            }
        }
        write!(
            f,
            ",sessionSpecific={},selfExcluded={},dataSource={}",
            self.session_specific,
            self.self_excluded,
            self.data_source.as_str()
        )?;
        if let Some(c) = &self.cluster {
            write!(f, ",clusterName={c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_follows_sql_like() {
        let cases: &[(&str, &str, bool)] = &[
            ("%", "", true),
            ("%", "anything", true),
            ("TestDB_1", "TestDB_1", true),
            ("TestDB_1", "TestDB_10", false),
            ("TestDB_%", "TestDB_10", true),
            ("TestDB_%", "TestDB", false),
            ("TestDB__", "TestDB_1", true),
            ("TestDB__", "TestDB_10", false),
            ("_", "", false),
            ("%_%", "x", true),
            ("%_%", "", false),
            ("local%_1291_", "localhost_12913", true),
            ("%13", "localhost_12913", true),
            ("%13", "localhost_12914", false),
            ("a%b%c", "aXXbYYc", true),
            ("a%b%c", "aXXcYYb", false),
            // No wildcard: equality.
            ("abc", "abc", true),
            ("abc", "abd", false),
            ("", "", true),
            ("", "x", false),
            // `_` is one character, not one byte, in text that is not ASCII.
            ("_", "é", true),
            ("__", "é", false),
            ("é_", "éa", true),
            ("%é", "xé", true),
            ("x_z", "xéz", true),
            ("testdb_1", "TestDB_1", false),
            ("%%", "abc", true),
        ];
        for (p, t, want) in cases {
            assert_eq!(Like::new(*p).matches(t), *want, "{p:?} LIKE {t:?}");
        }
    }

    #[test]
    fn parse_reads_helix_keys_and_defaults() {
        let c = Criteria::parse("instanceName=%,resource=TestDB,partition=TestDB_15,partitionState=SLAVE")
            .unwrap();
        assert_eq!(c.instance, Like::any());
        assert_eq!(c.resource, Some(Like::new("TestDB")));
        assert_eq!(c.partition, Some(Like::new("TestDB_15")));
        assert_eq!(c.partition_state, Some(Like::new("SLAVE")));
        assert!(c.self_excluded, "selfExcluded defaults to true");
        assert!(!c.session_specific);
        assert_eq!(c.data_source, DataSource::ExternalView);
        assert_eq!(c.recipient_type, RecipientType::Participant);

        let c = Criteria::parse(
            " InstanceName = node_% , recipientInstanceType=controller, selfExcluded=FALSE,sessionSpecific=true,dataSource=idealstates,clusterName=C",
        )
        .unwrap();
        assert_eq!(c.instance, Like::new("node_%"));
        assert_eq!(c.recipient_type, RecipientType::Controller);
        assert!(!c.self_excluded && c.session_specific);
        assert_eq!(c.data_source, DataSource::IdealStates);
        assert_eq!(c.cluster.as_deref(), Some("C"));
        // Display prints what parse reads back.
        assert_eq!(Criteria::parse(&c.to_string()).unwrap(), c);
    }

    #[test]
    fn bad_criteria_are_errors_that_say_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("instanceName", "not key=value"),
            ("instanceName=%,instancename=x", "twice"),
            ("instanceName=", "no value"),
            ("colour=red", "unknown key \"colour\""),
            (
                "recipientInstanceType=ROBOT",
                "PARTICIPANT, CONTROLLER or SPECTATOR",
            ),
            ("dataSource=CURRENTSTATES", "EXTERNALVIEW, IDEALSTATES"),
            ("selfExcluded=yes", "true or false"),
        ];
        for (text, needle) in cases {
            let e = Criteria::parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
