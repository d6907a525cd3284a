//! strand's command line: random walks down the real command tree (every subcommand, its
//! flags, their possible values, and values that are wrong in every way) through
//! `Cli::try_parse_from`, which runs the custom value parsers (durations, peers, filters,
//! roles). Each must be parsed or refused with a message, never a panic.

use clap::{CommandFactory, Parser};
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
