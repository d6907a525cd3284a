//! strand — a cluster manager for partitioned, replicated services.
//!
//! strand re-implements Apache Helix's model (clusters, resources split into partitions,
//! replicas driven through a state machine, an elected controller that makes the external
//! view converge to the ideal state) on SWIM gossip, QUIC with mutual TLS and a
//! Raft-replicated property store.
//!
//! ```text
//!            decisions (pure, synchronous)          shells (async, own I/O)
//!   model ── statemodel ── rebalance ── controller ─┬─ transport (QUIC, mTLS)
//!                                                   ├─ membership (SWIM / foca)
//!                                                   ├─ messaging
//!                                                   └─ propertystore ── config
//! ```
//!
//! See `ARCHITECTURE.md` for the layers, data flows and invariants.
#![forbid(unsafe_code)]

pub mod admin;
pub mod authz;
pub mod check;
pub mod cli;
pub mod clock;
pub mod codec;
pub mod config;
pub mod controller;
pub mod embedded;
pub mod entropy;
pub mod health;
pub mod http;
pub mod membership;
pub mod messaging;
pub mod model;
pub mod participant;
pub mod propertystore;
pub mod rebalance;
pub mod settings;
pub mod sim;
pub mod spectator;
pub mod statemodel;
pub mod telemetry;
pub mod testing;
pub mod transport;
pub mod watch;
