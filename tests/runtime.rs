//! The runtime end to end in one process (`EmbeddedCluster`: real store, gossip,
//! controllers and participants over the in-memory network): Helix's integration
//! scenarios, each checked against what participants reported.

#[path = "runtime/scenarios.rs"]
mod scenarios;
#[path = "runtime/support.rs"]
mod support;
#[path = "runtime/tutorial.rs"]
mod tutorial;
