//! `strand helix-admin …`: helix-admin.sh's own options, verbatim, so Helix users' scripts
//! and the Helix tutorial run as they are:
//!
//! ```text
//!   strand helix-admin --zkSvr localhost:7400 --addCluster MYCLUSTER
//!   strand helix-admin --zkSvr localhost:7400 --addNode MYCLUSTER localhost:12913
//!   strand helix-admin --zkSvr localhost:7400 --addResource MYCLUSTER myDB 6 MasterSlave
//!   strand helix-admin --zkSvr localhost:7400 --rebalance MYCLUSTER myDB 3
//!   strand helix-admin --zkSvr localhost:7400 --listResourceInfo MYCLUSTER myDB
//! ```
//!
//! Options are camelCase long options followed by their values, as Helix's Commons-CLI
//! parser takes them (`--opt v1 v2` or `--opt=v1`); `--zkSvr` names the strand store
//! endpoints (host:port, comma-separated). Output is what helix-admin prints. Parsing is a
//! pure function ([`parse`]); the commands themselves are [`crate::admin`] calls.

use std::collections::BTreeMap;

use super::admin::helix_resource_info;
use super::store::{connect, runtime};
use super::CliError;
use crate::admin::{
    instance_name, parse_constraint_type, parse_key_values, parse_keys, AddResource, Admin, AdminError,
    ConfigScope,
};
use crate::model::Record;
use crate::settings::SettingsFlags;

/// Arguments of `strand helix-admin`: helix-admin.sh's options, parsed by [`parse`].
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true, disable_version_flag = true)]
pub struct HelixAdminArgs {
    /// helix-admin.sh's options, e.g. `--zkSvr localhost:7400 --addCluster MYCLUSTER`
    /// (`--help` lists them).
    #[arg(allow_hyphen_values = true, trailing_var_arg = true, num_args = 0..)]
    pub args: Vec<String>,
}

/// One of helix-admin's options: its name, how many values it takes, what they are.
#[derive(Debug, Clone, Copy)]
struct OptSpec {
    name: &'static str,
    min: usize,
    max: usize,
    values: &'static str,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A command (exactly one per invocation).
    Command,
    /// Modifies a command (`--mode`, `--tag`, …) or is global (`--zkSvr`).
    Modifier,
    /// A helix-admin command strand does not implement.
    Unsupported,
    /// `--help`.
    Help,
}

const MANY: usize = usize::MAX;

const fn opt(name: &'static str, min: usize, max: usize, values: &'static str, kind: Kind) -> OptSpec {
    OptSpec {
        name,
        min,
        max,
        values,
        kind,
    }
}

use Kind::{Command as C, Help as H, Modifier as M, Unsupported as U};

