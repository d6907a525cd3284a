//! The controller → participant protocol on [`crate::transport::Service::MESSAGING`].
//!
//! The controller records every message in the store first (`INSTANCES/<i>/MESSAGES/<id>`,
//! Helix's shape) and then sends it here as well, so a participant normally hears of a
//! transition at once; the store copy, which the participant also watches, is the
//! fallback. Either way the participant runs it at most once (by message id).

use serde::{Deserialize, Serialize};

/// A request to a participant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ParticipantRequest {
    /// State-transition messages, each a Helix-shaped record as JSON text.
    Transitions(Vec<String>),
}

/// What a participant did with each message of a [`ParticipantRequest::Transitions`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParticipantReply {
    /// One verdict per message, in order: `run`, `duplicate`, or `discarded: <reason>`.
    Verdicts(Vec<String>),
}
