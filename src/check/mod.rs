//! Checkers of recorded histories (issue 19 §2): pure functions from what clients saw to a
//! verdict, with no clock, no I/O and no randomness of their own.
//!
//! ```text
//!   clients' operations (invoke, complete, call, result) ──► linearizability::check ──► Verdict
//!   watchers' events + acknowledged writes + reads        ──► watch::check          ──► violations
//! ```
//!
//! [`linearizability`] decides whether a history of gets, puts, compare-and-sets and
//! transactions over a key-value store could have come from one copy of the store applying
//! each operation at one instant between its invocation and its answer. [`watch`] checks each
//! watcher's event stream against the writes the clients saw acknowledged.

pub mod linearizability;
pub mod watch;
