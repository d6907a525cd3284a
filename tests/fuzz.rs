//! Bad input never panics: property tests (proptest) over every decoder and parser that
//! takes bytes or text from outside the process: transport frames, the store protocol and
//! its on-disk values, gossip payloads, participant and application messages, records and
//! state models as JSON, plan files, criteria, config scopes, alert rules, helix-admin's
//! and strand's command lines.
//!
//! Each area checks, as far as it applies:
//! 1. arbitrary bytes or text return a value or a clear error, never a panic;
//! 2. `decode(encode(x)) == x` for generated valid `x`;
//! 3. mutated valid encodings (bit flips, truncation, inserted bytes, a length field set
//!    huge) never panic, and decoding allocates a bounded amount whatever length a field
//!    declares (measured by this binary's counting allocator, [`alloc`]).
//!
//! And [`peers`] shows the end-to-end promise on a real store replica: the peer that sends
//! garbage is refused, with the reason, while the others are served.
//!
//! The default case counts keep the whole binary under a minute in debug;
//! `scripts/fuzz.sh [CASES]` runs the same tests in release with `PROPTEST_CASES=CASES`.
//! proptest prints a failing case shrunk; no regression files are written
//! (`failure_persistence: None`): a found bug gets a regression test named after it.

#[path = "fuzz/alloc.rs"]
mod alloc;
#[path = "fuzz/cli.rs"]
mod cli;
#[path = "fuzz/gossip.rs"]
mod gossip;
#[path = "fuzz/messages.rs"]
mod messages;
#[path = "fuzz/mutate.rs"]
mod mutate;
#[path = "fuzz/peers.rs"]
mod peers;
#[path = "fuzz/plan.rs"]
mod plan;
#[path = "fuzz/records.rs"]
mod records;
#[path = "fuzz/store.rs"]
mod store;
#[path = "fuzz/text.rs"]
mod text;
#[path = "fuzz/transport.rs"]
mod transport;

use proptest::test_runner::Config;

/// proptest's configuration for these tests: `PROPTEST_CASES` (default `default_cases`),
/// no regression files (found bugs become named tests), and no shrinking time limit.
pub fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}
