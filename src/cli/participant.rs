//! `strand participant run --cluster C --instance localhost_12913 [--state-model M]`: the
//! ready-made participant (Helix's mock participant). Accepts `start-helix-participant.sh`'s
//! options (`--zkSvr`, `--host`, `--port`, `--stateModelType`). Prints one JSON line per
//! transition step on stdout (`ts_us`, `instance`, `session`, `resource`, `partition`,
//! `from`, `to`, `phase`, `msg_id`, `epoch`). SIGTERM leaves gracefully.
//!
//! Messages of type `ECHO` are answered with `{"instance": NAME, "body": BODY}`
//! (`--reply-delay-ms N` delays each reply, for tests of timeouts).
//!
//! Test and demo flags: `--transition-delay-ms N`; `--fail PARTITION:FROM-TO` and
//! `--hang PARTITION:FROM-TO` (repeatable; `*` for any partition); `--zone Z`, `--tag T`
//! (used when the participant adds itself to a cluster that allows auto-join).

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::node_setup::{self, NodeSettings};
use super::process::{honour_exit_with_parent, init_logging};
use super::CliError;
use crate::authz::Role;
use crate::participant::{Cancellation, HandlerError, Participant, StateModelHandler, Transition};

/// Arguments of `strand participant`.
#[derive(Debug, clap::Args)]
pub struct ParticipantArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ParticipantCommand,
}

/// `strand participant …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ParticipantCommand {
    /// Run the ready-made participant until SIGTERM/SIGINT.
    Run(RunArgs),
}

/// `strand participant run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The cluster to join.
    #[arg(long)]
    pub cluster: String,
    /// The instance name (`localhost_12913`); or give Helix's `--host` and `--port`.
    #[arg(long)]
    pub instance: Option<String>,
    /// Helix's host part of the instance name.
    #[arg(long)]
    pub host: Option<String>,
    /// Helix's port part of the instance name (an identifier, not a port strand binds).
    #[arg(long)]
    pub port: Option<u16>,
    /// The state model this participant expects (informational; every model of the
    /// cluster is served, as Helix's participant does once a factory is registered).
    #[arg(long, alias = "stateModelType")]
    pub state_model: Option<String>,
    /// The UDP address to listen on (gossip and messages).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Every transition takes this long.
    #[arg(long, default_value_t = 0)]
    pub transition_delay_ms: u64,
    /// Fail this transition (PARTITION:FROM-TO, `*` for any partition); repeatable.
    #[arg(long, value_name = "PARTITION:FROM-TO")]
    pub fail: Vec<String>,
    /// Never finish this transition (PARTITION:FROM-TO); repeatable.
    #[arg(long, value_name = "PARTITION:FROM-TO")]
    pub hang: Vec<String>,
    /// Every ECHO reply takes this long.
    #[arg(long, default_value_t = 0)]
    pub reply_delay_ms: u64,
    /// How often the health report (transition latency and error rate) is written.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(10..))]
    pub health_interval_ms: u64,
    /// Fault zone, when joining by itself.
    #[arg(long)]
    pub zone: Option<String>,
    /// Instance tag, when joining by itself; repeatable.
    #[arg(long)]
    pub tag: Vec<String>,
    /// Settings.
    #[command(flatten)]
    pub node: NodeSettings,
    /// The HTTP API and dashboard.
    #[command(flatten)]
    pub http: super::http::HttpFlags,
}

/// `PARTITION:FROM-TO` → (partition, from, to).
fn parse_rule(flag: &str, text: &str) -> Result<(String, String, String), CliError> {
    let bad = || {
        CliError::usage(format!(
            "--{flag} {text:?}: expected PARTITION:FROM-TO, like myDB_0:OFFLINE-SLAVE"
        ))
    };
    let (partition, transition) = text.rsplit_once(':').ok_or_else(bad)?;
    let (from, to) = transition.split_once('-').ok_or_else(bad)?;
    if partition.is_empty() || from.is_empty() || to.is_empty() {
        return Err(bad());
    }
    Ok((partition.to_string(), from.to_string(), to.to_string()))
}

/// The ready-made handler: waits, fails or hangs as told.
#[derive(Debug, Default)]
pub struct ScriptedHandler {
    /// Every transition takes this long.
    pub delay: Duration,
    /// (partition or `*`, from, to) to fail.
    pub fail: HashSet<(String, String, String)>,
    /// (partition or `*`, from, to) to hang.
    pub hang: HashSet<(String, String, String)>,
}

impl ScriptedHandler {
    fn matches(set: &HashSet<(String, String, String)>, t: &Transition) -> bool {
        [t.partition.as_str(), "*"]
            .iter()
            .any(|p| set.contains(&(p.to_string(), t.from.clone(), t.to.clone())))
    }
}

