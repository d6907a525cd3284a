//! Membership: deterministic simulations over the in-memory network (seeded, paused time),
//! real `strand node` processes on loopback, and the `strand members` command.

#[path = "membership/cli.rs"]
mod cli;
#[path = "membership/processes.rs"]
mod processes;
#[path = "membership/sim.rs"]
mod sim;
