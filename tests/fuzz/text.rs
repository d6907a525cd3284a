//! Text parsers: message criteria, config scopes and key-value lists, alert rules and stat
//! specs, health groups, helix-admin's options, roles, revocation lists, throttle and
//! constraint spellings, store peers, the settings file.

use std::ffi::OsString;

use proptest::prelude::*;
use strand::admin::{parse_constraint_type, parse_key_values, parse_keys, ConfigScope};
use strand::authz::Role;
use strand::cli::helix_admin;
use strand::cli::store::parse_peer;
use strand::health::{Group, Rule, StatSpec};
use strand::membership::Roles;
use strand::messaging::criteria::Criteria;
use strand::model::{
    ConstraintAttribute, ConstraintType, ConstraintValue, MessageType, RebalanceMode,
    StateTransitionThrottleConfig,
};
use strand::settings::{Settings, SettingsFlags, CONFIG_ENV};
use strand::statemodel::UpperBound;
use strand::transport::tls::Revocations;

/// Text built from the pieces these grammars use, so generated input reaches past the
/// first check; plus plain arbitrary text.
fn grammar_text() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "instanceName",
        "resource",
        "partition",
        "partitionState",
        "recipientInstanceType",
        "sessionSpecific",
        "selfExcluded",
        "dataSource",
        "=",
        ",",
        "%",
        "*",
        "_",
        "TestDB",
        "TestDB_1",
        "MASTER",
        "PARTICIPANT",
        "CLUSTER",
        "INSTANCE",
        "RESOURCE",
        "PARTITION",
        "PARTICIPANT",
        "C",
        "localhost_1",
        "EXP",
        "CMP",
        "CON",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ".",
        "|",
        ":",
        ";",
        "#",
        " ",
        "  ",
        "\n",
        "\t",
        "accumulate",
        "window",
        "decay",
        "count",
        "latency",
        "lastValue",
        "GREATER",
        "LESS",
        "EQUAL",
        ">",
        "<",
        ">=",
        "0",
        "1",
        "-1",
        "1.5",
        "1e308",
        "NaN",
        "inf",
        "18446744073709551616",
        "true",
        "serial",
        "name",
        "ab:CD",
        "0x",
        "store-1",
        "@",
        "127.0.0.1:7000",
        "[::1]:0",
        "99999",
        "é",
        "\u{0}",
        "out",
        "in",
        "all",
        "loss",
        "0.2",
    ]);
    prop_oneof![
        3 => proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat()),
        1 => ".{0,40}",
    ]
}

/// Alert rules in the rule language, with edge-case parameters, names and numbers.
fn rule_text() -> impl Strategy<Value = String> {
    let stat = prop_oneof![
        4 => prop::sample::select(vec!["latency_ms", "errors", "q.size", "x"]).prop_map(String::from),
        1 => ".{0,6}",
    ];
    let spec = prop_oneof![
        prop::sample::select(vec!["SUM", "AVG", "avg", "Sum"]).prop_map(|a| format!("{a}({{}})")),
        prop::sample::select(vec!["0.5", "1", "0", "1.5", "-0.1", "NaN", "1e-320", "0.999999"])
            .prop_map(|a| format!("EXPONENTIAL({a})({{}})")),
        prop::sample::select(vec!["1", "5", "0", "-1", "100000", "18446744073709551616"])
            .prop_map(|n| format!("WINDOW({n})({{}})")),
    ];
    let pat = prop::sample::select(vec!["*", "TestDB", "TestDB_*", "a*b*", "", "é"]);
    let selector = prop_oneof![
        pat.clone().prop_map(|p| format!("[INSTANCE={p}]")),
        pat.clone().prop_map(|p| format!("[RESOURCE={p}]")),
        pat.clone().prop_map(|p| format!("[PARTITION={p}]")),
        (pat.clone(), pat).prop_map(|(r, p)| format!("[RESOURCE={r},PARTITION={p}]")),
    ];
    let cmp = prop::sample::select(vec![">", ">=", "<", "<=", "==", "=", "!="]);
    let threshold = prop_oneof![
        4 => prop::sample::select(vec!["50", "-1.5", "2e3", "0", "1e308", "1e309", "-0", "NaN", "inf", "0x10", ".5", "5."])
            .prop_map(String::from),
        1 => any::<f64>().prop_map(|v| v.to_string()),
    ];
    (
        stat,
        spec,
        selector,
        cmp,
        threshold,
        prop::sample::select(vec!["", " ", "  "]),
    )
        .prop_map(|(stat, spec, sel, cmp, t, ws)| {
            format!("{ws}{}{ws}{sel} {cmp}{ws} {t}{ws}", spec.replace("{}", &stat))
        })
}

/// Criteria in Helix's `key=value,...` form.
fn criteria_text() -> impl Strategy<Value = String> {
    let pair = (
        prop::sample::select(vec![
            "instanceName",
            "resource",
            "partition",
            "partitionState",
            "recipientInstanceType",
            "sessionSpecific",
            "selfExcluded",
            "dataSource",
            "clusterName",
            "resourceName",
            "nope",
        ]),
        prop::sample::select(vec![
            "%",
            "_",
            "TestDB",
            "TestDB_%",
            "MASTER",
            "PARTICIPANT",
            "CONTROLLER",
            "true",
            "false",
            "EXTERNALVIEW",
            "LIVEINSTANCES",
            "INSTANCES",
            "IDEALSTATES",
            "C",
            "",
            "a=b",
            "é",
        ]),
    )
        .prop_map(|(k, v)| format!("{k}={v}"));
    proptest::collection::vec(pair, 1..6).prop_map(|v| v.join(","))
}

