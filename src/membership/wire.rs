//! What membership puts on the wire, inside strand's versioned envelope.
//!
//! ```text
//!   datagram on Service::MEMBERSHIP:  envelope(Datagram::Swim(foca packet))
//!                                     envelope(Datagram::Leave(identity))
//!                                     envelope(Datagram::Suspected { identity, incarnation })
//!   request  on Service::MEMBERSHIP:  envelope(MembershipRequest) → envelope(MembershipReply)
//!                                     (Hello, Members, Leave(identity) → LeaveNoted)
//! ```

use serde::{Deserialize, Serialize};

use super::events::MemberStatus;
use super::identity::NodeId;

/// Bytes the envelope and the [`Datagram::Swim`] wrapping add to a foca packet (magic,
/// version, variant, length prefix), rounded up.
pub const DATAGRAM_OVERHEAD: usize = 8;

/// One membership datagram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Datagram {
    /// A SWIM packet for foca.
    Swim(Vec<u8>),
    /// The sender leaves the cluster now (sent directly to every member, a few times).
    Leave(NodeId),
    /// The sender holds the receiver (`id`, at `incarnation`) as suspect: refute it. Sent
    /// directly to the suspect when the suspicion starts and again while it lasts, so a
    /// suspicion does not depend on gossip reaching the suspect in time.
    Suspected {
        /// The suspect's identity.
        id: NodeId,
        /// The incarnation under suspicion.
        incarnation: u16,
    },
}

/// A question to a node's membership service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipRequest {
    /// "Who are you?": the answer is the node's current identity (used to join via a seed
    /// known only by its address).
    Hello,
    /// The node's membership view.
    Members,
    /// The sender leaves the cluster now: the same notice as [`Datagram::Leave`], over a
    /// stream, so it survives datagram loss and a connection still being set up.
    Leave(NodeId),
}

/// A node's answer to a [`MembershipRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MembershipReply {
    /// The node's identity.
    Hello(NodeId),
    /// The node's view; its own row first.
    Members(Vec<MemberStatus>),
    /// The leave notice was recorded.
    LeaveNoted,
}
