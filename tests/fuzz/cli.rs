//! strand's command line: random walks down the real command tree (every subcommand, its
//! flags, their possible values, and values that are wrong in every way) through
//! `Cli::try_parse_from`, which runs the custom value parsers (durations, peers, filters,
//! roles). Each must be parsed or refused with a message, never a panic.

use clap::{CommandFactory, FromArgMatches, Parser};
use proptest::prelude::*;
use strand::cli::Cli;

/// Values a flag may get: right and wrong.
const VALUES: &[&str] = &[
    "",
    "-",
    "--",
    "0",
    "1",
    "-1",
    "65536",
    "18446744073709551616",
    "1.5",
    "abc",
    "MYCLUSTER",
    "localhost_1",
    "127.0.0.1:0",
    "127.0.0.1:99999",
    "[::1]:7000",
    "1@127.0.0.1:7000",
    "x@y",
    "1s",
    "250ms",
    "3m",
    "1h",
    "9999999999999d",
    "ms",
    "json",
    "table",
    "text",
    "/",
    "/a/b",
    "a//b",
    "k=v",
    "k=v,k2=v2",
    "CLUSTER",
    "PARTICIPANT=C,localhost_1",
    "instanceName=%",
    "admin",
    "viewer",
    "participant",
    "MasterSlave",
    "FULL_AUTO",
    "SEMI_AUTO",
    "CUSTOMIZED",
    "true",
    "false",
    "{}",
    "{\"a\":1}",
    "é",
    "\u{0}",
    "999999999999999999m",
    "999999999999999999s",
    "18446744073709551615ms",
    "0ms",
    "4294967296",
    "1@",
    "@127.0.0.1:1",
    "18446744073709551616@127.0.0.1:1",
    "a=b=c",
    "=",
    ",",
    "%",
    "1.0.0.0.0:1",
];

/// A walk down the tree: at each level, `picks` choose a subcommand; then flags of the
/// command reached, each with a value from [`VALUES`] or its possible values.
fn args(picks: &[usize], flags: &[(usize, usize, bool)], extra: &[String]) -> Vec<String> {
    let root = Cli::command();
    let mut out = vec!["strand".to_string()];
    let mut cmd = &root;
    for &p in picks {
        let subs: Vec<&clap::Command> = cmd.get_subcommands().collect();
        if subs.is_empty() {
            break;
        }
        cmd = subs[p % subs.len()];
        out.push(cmd.get_name().to_string());
    }
    let opts: Vec<&clap::Arg> = cmd.get_arguments().collect();
    if !opts.is_empty() {
        for &(which, value, with_value) in flags {
            let arg = opts[which % opts.len()];
            match (arg.get_long(), arg.get_short()) {
                (Some(long), _) => out.push(format!("--{long}")),
                (None, Some(short)) => out.push(format!("-{short}")),
                (None, None) => {}
            }
            if with_value {
                let possible: Vec<String> = arg
                    .get_possible_values()
                    .iter()
                    .map(|v| v.get_name().to_string())
                    .collect();
                if !possible.is_empty() && value % 2 == 0 {
                    out.push(possible[value / 2 % possible.len()].clone());
                } else {
                    out.push(VALUES[value % VALUES.len()].to_string());
                }
            }
        }
    }
    out.extend(extra.iter().cloned());
    out
}

proptest! {
    #![proptest_config(super::config(1024))]

    #[test]
    fn any_walk_down_the_command_tree_parses_or_is_refused(
        picks in proptest::collection::vec(any::<usize>(), 0..4),
        flags in proptest::collection::vec((any::<usize>(), any::<usize>(), any::<bool>()), 0..6),
        extra in proptest::collection::vec(prop_oneof![
            3 => prop::sample::select(VALUES).prop_map(String::from),
            1 => ".{0,12}",
        ], 0..3),
    ) {
        let argv = args(&picks, &flags, &extra);
        if let Err(e) = Cli::try_parse_from(&argv) {
            prop_assert!(!e.to_string().is_empty(), "{argv:?}");
        }
    }

    #[test]
    fn arbitrary_arguments_parse_or_are_refused(argv in proptest::collection::vec(".{0,16}", 0..6)) {
        let _ = Cli::try_parse_from(std::iter::once("strand".to_string()).chain(argv));
    }
}

/// Every command of the tree with its path from the root.
fn every_command() -> Vec<(Vec<String>, clap::Command)> {
    fn walk(path: Vec<String>, cmd: &clap::Command, out: &mut Vec<(Vec<String>, clap::Command)>) {
        out.push((path.clone(), cmd.clone()));
        for sub in cmd.get_subcommands() {
            let mut p = path.clone();
            p.push(sub.get_name().to_string());
            walk(p, sub, out);
        }
    }
    let mut out = Vec::new();
    walk(vec!["strand".into()], &Cli::command(), &mut out);
    out
}

/// Exhaustively: every flag and positional of every command, given each of [`VALUES`]
/// (value parsers run as the value is read, before required arguments are checked).
#[test]
fn every_argument_of_every_command_takes_every_hostile_value() {
    // One command, built once (`try_parse_from` would build the whole tree per call).
    let mut root = Cli::command();
    root.build();
    let mut tried = 0;
    for (path, cmd) in every_command() {
        for arg in cmd.get_arguments() {
            if !arg.get_action().takes_values() {
                continue;
            }
            for value in VALUES {
                let mut argv = path.clone();
                match (arg.get_long(), arg.get_short()) {
                    (Some(long), _) => argv.extend([format!("--{long}"), value.to_string()]),
                    (None, Some(short)) => argv.extend([format!("-{short}"), value.to_string()]),
                    (None, None) => argv.push(value.to_string()),
                }
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    root.try_get_matches_from_mut(&argv)
                        .map(|m| Cli::from_arg_matches(&m).map(drop))
                }));
                assert!(outcome.is_ok(), "{argv:?} panicked");
                tried += 1;
            }
        }
    }
    assert!(tried > 1000, "{tried} arguments tried");
}

#[test]
fn the_command_tree_is_consistent_and_walks_reach_leaves() {
    Cli::command().debug_assert();
    // A walk reaches a real leaf with a flag: `strand admin ...` is two levels deep.
    let argv = args(&[0, 0, 0], &[(0, 1, true)], &[]);
    assert!(argv.len() >= 3, "{argv:?}");
}

/// Walks are not all refused at the first token: some parse, and they reach commands at
/// every depth, so the value parsers of leaves run.
#[test]
fn walks_parse_often_enough_to_reach_value_parsers() {
    use proptest::strategy::{Strategy, ValueTree};
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (
        proptest::collection::vec(any::<usize>(), 0..4),
        proptest::collection::vec((any::<usize>(), any::<usize>(), any::<bool>()), 0..6),
    );
    let (n, mut ok, mut deep_ok) = (2000, 0, 0);
    for _ in 0..n {
        let (picks, flags) = strategy.new_tree(&mut runner).unwrap().current();
        let argv = args(&picks, &flags, &[]);
        if Cli::try_parse_from(&argv).is_ok() {
            ok += 1;
            if argv.len() >= 4 {
                deep_ok += 1;
            }
        }
    }
    assert!(ok * 20 >= n, "{ok} of {n} parsed");
    assert!(
        deep_ok * 50 >= n,
        "{deep_ok} of {n} parsed with 3 or more arguments"
    );
}
