//! `strand admin send --cluster C --criteria '…' --type T [--body JSON] [--wait]
//! [--timeout 500ms] [--persistent] [-o json]`: sends a criteria-addressed message from the
//! CLI's client endpoint and prints each reply as it arrives, then a summary. Exits 1 when
//! any recipient failed or timed out. Only parsing and printing here: [`crate::messaging`]
//! does the rest.

use std::time::Duration;

use serde_json::json;

use super::common::Common;
use crate::cli::store::client_endpoint;
use crate::cli::CliError;
use crate::messaging::{Criteria, Messaging, Outgoing, Reply};
use crate::propertystore::{PropertyStore, StoreClientConfig};

/// `strand admin send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The cluster.
    #[arg(long)]
    pub cluster: String,
    /// Helix's criteria: `instanceName=%,resource=TestDB,partition=TestDB_15,partitionState=SLAVE`.
    #[arg(long)]
    pub criteria: String,
    /// The message type (`MSG_TYPE`), e.g. ECHO.
    #[arg(long = "type")]
    pub msg_type: String,
    /// The message subtype (`MSG_SUBTYPE`).
    #[arg(long)]
    pub subtype: Option<String>,
    /// The body, as JSON.
    #[arg(long, default_value = "null")]
    pub body: String,
    /// Wait for every recipient's reply (else: for every recipient to accept it).
    #[arg(long)]
    pub wait: bool,
    /// How long to wait: `500ms`, `2s`, or milliseconds.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Keep the message in each recipient's MESSAGES folder until handled (reaches
    /// recipients that are down now when they come back).
    #[arg(long)]
    pub persistent: bool,
    /// Output format and store settings.
    #[command(flatten)]
    pub common: Common,
}

/// The longest `--timeout`: a day.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// `500ms`, `2s`, `1m` or a number of milliseconds, at most [`MAX_TIMEOUT`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "ms"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?}: expected a duration like 500ms, 2s or 1m"))?;
    let d = match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        _ => return Err(format!("{text:?}: unit must be ms, s or m")),
    };
    d.filter(|d| *d <= MAX_TIMEOUT)
        .ok_or_else(|| format!("{text:?}: at most a day (1440m)"))
}

fn print_reply(json_out: bool, r: &Reply) {
    if json_out {
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap_or(json!(r.body));
        println!(
            "{}",
            json!({"reply": {"from": r.from, "instance": r.instance, "body": body}})
        );
    } else {
        println!("reply from {}: {}", r.from, r.body);
    }
}

/// Runs `strand admin send`.
pub async fn run(args: SendArgs) -> Result<(), CliError> {
    let mut criteria = Criteria::parse(&args.criteria).map_err(CliError::usage)?;
    criteria.cluster.get_or_insert_with(|| args.cluster.clone());
    let body: serde_json::Value =
        serde_json::from_str(&args.body).map_err(|e| CliError::usage(format!("--body is not JSON: {e}")))?;
    let mut out = Outgoing::new(&args.msg_type).body(body);
    if let Some(s) = &args.subtype {
        out = out.subtype(s);
    }
    if args.persistent {
        out = out.persistent();
    }
    let (transport, eps) = client_endpoint(&args.common.settings)?;
    let store = PropertyStore::new(transport.clone(), StoreClientConfig::new(eps));
    let messaging = Messaging::builder(crate::cli::store::CLIENT_NAME, &args.cluster, transport, store)
        .build()
        .map_err(CliError::failed)?;
    let json_out = args.common.json();
    let result = if args.wait {
        let progress = crate::cli::progress::Progress::start("waiting for replies");
        let r = messaging
            .send_and_wait_with(&criteria, out, args.timeout, &mut |r| {
                crate::cli::progress::clear_line();
                print_reply(json_out, r)
            })
            .await;
        progress.finish();
        r
    } else {
        messaging.send(&criteria, out).await
    }
    .map_err(|e| match e {
        crate::messaging::MessagingError::BadCriteria { .. }
        | crate::messaging::MessagingError::BadMessage { .. } => CliError::usage(e),
        e => CliError::failed(e),
    })?;
    if json_out {
        println!("{}", json!({"summary": result}));
    } else {
        if !args.wait {
            for r in &result.replies {
                println!("accepted by {}", r.from);
            }
        }
        for f in &result.failed {
            println!("failed: {}: {}", f.from, f.reason);
        }
        for t in &result.timed_out {
            println!("timed out: {t}");
        }
        for q in &result.queued {
            println!("queued (down; persistent copy kept): {q}");
        }
        println!(
            "{} recipients: {} answered, {} failed, {} timed out, {} queued",
            result.recipients,
            result.replies.len(),
            result.failed.len(),
            result.timed_out.len(),
            result.queued.len()
        );
    }
    if result.all_answered() {
        Ok(())
    } else {
        Err(CliError::failed(format!(
            "{} failed, {} timed out",
            result.failed.len(),
            result.timed_out.len()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_bad_ones_say_why() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("250").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3h").unwrap_err().contains("unit"));
        assert_eq!(parse_duration("1440m").unwrap(), MAX_TIMEOUT);
    }

    /// Found by `tests/fuzz/cli.rs`: `--timeout 999999999999999999m` overflowed the
    /// multiplication into minutes (a panic in debug builds, a wrapped duration in release),
    /// and `--timeout 18446744073709551615ms` made the send's deadline overflow the clock.
    #[test]
    fn a_duration_too_long_for_the_clock_is_an_error_not_a_panic() {
        for text in [
            "999999999999999999m",
            "18446744073709551615ms",
            "18446744073709551615s",
            "1441m",
        ] {
            let e = parse_duration(text).unwrap_err();
            assert!(e.contains("at most a day"), "{text}: {e}");
        }
    }
}