fn no_panic_text(t: &str) {
    let _ = Criteria::parse(t).map(|c| c.to_string());
    let _ = ConfigScope::parse(t).map(|s| s.path());
    for kind in [
        "CLUSTER",
        "PARTICIPANT",
        "RESOURCE",
        "PARTITION",
        "CONSTRAINT",
        "x",
    ] {
        let _ = ConfigScope::from_parts(kind, t).map(|s| (s.path(), s.cluster().to_string()));
    }
    let _ = parse_key_values(t);
    let _ = parse_keys(t);
    let _ = Rule::parse(t).map(|r| r.text());
    let _ = StatSpec::parse(t);
    let _ = Group::parse(t);
    let _ = Role::parse(t);
    let _ = Roles::parse_one(t);
    let _ = Revocations::parse(t);
    let _ = StateTransitionThrottleConfig::parse(t).map(|c| c.to_helix_json());
    let _ = (
        ConstraintType::parse(t),
        ConstraintAttribute::parse(t),
        ConstraintValue::parse(t),
    );
    let _ = (
        MessageType::parse(t),
        RebalanceMode::parse(t),
        UpperBound::parse(t),
    );
    let _ = parse_constraint_type(t);
    let _ = parse_peer(t);
    let _ = strand::config::app_path::validate_app_path(t);
    // The fault rules of fault runs (`--net-faults`): a file that fails names its line.
    if let Err(e) = strand::transport::faults::Rules::parse(t) {
        assert!(e.starts_with("line "), "{e}");
    }
}

proptest! {
    #![proptest_config(super::config(1024))]

    #[test]
    fn any_text_through_every_text_parser_is_a_value_or_an_error(t in grammar_text()) {
        no_panic_text(&t);
    }

    #[test]
    fn parsed_rules_and_criteria_read_back_the_same(
        t in prop_oneof![rule_text(), criteria_text(), grammar_text()],
    ) {
        no_panic_text(&t);
        if let Ok(rule) = Rule::parse(&t) {
            prop_assert!(rule.threshold.is_finite(), "{t:?} parsed to {rule:?}");
            prop_assert_eq!(Rule::parse(&rule.text()).unwrap(), rule);
        }
        if let Ok(c) = Criteria::parse(&t) {
            prop_assert_eq!(Criteria::parse(&c.to_string()).unwrap(), c);
        }
        if let Ok(scope) = ConfigScope::parse(&t) {
            prop_assert!(!scope.path().is_empty());
        }
    }

    #[test]
    fn helix_admin_arguments_parse_or_give_a_usage_line(args in proptest::collection::vec(prop_oneof![
        3 => prop::sample::select(vec![
            "--zkSvr", "--addCluster", "--addNode", "--addResource", "--rebalance", "--dropResource",
            "--listClusters", "--listResources", "--listInstances", "--resourceInfo", "--instanceInfo",
            "--enableInstance", "--enablePartition", "--addStateModelDef", "--swapInstance", "--help",
            "--mode", "--bucketSize", "--maxPartitionsPerNode", "--instanceGroupTag", "--setConfig",
            "--getConfig", "--removeConfig", "--addResourceProperty", "--expandCluster", "--zkSvr=x",
            "-h", "-", "--", "---x", "MYCLUSTER", "localhost:12913", "myDB", "6", "MasterSlave", "true",
            "SEMI_AUTO", "3", "CLUSTER=C", "k=v,k2=v2",
        ]).prop_map(String::from),
        1 => ".{0,12}",
    ], 0..8)) {
        match helix_admin::parse(&args) {
            Ok(p) => prop_assert!(!p.command.is_empty()),
            Err(e) => prop_assert!(!e.is_empty() && !e.contains('\n'), "one line: {e:?}"),
        }
    }

    #[test]
    fn any_settings_file_loads_or_names_the_problem(text in prop_oneof![
        ".{0,60}",
        proptest::collection::vec(prop::sample::select(vec![
            "tls_dir = \"/tmp/x\"\n", "store = [\"127.0.0.1:7000\"]\n", "store = []\n", "store = [1]\n",
            "store = [\"nope\"]\n", "[x]\n", "tls_dir = 3\n", "store = \"a\"\n", "=\n", "\"", "unknown = 1\n",
            "store = [\"[::1]:99999\"]\n",
        ]), 0..5).prop_map(|v| v.concat()),
    ]) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, &text).unwrap();
        let env = |k: &str| -> Option<OsString> {
            match k {
                CONFIG_ENV => Some(path.clone().into()),
                "XDG_DATA_HOME" | "XDG_CONFIG_HOME" | "HOME" => Some(dir.path().into()),
                _ => None,
            }
        };
        let flags = SettingsFlags { tls_dir: None, store: vec![] };
        if let Err(e) = Settings::load_with_env(&flags, env) {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}

/// The structured generators reach past the first check: a good share parses.
#[test]
fn generated_rules_and_criteria_parse_often_enough() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let rules = (0..500)
        .filter(|_| Rule::parse(&rule_text().new_tree(&mut runner).unwrap().current()).is_ok())
        .count();
    let criteria = (0..500)
        .filter(|_| Criteria::parse(&criteria_text().new_tree(&mut runner).unwrap().current()).is_ok())
        .count();
    assert!(
        rules >= 100 && criteria >= 50,
        "{rules} rules, {criteria} criteria of 500 parsed"
    );
}
