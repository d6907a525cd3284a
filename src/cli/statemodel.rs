//! `strand statemodel validate|list|show`: check a STATEMODELDEFS record, see the built-ins.

use std::path::PathBuf;

use super::{output, CliError, OutputFormat};
use crate::model::Record;
use crate::statemodel::{self, StateModelDefinition};

/// Arguments of `strand statemodel`.
#[derive(Debug, clap::Args)]
pub struct StatemodelArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: StatemodelCommand,
}

/// `strand statemodel` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum StatemodelCommand {
    /// Validate a STATEMODELDEFS record (Helix JSON): prints "valid", or every broken rule and exits 1.
    Validate {
        /// The record's JSON file (`-` for standard input).
        file: PathBuf,
    },
    /// List the built-in state models.
    List {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Show a built-in state model (as a table, or as its Helix record with `-o json`).
    Show {
        /// The model's name (`MasterSlave`, `LeaderStandby`, `OnlineOffline`, …).
        name: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: OutputFormat,
    },
}

/// Runs `strand statemodel`.
pub fn run(args: StatemodelArgs) -> Result<(), CliError> {
    match args.command {
        StatemodelCommand::Validate { file } => validate(&file),
        StatemodelCommand::List { output } => {
            list(output);
            Ok(())
        }
        StatemodelCommand::Show { name, output } => show(&name, output),
    }
}

fn validate(file: &std::path::Path) -> Result<(), CliError> {
    let text = if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| CliError::failed(format!("cannot read standard input: {e}")))?;
        s
    } else {
        // An unreadable or malformed file is "not valid": exit 1 like any other broken rule.
        super::read_file(file).map_err(|e| CliError::failed(e.to_string()))?
    };
    let record =
        Record::from_json(&text).map_err(|e| CliError::failed(format!("{}: {e}", file.display())))?;
    match StateModelDefinition::from_record(&record) {
        Ok(def) => {
            println!(
                "valid: state model {} ({} states, {} transitions)",
                def.name(),
                def.states().len(),
                def.transitions().len()
            );
            Ok(())
        }
        Err(errors) => {
            println!(
                "invalid: state model {}",
                if record.id.is_empty() {
                    "(no name)"
                } else {
                    &record.id
                }
            );
            for e in errors {
                println!("  - {e}");
            }
            Err(CliError::Reported)
        }
    }
}

fn list(format: OutputFormat) {
    let defs = statemodel::builtins();
    match format {
        OutputFormat::Json => {
            let names: Vec<&str> = defs.iter().map(|d| d.name()).collect();
            println!("{}", serde_json::json!(names));
        }
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = defs
                .iter()
                .map(|d| {
                    vec![
                        d.name().to_string(),
                        d.initial_state().to_string(),
                        d.states()
                            .iter()
                            .map(|s| format!("{s}({})", d.upper_bound(s).as_helix()))
                            .collect::<Vec<_>>()
                            .join(" > "),
                    ]
                })
                .collect();
            print!(
                "{}",
                output::table(
                    &["NAME", "INITIAL", "STATES (BOUND), HIGHEST PRIORITY FIRST"],
                    &rows
                )
            );
        }
    }
}

fn show(name: &str, format: OutputFormat) -> Result<(), CliError> {
    let def = statemodel::builtin(name).ok_or_else(|| {
        CliError::usage(format!(
            "no built-in state model named '{name}' (built-ins: {})",
            statemodel::builtin_names().join(", ")
        ))
    })?;
    match format {
        OutputFormat::Json => println!("{}", def.to_record().to_helix_json()),
        OutputFormat::Table => {
            println!("{} (initial state {})", def.name(), def.initial_state());
            let rows: Vec<Vec<String>> = def
                .states()
                .iter()
                .enumerate()
                .map(|(i, s)| vec![i.to_string(), s.clone(), def.upper_bound(s).as_helix()])
                .collect();
            print!("{}", output::table(&["PRIORITY", "STATE", "BOUND"], &rows));
            println!();
            let rows: Vec<Vec<String>> = def
                .transitions()
                .iter()
                .enumerate()
                .map(|(i, t)| vec![i.to_string(), t.to_string()])
                .collect();
            print!("{}", output::table(&["PRIORITY", "TRANSITION"], &rows));
        }
    }
    Ok(())
}