impl StateModelHandler for ScriptedHandler {
    fn on_transition(
        &self,
        t: Transition,
        mut cancel: Cancellation,
    ) -> BoxFuture<'static, Result<(), HandlerError>> {
        let fail = Self::matches(&self.fail, &t);
        let hang = Self::matches(&self.hang, &t);
        let delay = self.delay;
        Box::pin(async move {
            if hang {
                cancel.cancelled().await;
                return Err(HandlerError::new("hung (--hang) and cancelled"));
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if fail {
                return Err(HandlerError::new(format!(
                    "injected failure (--fail {}:{}-{})",
                    t.partition, t.from, t.to
                )));
            }
            Ok(())
        })
    }
}

/// Answers `ECHO` messages with this instance's name and the body, after `delay`.
pub fn answer_echo(m: &crate::messaging::Messaging, delay: Duration) {
    let name = m.name().to_string();
    m.register_handler(
        "ECHO",
        None,
        crate::messaging::HandlerFn(move |msg: crate::messaging::AppMessage| {
            let name = name.clone();
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let body: serde_json::Value =
                    serde_json::from_str(&msg.body).map_err(|e| format!("the body is not JSON: {e}"))?;
                Ok(serde_json::json!({"instance": name, "body": body}))
            }
        }),
    );
}

/// Runs `strand participant`.
pub fn run(args: ParticipantArgs) -> Result<(), CliError> {
    match args.command {
        ParticipantCommand::Run(a) => run_participant(a),
    }
}

fn instance_name(args: &RunArgs) -> Result<String, CliError> {
    match (&args.instance, &args.host, args.port) {
        (Some(i), None, None) => Ok(i.clone()),
        (None, Some(h), Some(p)) => Ok(format!("{h}_{p}")),
        (None, None, None) => Err(CliError::usage(
            "give --instance NAME, or Helix's --host HOST --port PORT",
        )),
        (Some(_), _, _) => Err(CliError::usage(
            "give either --instance or --host/--port, not both",
        )),
        _ => Err(CliError::usage("--host and --port go together")),
    }
}

fn run_participant(args: RunArgs) -> Result<(), CliError> {
    honour_exit_with_parent();
    init_logging("warn");
    let instance = instance_name(&args)?;
    crate::transport::tls::validate_name(&instance).map_err(CliError::usage)?;
    let mut handler = ScriptedHandler {
        delay: Duration::from_millis(args.transition_delay_ms),
        ..Default::default()
    };
    for f in &args.fail {
        handler.fail.insert(parse_rule("fail", f)?);
    }
    for h in &args.hang {
        handler.hang.insert(parse_rule("hang", h)?);
    }
    let flags = args.node.flags();
    node_setup::runtime()?.block_on(async move {
        let transport = node_setup::endpoint(&flags, &instance, Role::Participant, args.listen)?;
        let store = node_setup::store_over(&flags, transport.clone())?;
        let mut builder = Participant::builder(&args.cluster, &instance)
            .store(store)
            .transport(transport)
            .handler(Arc::new(handler))
            .health_interval(Duration::from_millis(args.health_interval_ms));
        if let Some(z) = &args.zone {
            builder = builder.zone(z);
        }
        for t in &args.tag {
            builder = builder.tag(t);
        }
        let participant = builder.connect().await.map_err(CliError::failed)?;
        // The printer takes the events first: the first subscriber gets every event since the
        // session began, a later one only those from then on (the HTTP server's metrics).
        let mut events = participant.events();
        let observed = crate::http::Observed::participant(&participant);
        let http = args
            .http
            .start(
                &flags,
                &instance,
                Role::Participant,
                node_setup::store(&flags)?,
                observed,
            )
            .await?;
        answer_echo(
            participant.messaging(),
            Duration::from_millis(args.reply_delay_ms),
        );
        let printer = tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(e) => {
                        if let Ok(line) = serde_json::to_string(&e) {
                            let mut out = std::io::stdout().lock();
                            let _ = writeln!(out, "{line}");
                            let _ = out.flush();
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("missed {n} transition events");
                    }
                    Err(_) => return,
                }
            }
        });
        node_setup::terminated().await?;
        if let Some(h) = http {
            h.shutdown().await;
        }
        participant.shutdown().await;
        printer.abort();
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_bad_ones_are_usage_errors() {
        assert_eq!(
            parse_rule("fail", "myDB_0:OFFLINE-SLAVE").unwrap(),
            ("myDB_0".into(), "OFFLINE".into(), "SLAVE".into())
        );
        assert_eq!(parse_rule("fail", "*:SLAVE-MASTER").unwrap().0, "*");
        for bad in ["", "myDB_0", "myDB_0:OFFLINE", ":A-B", "p:-B", "p:A-"] {
            assert!(
                matches!(parse_rule("fail", bad), Err(CliError::Usage(_))),
                "{bad}"
            );
        }
    }
}
