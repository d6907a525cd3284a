//! `strand admin audit --cluster C`: who changed what and when — the administrative writes
//! (by admin and operator certificates) the store's replicas recorded, merged by time.

use crate::cli::output::{table, OutputFormat};
use crate::cli::store::connect;
use crate::cli::CliError;
use crate::settings::SettingsFlags;

/// `strand admin audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// The cluster.
    #[arg(long)]
    pub cluster: String,
    /// The most entries shown (the newest).
    #[arg(long, default_value_t = 100)]
    pub max: u32,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// TLS directory and store endpoints.
    #[command(flatten)]
    pub settings: SettingsFlags,
}

/// Prints the audit log of a cluster, oldest first.
pub async fn run(a: AuditArgs) -> Result<(), CliError> {
    let client = connect(&a.settings)?;
    let entries = client.audit(&a.cluster, a.max).await.map_err(CliError::failed)?;
    match a.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string(&entries).map_err(|e| CliError::failed(e.to_string()))?
        ),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    vec![
                        e.when_ms.to_string(),
                        format!("{} ({})", e.who, e.roles),
                        e.what.join("; "),
                        e.outcome.clone(),
                    ]
                })
                .collect();
            print!("{}", table(&["WHEN_MS", "WHO", "WHAT", "OUTCOME"], &rows));
        }
    }
    Ok(())
}
