//! The rebalance engine: pure, synchronous, deterministic decisions.
//!
//! ```text
//!  instances + ideal state + current states + pending transitions + state model
//!        │
//!        ├─ placement   FULL_AUTO: preference lists (sticky, balanced, zone-aware)
//!        ├─ delayed     keep offline instances' places until their delay expires
//!        ├─ bounds      state bounds: the model's, or a STATE_CONSTRAINT's override
//!        ├─ assignment  best possible state per replica (down each preference list)
//!        ├─ transitions next hop toward the best possible state
//!        ├─ selection   accept transitions only while every state bound holds
//!        └─ throttle    throttle configs and message constraints
//!        ▼
//!  best possible map + the transitions to send this round
//! ```
//!
//! [`compute`] decides a snapshot from scratch; [`Engine`] (the controller's) decides the
//! same, reusing the resources whose inputs did not change since its last round.
//!
//! Nothing here does I/O, reads a clock or draws randomness: time is an input
//! ([`ClusterSnapshot::now_ms`]) and every tie is broken by a stable order of names, so
//! the same inputs give the same outputs whatever the order of maps and lists.

mod cluster;

// Placement (placement, delayed).
pub mod delayed;
pub mod placement;

// Everything after placement (assignment .. pipeline).
pub mod assignment;
pub mod bounds;
pub mod engine;
pub mod error;
mod holdings;
pub mod pipeline;
mod plan;
pub mod selection;
pub mod shared;
pub mod throttle;
pub mod transitions;

pub use cluster::{InstanceInfo, NameSet};
pub use engine::Engine;
pub use error::RebalanceError;
pub use pipeline::{compute, ClusterSnapshot, Decision, ResourceSnapshot};
pub use shared::Shared;
