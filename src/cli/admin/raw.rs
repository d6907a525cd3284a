//! `strand admin ls|get|put|rm|watch PATH`: raw property store access, like zkCli or
//! etcdctl. Reads are linearizable; `-o json` prints one JSON document (`watch` prints one
//! JSON line per event, as it happens).

use std::io::Read;

use crate::cli::output::{table, OutputFormat};
use crate::cli::store::connect;
use crate::cli::CliError;
use crate::propertystore::{ClientError, Event, EventKind, Record, StoreError};
use crate::settings::SettingsFlags;

/// A read of one path.
#[derive(Debug, clap::Args)]
pub struct PathArgs {
    /// The path, like /MYCLUSTER/IDEALSTATES/myDB.
    pub path: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// TLS directory and store endpoints.
    #[command(flatten)]
    pub settings: SettingsFlags,
}

/// `strand admin put`.
#[derive(Debug, clap::Args)]
pub struct PutArgs {
    /// The key.
    pub path: String,
    /// The value; `-` reads it from standard input.
    pub value: String,
    /// Fail if the key exists.
    #[arg(long)]
    pub create: bool,
    /// Only if the key is at this version (0: only if absent).
    #[arg(long, value_name = "VERSION")]
    pub expected_version: Option<u64>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// TLS directory and store endpoints.
    #[command(flatten)]
    pub settings: SettingsFlags,
}

/// `strand admin rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// The key.
    pub path: String,
    /// Also everything under it.
    #[arg(short, long)]
    pub recursive: bool,
    /// Only if the key is at this version.
    #[arg(long, value_name = "VERSION")]
    pub expected_version: Option<u64>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// TLS directory and store endpoints.
    #[command(flatten)]
    pub settings: SettingsFlags,
}

/// `strand admin watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The path prefix to watch (`/` for everything).
    pub path: String,
    /// Start at this revision (default: changes from now on).
    #[arg(long, value_name = "REVISION")]
    pub from: Option<u64>,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// Output format (events are always one JSON object per line).
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Json)]
    pub output: OutputFormat,
    /// TLS directory and store endpoints.
    #[command(flatten)]
    pub settings: SettingsFlags,
}

/// A client error as a CLI error: bad input is a usage error (exit 2), the rest failures.
fn cli_error(e: ClientError) -> CliError {
    match &e {
        ClientError::Store(
            StoreError::InvalidPath { .. }
            | StoreError::ValueTooLarge { .. }
            | StoreError::TxnTooLarge { .. },
        ) => CliError::usage(e),
        _ => CliError::failed(e),
    }
}

fn check_path(path: &str) -> Result<(), CliError> {
    crate::propertystore::core::validate_path(path).map_err(CliError::usage)
}

fn value_json(value: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(value) {
        Ok(s) => serde_json::Value::String(s.to_string()),
        Err(_) => serde_json::json!({ "hex": value.iter().map(|b| format!("{b:02x}")).collect::<String>() }),
    }
}

fn record_json(path: &str, r: &Record) -> serde_json::Value {
    serde_json::json!({
        "path": path,
        "value": value_json(&r.value),
        "version": r.stat.version,
        "create_revision": r.stat.create_revision,
        "mod_revision": r.stat.mod_revision,
    })
}

/// An event as one JSON object.
pub fn event_json(e: &Event) -> serde_json::Value {
    match &e.kind {
        EventKind::Put { value, stat } => serde_json::json!({
            "revision": e.revision,
            "type": "put",
            "path": e.path,
            "value": value_json(value),
            "version": stat.version,
            "create_revision": stat.create_revision,
            "mod_revision": stat.mod_revision,
        }),
        EventKind::Delete => serde_json::json!({
            "revision": e.revision,
            "type": "delete",
            "path": e.path,
        }),
    }
}

pub(super) async fn ls(a: PathArgs) -> Result<(), CliError> {
    check_path(&a.path)?;
    let client = connect(&a.settings)?;
    let names = client.children(&a.path).await.map_err(cli_error)?;
    match a.output {
        OutputFormat::Json => println!("{}", serde_json::json!({ "path": a.path, "children": names })),
        OutputFormat::Table => {
            for n in names {
                println!("{n}");
            }
        }
    }
    Ok(())
}

pub(super) async fn get(a: PathArgs) -> Result<(), CliError> {
    check_path(&a.path)?;
    let client = connect(&a.settings)?;
    let record = client.get(&a.path).await.map_err(cli_error)?;
    let Some(r) = record else {
        return Err(CliError::failed(StoreError::NotFound { path: a.path }));
    };
    match a.output {
        OutputFormat::Json => println!("{}", record_json(&a.path, &r)),
        OutputFormat::Table => {
            println!("{}", String::from_utf8_lossy(&r.value));
            eprint!(
                "{}",
                table(
                    &["VERSION", "CREATE REVISION", "MOD REVISION"],
                    &[vec![
                        r.stat.version.to_string(),
                        r.stat.create_revision.to_string(),
                        r.stat.mod_revision.to_string()
                    ]]
                )
            );
        }
    }
    Ok(())
}

pub(super) async fn put(a: PutArgs) -> Result<(), CliError> {
    check_path(&a.path)?;
    let value = if a.value == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| CliError::usage(format!("cannot read the value from standard input: {e}")))?;
        buf
    } else {
        a.value.into_bytes()
    };
    if value.len() > crate::propertystore::core::MAX_VALUE_LEN {
        return Err(CliError::usage(StoreError::ValueTooLarge {
            path: a.path,
            size: value.len(),
            max: crate::propertystore::core::MAX_VALUE_LEN,
        }));
    }
    let client = connect(&a.settings)?;
    let stat = if a.create {
        client.create(&a.path, &value).await
    } else {
        client.set(&a.path, &value, a.expected_version).await
    }
    .map_err(cli_error)?;
    match a.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::json!({"path": a.path, "version": stat.version, "create_revision": stat.create_revision, "mod_revision": stat.mod_revision})
        ),
        OutputFormat::Table => println!(
            "{} version {} at revision {}",
            a.path, stat.version, stat.mod_revision
        ),
    }
    Ok(())
}

pub(super) async fn rm(a: RmArgs) -> Result<(), CliError> {
    check_path(&a.path)?;
    let client = connect(&a.settings)?;
    let count = client
        .delete(&a.path, a.expected_version, a.recursive)
        .await
        .map_err(cli_error)?;
    match a.output {
        OutputFormat::Json => println!("{}", serde_json::json!({"path": a.path, "deleted": count})),
        OutputFormat::Table => println!("deleted {count} key(s)"),
    }
    Ok(())
}

pub(super) async fn watch(a: WatchArgs) -> Result<(), CliError> {
    check_path(&a.path)?;
    let client = connect(&a.settings)?;
    let mut watcher = client.watch(&a.path, a.from.unwrap_or(0));
    let mut seen = 0u64;
    loop {
        let events = watcher.next_batch().await.map_err(cli_error)?;
        for e in &events {
            match a.output {
                OutputFormat::Json => println!("{}", event_json(e)),
                OutputFormat::Table => match &e.kind {
                    EventKind::Put { value, .. } => {
                        println!("{} PUT {} {}", e.revision, e.path, String::from_utf8_lossy(value))
                    }
                    EventKind::Delete => println!("{} DELETE {}", e.revision, e.path),
                },
            }
            seen += 1;
            if a.count.is_some_and(|c| seen >= c) {
                return Ok(());
            }
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}
