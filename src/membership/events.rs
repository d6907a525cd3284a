//! What membership tells its users: past-tense events and member snapshots.
//!
//! Events serialize to JSON as one object with an `event` tag, e.g.
//! `{"event":"MemberDown","name":"n3","addr":"127.0.0.1:7003","generation":…,"at_unix_ms":…}`;
//! `strand node run` prints exactly these, one per line.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::identity::{NodeId, Roles};

/// A change of one member, as this node saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberChange {
    /// The member's name.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its generation (with the name, its session).
    pub generation: u64,
    /// Its roles, by name.
    pub roles: Vec<String>,
    /// Its clusters.
    pub clusters: Vec<String>,
    /// When this node saw the change, in wall-clock milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

impl MemberChange {
    pub(crate) fn of(id: &NodeId, at_unix_ms: u64) -> Self {
        MemberChange {
            name: id.name.clone(),
            addr: id.addr,
            generation: id.generation,
            roles: id.roles.names().into_iter().map(String::from).collect(),
            clusters: id.clusters.clone(),
            at_unix_ms,
        }
    }
}

/// A change of this node's own standing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalChange {
    /// This node's name.
    pub name: String,
    /// This node's generation after the change.
    pub generation: u64,
    /// For [`MembershipEvent::Isolated`]: how long no peer has reached this node, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_ms: Option<u64>,
    /// When it happened, in wall-clock milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

/// Something that happened to the membership, as this node saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event")]
pub enum MembershipEvent {
    /// A member joined (or came back with a new generation, which ends its earlier session).
    MemberUp(MemberChange),
    /// A member failed a probe; it is still counted as alive until it is declared down.
    MemberSuspected(MemberChange),
    /// A member was declared down (it crashed, hung, or is cut off).
    MemberDown(MemberChange),
    /// A member left gracefully.
    MemberLeft(MemberChange),
    /// A member changed its metadata (roles, clusters) within its generation.
    MemberUpdated(MemberChange),
    /// No packet from any peer has reached this node for `isolation_after` (no ack, no
    /// probe, no gossip): it may be cut off and should
    /// act as if it were about to be declared down.
    Isolated(LocalChange),
    /// A peer reached this node again after [`MembershipEvent::Isolated`].
    Reconnected(LocalChange),
    /// This node learnt it had been declared down and rejoined with a new generation.
    Rejoined(LocalChange),
}

impl MembershipEvent {
    /// The event's name (`MemberDown`, …), as in its JSON `event` field.
    pub fn kind(&self) -> &'static str {
        match self {
            MembershipEvent::MemberUp(_) => "MemberUp",
            MembershipEvent::MemberSuspected(_) => "MemberSuspected",
            MembershipEvent::MemberDown(_) => "MemberDown",
            MembershipEvent::MemberLeft(_) => "MemberLeft",
            MembershipEvent::MemberUpdated(_) => "MemberUpdated",
            MembershipEvent::Isolated(_) => "Isolated",
            MembershipEvent::Reconnected(_) => "Reconnected",
            MembershipEvent::Rejoined(_) => "Rejoined",
        }
    }

    /// The member the event is about, for member events.
    pub fn member(&self) -> Option<&MemberChange> {
        match self {
            MembershipEvent::MemberUp(m)
            | MembershipEvent::MemberSuspected(m)
            | MembershipEvent::MemberDown(m)
            | MembershipEvent::MemberLeft(m)
            | MembershipEvent::MemberUpdated(m) => Some(m),
            _ => None,
        }
    }
}

/// A member's status in this node's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Answering probes.
    Alive,
    /// Failed a probe and has not refuted yet.
    Suspect,
    /// Declared down.
    Down,
    /// Left gracefully.
    Left,
}

impl Status {
    /// The status as a word (`alive`, `suspect`, `down`, `left`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Alive => "alive",
            Status::Suspect => "suspect",
            Status::Down => "down",
            Status::Left => "left",
        }
    }

    /// Alive or suspect: still counted as a member.
    pub fn is_active(self) -> bool {
        matches!(self, Status::Alive | Status::Suspect)
    }
}

/// One row of the membership view (`strand members`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// The member's name.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its generation.
    pub generation: u64,
    /// Its status.
    pub status: Status,
    /// Its roles, by name.
    pub roles: Vec<String>,
    /// Its clusters.
    pub clusters: Vec<String>,
    /// How long ago this node last heard from it, in milliseconds (none: never directly).
    pub last_heard_ms: Option<u64>,
    /// The round-trip time of this node's last direct probe of it, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Whether this row is the node that answered.
    pub is_local: bool,
}

impl MemberStatus {
    pub(crate) fn of(
        id: &NodeId,
        status: Status,
        last_heard: Option<Duration>,
        rtt: Option<Duration>,
        is_local: bool,
    ) -> Self {
        MemberStatus {
            name: id.name.clone(),
            addr: id.addr,
            generation: id.generation,
            status,
            roles: id.roles.names().into_iter().map(String::from).collect(),
            clusters: id.clusters.clone(),
            last_heard_ms: last_heard.map(|d| d.as_millis() as u64),
            rtt_ms: rtt.map(|d| d.as_secs_f64() * 1000.0),
            is_local,
        }
    }

    /// The roles as a set.
    pub fn role_set(&self) -> Roles {
        self.roles
            .iter()
            .filter_map(|r| Roles::parse_one(r).ok())
            .fold(Roles::NONE, Roles::union)
    }
}

/// A stream of [`MembershipEvent`]s; dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    pub(crate) rx: broadcast::Receiver<MembershipEvent>,
}

/// Why [`Subscription::recv`] returned no event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The subscriber fell behind and this many events were dropped for it; the next call
    /// continues with the oldest event still kept.
    #[error("missed {0} membership events")]
    Lagged(u64),
    /// The membership task has stopped; no more events will come.
    #[error("membership has stopped")]
    Closed,
}

impl Subscription {
    /// The next event.
    pub async fn recv(&mut self) -> Result<MembershipEvent, RecvError> {
        self.rx.recv().await.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(n) => RecvError::Lagged(n),
            broadcast::error::RecvError::Closed => RecvError::Closed,
        })
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<Result<MembershipEvent, RecvError>> {
        match self.rx.try_recv() {
            Ok(e) => Some(Ok(e)),
            Err(broadcast::error::TryRecvError::Empty) => None,
            Err(broadcast::error::TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
            Err(broadcast::error::TryRecvError::Closed) => Some(Err(RecvError::Closed)),
        }
    }
}
