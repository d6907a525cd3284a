//! `strand controller run --cluster C [--cluster C2 …] [--name N]`: a controller; several
//! may run, one leads each cluster. Accepts `run-helix-controller.sh`'s options
//! (`--zkSvr`, `--cluster`, `--controllerName`, `--mode`). Prints one JSON line each time
//! its role in a cluster changes: `{"cluster":…,"controller":…,"role":"leader","epoch":…}`.

use std::io::Write;
use std::net::SocketAddr;

use super::node_setup::{self, NodeSettings};
use super::process::{honour_exit_with_parent, init_logging};
use super::CliError;
use crate::controller::{Controller, Role};

/// Arguments of `strand controller`.
#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ControllerCommand,
}

/// `strand controller …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ControllerCommand {
    /// Run a controller until SIGTERM/SIGINT.
    Run(RunArgs),
}

/// `strand controller run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A cluster to control; repeatable.
    #[arg(long, required = true)]
    pub cluster: Vec<String>,
    /// The controller's name (its certificate's name); default `controller-<pid>`.
    #[arg(long, alias = "controllerName")]
    pub name: Option<String>,
    /// The UDP address to listen on (gossip and messages).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Helix's controller mode; strand runs every controller the same way (STANDALONE and
    /// DISTRIBUTED are accepted).
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,
    /// Settings.
    #[command(flatten)]
    pub node: NodeSettings,
    /// The HTTP API and dashboard.
    #[command(flatten)]
    pub http: super::http::HttpFlags,
}

/// Runs `strand controller`.
pub fn run(args: ControllerArgs) -> Result<(), CliError> {
    match args.command {
        ControllerCommand::Run(a) => run_controller(a),
    }
}

fn print(line: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn run_controller(args: RunArgs) -> Result<(), CliError> {
    honour_exit_with_parent();
    init_logging("warn");
    if let Some(m) = &args.mode {
        if !matches!(m.to_ascii_uppercase().as_str(), "STANDALONE" | "DISTRIBUTED") {
            return Err(CliError::usage(format!(
                "--mode {m:?}: expected STANDALONE or DISTRIBUTED"
            )));
        }
    }
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("controller-{}", std::process::id()));
    crate::transport::tls::validate_name(&name).map_err(CliError::usage)?;
    let flags = args.node.flags();
    node_setup::runtime()?.block_on(async move {
        let transport = node_setup::endpoint(&flags, &name, crate::authz::Role::Controller, args.listen)?;
        let store = node_setup::store_over(&flags, transport.clone())?;
        let mut builder = Controller::builder(&name).store(store).transport(transport);
        for c in &args.cluster {
            builder = builder.cluster(c);
        }
        let controller = builder.start().await.map_err(CliError::failed)?;
        let observed = crate::http::Observed::controller(&controller, &args.cluster);
        let http = args
            .http
            .start(
                &flags,
                &name,
                crate::authz::Role::Controller,
                node_setup::store(&flags)?,
                observed,
            )
            .await?;
        let mut watches = Vec::new();
        for c in &args.cluster {
            if let Some(mut rx) = controller.role(c) {
                let cluster = c.clone();
                let name = name.clone();
                watches.push(tokio::spawn(async move {
                    loop {
                        let role = *rx.borrow_and_update();
                        print(match role {
                            Role::Leader { epoch } => serde_json::json!({
                                "cluster": cluster, "controller": name, "role": "leader", "epoch": epoch,
                                "ts_us": crate::participant::now_us(),
                            }),
                            Role::Standby => serde_json::json!({
                                "cluster": cluster, "controller": name, "role": "standby",
                                "ts_us": crate::participant::now_us(),
                            }),
                        });
                        if rx.changed().await.is_err() {
                            return;
                        }
                    }
                }));
            }
        }
        node_setup::terminated().await?;
        for w in watches {
            w.abort();
        }
        if let Some(h) = http {
            h.shutdown().await;
        }
        controller.shutdown().await;
        Ok(())
    })
}