const OPTIONS: &[OptSpec] = &[
    opt("help", 0, 0, "(prints these options)", H),
    opt("zkSvr", 1, 1, "storeAddress(host:port[,host:port])", M),
    opt("listClusters", 0, 0, "", C),
    opt("listResources", 1, 1, "clusterName <--tag tagValue>", C),
    opt("listInstances", 1, 1, "clusterName <--tag tagName>", C),
    opt("addCluster", 1, 1, "clusterName", C),
    opt("dropCluster", 1, 1, "clusterName", C),
    opt(
        "addNode",
        2,
        2,
        "clusterName InstanceId(host:port[;host:port])",
        C,
    ),
    opt(
        "dropNode",
        2,
        2,
        "clusterName InstanceId(host:port[;host:port])",
        C,
    ),
    opt("swapInstance", 3, 3, "clusterName oldInstance newInstance", C),
    opt(
        "addResource",
        4,
        4,
        "clusterName resourceName partitionNum stateModelRef <--mode modeValue>",
        C,
    ),
    opt("dropResource", 2, 2, "clusterName resourceName", C),
    opt("addStateModelDef", 2, 2, "clusterName <filename>", C),
    opt("addIdealState", 3, 3, "clusterName resourceName <filename>", C),
    opt(
        "rebalance",
        3,
        3,
        "clusterName resourceName replicas <--instanceGroupTag tag>",
        C,
    ),
    opt("enableResource", 3, 3, "clusterName resourceName true/false", C),
    opt("listClusterInfo", 1, 1, "clusterName", C),
    opt("listInstanceInfo", 2, 2, "clusterName InstanceName", C),
    opt("listResourceInfo", 2, 2, "clusterName resourceName", C),
    opt(
        "listPartitionInfo",
        3,
        3,
        "clusterName resourceName partitionName",
        C,
    ),
    opt(
        "addResourceProperty",
        4,
        4,
        "clusterName resourceName propertyName propertyValue",
        C,
    ),
    opt(
        "removeResourceProperty",
        3,
        3,
        "clusterName resourceName propertyName",
        C,
    ),
    opt("enableInstance", 3, 3, "clusterName instanceName true/false", C),
    opt(
        "enablePartition",
        5,
        MANY,
        "true/false clusterName instanceName resourceName partitionName1...",
        C,
    ),
    opt("enableCluster", 2, 2, "clusterName true/false", C),
    opt(
        "resetPartition",
        4,
        MANY,
        "clusterName instanceName resourceName partitionName...",
        C,
    ),
    opt("resetInstance", 2, MANY, "clusterName instanceName...", C),
    opt("resetResource", 2, MANY, "clusterName resourceName...", C),
    opt("listStateModels", 1, 1, "clusterName", C),
    opt("listStateModel", 2, 2, "clusterName stateModelName", C),
    opt("addInstanceTag", 3, 3, "clusterName instanceName tag", C),
    opt("removeInstanceTag", 3, 3, "clusterName instanceName tag", C),
    opt(
        "setConfig",
        2,
        3,
        "ConfigScope(e.g. RESOURCE) ConfigScopeArgs(e.g. myCluster,testDB) KeyValueMap(e.g. k1=v1,k2=v2)",
        C,
    ),
    opt(
        "getConfig",
        1,
        3,
        "ConfigScope ConfigScopeArgs Keys(e.g. k1,k2)",
        C,
    ),
    opt(
        "removeConfig",
        2,
        3,
        "ConfigScope ConfigScopeArgs Keys(e.g. k1,k2)",
        C,
    ),
    opt(
        "setConstraint",
        4,
        4,
        "clusterName ConstraintType(e.g. MESSAGE_CONSTRAINT) ConstraintId KeyValueMap(e.g. k1=v1,k2=v2)",
        C,
    ),
    opt(
        "getConstraints",
        2,
        2,
        "clusterName ConstraintType(e.g. MESSAGE_CONSTRAINT)",
        C,
    ),
    opt(
        "removeConstraint",
        3,
        3,
        "clusterName ConstraintType ConstraintId",
        C,
    ),
    opt(
        "addStat",
        2,
        2,
        "clusterName statName(e.g. WINDOW(5)(latency_ms))",
        C,
    ),
    opt("dropStat", 2, 2, "clusterName statName", C),
    opt(
        "addAlert",
        2,
        2,
        "clusterName alertName(e.g. 'AVG(latency_ms)[RESOURCE=*] > 50')",
        C,
    ),
    opt("dropAlert", 2, 2, "clusterName alertName", C),
    opt("mode", 1, 1, "IdealState mode (with --addResource)", M),
    opt("tag", 1, 1, "tag (with --listResources, --listInstances)", M),
    opt("bucketSize", 1, 1, "bucket size (with --addResource)", M),
    opt(
        "maxPartitionsPerNode",
        1,
        1,
        "max partitions per node (with --addResource)",
        M,
    ),
    opt(
        "instanceGroupTag",
        1,
        1,
        "instance group tag (with --rebalance)",
        M,
    ),
    opt("key", 1, 1, "resource key prefix (with --rebalance)", M),
    opt("activateCluster", 3, 3, "clusterName grandCluster true/false", U),
    opt("expandCluster", 1, 1, "clusterName", U),
    opt("expandResource", 2, 2, "clusterName resourceName", U),
];

/// A parsed helix-admin command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The command option (`addCluster`) and its values; `help` for `--help`.
    pub command: String,
    /// The command's values.
    pub values: Vec<String>,
    /// Modifiers and `zkSvr`, by name.
    pub modifiers: BTreeMap<String, String>,
}

/// The option a token names, if it is one: `--name`, `-name` or `--name=value`.
fn option_token(token: &str) -> Option<(&str, Option<&str>)> {
    let body = token.strip_prefix("--").or_else(|| token.strip_prefix('-'))?;
    if !body.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    Some(match body.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (body, None),
    })
}

