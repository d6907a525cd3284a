//! What every `strand admin <noun> <verb>` shares: `-o table|json`, the store settings,
//! the admin client, error mapping and printing.

use serde_json::{json, Value};

use crate::admin::{Admin, AdminError};
use crate::cli::output::{table, OutputFormat};
use crate::cli::store::connect;
use crate::cli::CliError;
use crate::model::Record;
use crate::settings::SettingsFlags;

/// Output format and store settings, flattened into every admin command.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// TLS directory and store endpoints.
    #[command(flatten)]
    pub settings: SettingsFlags,
}

impl Common {
    /// The admin client of the store the settings name.
    pub fn admin(&self) -> Result<Admin, CliError> {
        Ok(Admin::new(connect(&self.settings)?))
    }

    /// Whether JSON is asked for.
    pub fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }

    /// Prints the outcome of a write: `text` for people, `value` for programs.
    pub fn done(&self, text: impl std::fmt::Display, value: Value) {
        if self.json() {
            println!("{value}");
        } else {
            println!("{text}");
        }
    }

    /// Prints a list of names under `title` (table) or as `{"<key>": [..]}` (JSON).
    pub fn names(&self, title: &str, key: &str, names: &[String]) {
        if self.json() {
            let mut obj = serde_json::Map::new();
            obj.insert(key.to_string(), json!(names));
            println!("{}", Value::Object(obj));
        } else {
            let rows: Vec<Vec<String>> = names.iter().map(|n| vec![n.clone()]).collect();
            print!("{}", table(&[title], &rows));
        }
    }

    /// Prints a record: Helix's JSON for people, the record as JSON for programs.
    pub fn record(&self, record: &Record) {
        if self.json() {
            println!("{}", record.to_value());
        } else {
            println!("{}", record.to_helix_json());
        }
    }
}

/// An admin error as a CLI error: bad arguments exit 2, the rest 1.
pub fn cli_error(e: AdminError) -> CliError {
    if e.is_usage() {
        CliError::usage(e)
    } else {
        CliError::failed(e)
    }
}

/// A record as JSON, or `null`.
pub fn record_value(record: Option<&Record>) -> Value {
    record.map_or(Value::Null, Record::to_value)
}

/// Reads a Helix JSON record from a file (`-` for standard input).
pub fn read_record(path: &std::path::Path) -> Result<Record, CliError> {
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| CliError::usage(format!("cannot read standard input: {e}")))?;
        s
    } else {
        crate::cli::read_file(path)?
    };
    Record::from_json(&text).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))
}

/// `yes`/`no`.
pub fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}