/// Parses helix-admin's arguments. Errors are usage errors, one line each.
pub fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut found: Vec<(OptSpec, Vec<String>)> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let token = &args[i];
        let Some((name, inline)) = option_token(token) else {
            return Err(format!(
                "unexpected argument {token:?} (values follow their option, like --addNode MYCLUSTER localhost:12913)"
            ));
        };
        let spec = OPTIONS.iter().find(|o| o.name == name).copied().ok_or_else(|| {
            format!("unknown option --{name} (strand helix-admin --help lists the options)")
        })?;
        i += 1;
        let mut values: Vec<String> = inline.map(|v| vec![v.to_string()]).unwrap_or_default();
        while values.len() < spec.max && i < args.len() && option_token(&args[i]).is_none() {
            values.push(args[i].clone());
            i += 1;
        }
        if values.len() < spec.min {
            return Err(format!(
                "--{} takes {}{} value(s): {}; got {}",
                spec.name,
                spec.min,
                if spec.max == MANY { " or more" } else { "" },
                spec.values,
                values.len()
            ));
        }
        if found.iter().any(|(o, _)| o.name == spec.name) {
            return Err(format!("--{} is given twice", spec.name));
        }
        found.push((spec, values));
    }
    if found.iter().any(|(o, _)| o.kind == Kind::Help) {
        return Ok(Parsed {
            command: "help".into(),
            values: vec![],
            modifiers: BTreeMap::new(),
        });
    }
    if let Some((o, _)) = found.iter().find(|(o, _)| o.kind == Kind::Unsupported) {
        return Err(format!("--{} is not supported by strand", o.name));
    }
    let commands: Vec<&(OptSpec, Vec<String>)> =
        found.iter().filter(|(o, _)| o.kind == Kind::Command).collect();
    let (command, values) = match commands.as_slice() {
        [] => return Err("no command given (strand helix-admin --help lists them)".into()),
        [one] => (one.0.name.to_string(), one.1.clone()),
        many => {
            return Err(format!(
                "one command at a time; got {}",
                many.iter()
                    .map(|(o, _)| format!("--{}", o.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    };
    let modifiers = found
        .into_iter()
        .filter(|(o, _)| o.kind == Kind::Modifier)
        .map(|(o, v)| (o.name.to_string(), v.into_iter().next().unwrap_or_default()))
        .collect();
    Ok(Parsed {
        command,
        values,
        modifiers,
    })
}

/// The `--help` text.
pub fn usage() -> String {
    let mut out =
        String::from("usage: strand helix-admin --zkSvr <host:port> --<command> <values…>\n\noptions:\n");
    for o in OPTIONS.iter().filter(|o| o.kind != Kind::Unsupported) {
        out.push_str(&format!("  --{:<24} {}\n", o.name, o.values));
    }
    out
}

fn boolean(what: &str, text: &str) -> Result<bool, CliError> {
    match text.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(CliError::usage(format!(
            "{what}: expected true or false, got {text:?}"
        ))),
    }
}

fn number(what: &str, text: &str) -> Result<usize, CliError> {
    text.parse()
        .map_err(|_| CliError::usage(format!("{what}: expected a number, got {text:?}")))
}

fn cli_error(e: AdminError) -> CliError {
    if e.is_usage() {
        CliError::usage(e)
    } else {
        CliError::failed(e)
    }
}

/// Runs `strand helix-admin`.
pub fn run(args: HelixAdminArgs) -> Result<(), CliError> {
    let parsed = parse(&args.args).map_err(CliError::usage)?;
    if parsed.command == "help" {
        print!("{}", usage());
        return Ok(());
    }
    let settings = SettingsFlags {
        tls_dir: None,
        store: parsed
            .modifiers
            .get("zkSvr")
            .map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
    };
    let rt = runtime()?;
    rt.block_on(async move {
        let admin = Admin::new(connect(&settings)?);
        execute(&admin, &parsed).await
    })
}

/// A config scope from `--setConfig/--getConfig/--removeConfig` values: Helix's
/// `TYPE ARGS …` or strand's `TYPE=ARGS …`; returns the scope and the values after it.
fn config_scope(values: &[String]) -> Result<(ConfigScope, Vec<String>), CliError> {
    if values[0].contains('=') {
        let scope = ConfigScope::parse(&values[0]).map_err(cli_error)?;
        Ok((scope, values[1..].to_vec()))
    } else {
        let Some(args) = values.get(1) else {
            return Err(CliError::usage(format!(
                "config scope {:?} needs its arguments, like CLUSTER MYCLUSTER",
                values[0]
            )));
        };
        let scope = ConfigScope::from_parts(&values[0], args).map_err(cli_error)?;
        Ok((scope, values[2..].to_vec()))
    }
}

/// Runs one parsed command against `admin`, printing what helix-admin prints.
pub async fn execute(admin: &Admin, p: &Parsed) -> Result<(), CliError> {
    let v = &p.values;
    let modifier = |name: &str| p.modifiers.get(name).map(String::as_str);
    match p.command.as_str() {
        "listClusters" => {
            let names = admin.list_clusters().await.map_err(cli_error)?;
            println!("Existing clusters:");
            for n in names {
                println!("{n}");
            }
        }
        "addCluster" => admin.add_cluster(&v[0]).await.map_err(cli_error)?,
        "dropCluster" => admin.drop_cluster(&v[0]).await.map_err(cli_error)?,
        "addNode" => {
            for id in v[1].split(';').filter(|s| !s.is_empty()) {
                admin.add_instance(&v[0], id).await.map_err(cli_error)?;
            }
        }
        "dropNode" => {
            for id in v[1].split(';').filter(|s| !s.is_empty()) {
                admin.drop_instance(&v[0], id).await.map_err(cli_error)?;
            }
        }
        "swapInstance" => {
            admin
                .swap_instance(&v[0], &v[1], &v[2])
                .await
                .map_err(cli_error)?;
        }
        "listClusterInfo" => {
            let info = admin.cluster_info(&v[0]).await.map_err(cli_error)?;
            println!("Existing resources in cluster {}:", v[0]);
            for r in &info.resources {
                println!("{r}");
            }
            println!("Instances in cluster {}:", v[0]);
            for i in &info.instances {
                println!("{i}");
            }
        }
        "listResources" => {
            let tag = modifier("tag");
            let names = admin.list_resources(&v[0], tag).await.map_err(cli_error)?;
            match tag {
                Some(t) => println!("Existing resources in cluster {} with tag {t} :", v[0]),
                None => println!("Existing resources in cluster {}:", v[0]),
            }
            for n in names {
                println!("{n}");
            }
        }
        "listInstances" => {
            let names = admin
                .list_instances(&v[0], modifier("tag"))
                .await
                .map_err(cli_error)?;
            println!("Instances in cluster {}:", v[0]);
            for n in names {
                println!("{n}");
            }
        }
        "listInstanceInfo" => {
            let c = admin.instance_config(&v[0], &v[1]).await.map_err(cli_error)?;
            println!("InstanceConfig: {}", c.record.to_helix_json());
        }
        "addResource" => {
            let mut spec = AddResource::new(number("number of partitions", &v[2])?, v[3].clone());
            if let Some(m) = modifier("mode") {
                spec.mode = AddResource::parse_mode(m).map_err(cli_error)?;
            }
            if let Some(b) = modifier("bucketSize") {
                spec.bucket_size = Some(number("--bucketSize", b)?);
            }
            if let Some(n) = modifier("maxPartitionsPerNode") {
                spec.max_partitions_per_instance = Some(number("--maxPartitionsPerNode", n)?);
            }
            admin.add_resource(&v[0], &v[1], &spec).await.map_err(cli_error)?;
        }
        "addIdealState" => {
            let record = read_record(&v[2])?;
            admin
                .add_ideal_state(&v[0], &v[1], record)
                .await
                .map_err(cli_error)?;
        }
        "dropResource" => admin.drop_resource(&v[0], &v[1]).await.map_err(cli_error)?,
        "rebalance" => {
            if let Some(k) = modifier("key").filter(|k| !k.is_empty() && *k != v[1]) {
                return Err(CliError::usage(format!(
                    "--key {k}: strand names partitions after the resource ({}_0, …)",
                    v[1]
                )));
            }
            let replicas = number("replicas", &v[2])?;
            admin
                .rebalance(
                    &v[0],
                    &v[1],
                    replicas,
                    modifier("instanceGroupTag").filter(|t| !t.is_empty()),
                )
                .await
                .map_err(cli_error)?;
        }
        "listResourceInfo" => {
            let info = admin.resource_info(&v[0], &v[1]).await.map_err(cli_error)?;
            print!("{}", helix_resource_info(&info));
        }
        "listPartitionInfo" => {
            let (r, part) = (&v[1], &v[2]);
            let info = admin.partition_info(&v[0], r, part).await.map_err(cli_error)?;
            println!("IdealState for {r}/{part}:");
            println!("{}", info.ideal_state.to_helix_json());
            println!();
            match info.external_view {
                Some(ev) => {
                    println!("ExternalView for {r}/{part}:");
                    println!("{}", ev.to_helix_json());
                }
                None => println!("No externalView for {r}/{part}"),
            }
        }
        "enableResource" => {
            if modifier("tag").is_some() {
                return Err(CliError::usage(
                    "--enableResource with --tag (resource groups) is not supported by strand",
                ));
            }
            let enabled = boolean("--enableResource", &v[2])?;
            admin
                .enable_resource(&v[0], &v[1], enabled)
                .await
                .map_err(cli_error)?;
        }
        "addResourceProperty" => admin
            .set_resource_property(&v[0], &v[1], &v[2], &v[3])
            .await
            .map_err(cli_error)?,
        "removeResourceProperty" => admin
            .remove_resource_property(&v[0], &v[1], &v[2])
            .await
            .map_err(cli_error)?,
        "enableInstance" => {
            let enabled = boolean("--enableInstance", &v[2])?;
            let name = instance_name(&v[1]).map_err(cli_error)?;
            admin
                .enable_instance(&v[0], &name, enabled)
                .await
                .map_err(cli_error)?;
        }
        "enablePartition" => {
            let enabled = boolean("--enablePartition", &v[0])?;
            admin
                .enable_partitions(&v[1], &v[2], &v[3], &v[4..], enabled)
                .await
                .map_err(cli_error)?;
        }
        "enableCluster" => {
            if boolean("--enableCluster", &v[1])? {
                admin.resume_cluster(&v[0]).await.map_err(cli_error)?;
            } else {
                admin.pause_cluster(&v[0], None).await.map_err(cli_error)?;
            }
        }
        "resetPartition" => {
            admin
                .reset_partitions(&v[0], &v[1], &v[2], &v[3..])
                .await
                .map_err(cli_error)?;
        }
        "resetInstance" => {
            for i in &v[1..] {
                admin.reset_instance(&v[0], i).await.map_err(cli_error)?;
            }
        }
        "resetResource" => {
            for r in &v[1..] {
                admin.reset_resource(&v[0], r).await.map_err(cli_error)?;
            }
        }
        "addStateModelDef" => {
            let record = read_record(&v[1])?;
            if record.id.is_empty() {
                return Err(CliError::usage(
                    "the state model definition record must have an id",
                ));
            }
            admin.add_state_model(&v[0], &record).await.map_err(cli_error)?;
        }
        "listStateModels" => {
            let names = admin.list_state_models(&v[0]).await.map_err(cli_error)?;
            println!("Existing state models:");
            for n in names {
                println!("{n}");
            }
        }
        "listStateModel" => {
            let r = admin.state_model(&v[0], &v[1]).await.map_err(cli_error)?;
            println!("StateModelDefinition: {}", r.to_helix_json());
        }
        "addInstanceTag" => admin
            .add_instance_tag(&v[0], &v[1], &v[2])
            .await
            .map_err(cli_error)?,
        "removeInstanceTag" => admin
            .remove_instance_tag(&v[0], &v[1], &v[2])
            .await
            .map_err(cli_error)?,
        "setConfig" => {
            let (scope, rest) = config_scope(v)?;
            let [kv] = rest.as_slice() else {
                return Err(CliError::usage(
                    "--setConfig needs the key-value map k1=v1,k2=v2 after the scope",
                ));
            };
            let values = parse_key_values(kv).map_err(cli_error)?;
            admin.set_config(&scope, &values).await.map_err(cli_error)?;
        }
        "getConfig" => {
            let (scope, rest) = config_scope(v)?;
            let keys = rest.first().map(|k| parse_keys(k)).unwrap_or_default();
            let values = admin.get_config(&scope, &keys).await.map_err(cli_error)?;
            let mut r = Record::new(scope.kind().as_str());
            r.simple_fields = values;
            println!("{}", r.to_helix_json());
        }
        "removeConfig" => {
            let (scope, rest) = config_scope(v)?;
            let keys = rest.first().map(|k| parse_keys(k)).unwrap_or_default();
            if keys.is_empty() {
                return Err(CliError::usage(
                    "--removeConfig needs the keys k1,k2 after the scope",
                ));
            }
            admin.remove_config(&scope, &keys).await.map_err(cli_error)?;
        }
        "setConstraint" => {
            let t = parse_constraint_type(&v[1]).map_err(cli_error)?;
            let attrs = parse_key_values(&v[3]).map_err(cli_error)?;
            admin
                .set_constraint(&v[0], t, &v[2], &attrs)
                .await
                .map_err(cli_error)?;
        }
        "getConstraints" => {
            let t = parse_constraint_type(&v[1]).map_err(cli_error)?;
            let c = admin.constraints(&v[0], t).await.map_err(cli_error)?;
            println!("{}", c.record.to_helix_json());
        }
        "removeConstraint" => {
            let t = parse_constraint_type(&v[1]).map_err(cli_error)?;
            admin
                .remove_constraint(&v[0], t, &v[2])
                .await
                .map_err(cli_error)?;
        }
        "addStat" => {
            admin.add_stat(&v[0], &v[1]).await.map_err(cli_error)?;
        }
        "dropStat" => {
            admin.remove_stat(&v[0], &v[1]).await.map_err(cli_error)?;
        }
        "addAlert" => {
            admin.add_alert(&v[0], &v[1]).await.map_err(cli_error)?;
        }
        "dropAlert" => {
            admin.remove_alert(&v[0], &v[1]).await.map_err(cli_error)?;
        }
        other => return Err(CliError::usage(format!("--{other} is not supported by strand"))),
    }
    Ok(())
}

fn read_record(path: &str) -> Result<Record, CliError> {
    let text = super::read_file(std::path::Path::new(path))?;
    Record::from_json(&text).map_err(|e| CliError::usage(format!("{path}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_take_their_values_in_helix_order() {
        let p = parse(&args(
            "--zkSvr localhost:7400 --addNode MYCLUSTER localhost:12913",
        ))
        .unwrap();
        assert_eq!(p.command, "addNode");
        assert_eq!(p.values, ["MYCLUSTER", "localhost:12913"]);
        assert_eq!(p.modifiers["zkSvr"], "localhost:7400");

        let p = parse(&args(
            "--addResource C myDB 6 MasterSlave --mode FULL_AUTO --zkSvr h:1",
        ))
        .unwrap();
        assert_eq!(p.values, ["C", "myDB", "6", "MasterSlave"]);
        assert_eq!(p.modifiers["mode"], "FULL_AUTO");

        let p = parse(&args("--enablePartition false C localhost_1 myDB myDB_0 myDB_1")).unwrap();
        assert_eq!(p.values.len(), 6);

        let p = parse(&args("-zkSvr=h:1 -listClusters")).unwrap();
        assert_eq!(p.command, "listClusters");
        assert_eq!(p.modifiers["zkSvr"], "h:1");
    }

    #[test]
    fn bad_command_lines_get_one_clear_line() {
        let e = parse(&args("--zkSvr h:1 --addNode MYCLUSTER")).unwrap_err();
        assert!(e.contains("--addNode takes 2") && e.contains("got 1"), "{e}");
        let e = parse(&args("--frobnicate C")).unwrap_err();
        assert!(e.contains("unknown option --frobnicate"), "{e}");
        let e = parse(&args("--addCluster A B")).unwrap_err();
        assert!(e.contains("unexpected argument \"B\""), "{e}");
        let e = parse(&args("--zkSvr h:1")).unwrap_err();
        assert!(e.contains("no command"), "{e}");
        let e = parse(&args("--addCluster A --dropCluster A")).unwrap_err();
        assert!(e.contains("one command at a time"), "{e}");
        let e = parse(&args("--expandCluster A")).unwrap_err();
        assert!(e.contains("not supported"), "{e}");
        assert_eq!(parse(&args("--help")).unwrap().command, "help");
    }
}
