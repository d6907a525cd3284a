//! The operator comforts of the command line, through the real binary: shell completions
//! and `--log-format json`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn strand(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_strand"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn completions_for_each_shell_name_the_real_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = strand(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(!script.trim().is_empty(), "{shell}: an empty script");
        for sub in [
            "helix-admin",
            "participant",
            "controller",
            "completions",
            "statemodel",
        ] {
            assert!(script.contains(sub), "{shell}: no {sub} in\n{script}");
        }
        // Nested commands and global flags are completed too.
        assert!(script.contains("propertystore"), "{shell}");
        assert!(script.contains("log-format"), "{shell}");
    }
    let bash = String::from_utf8(strand(&["completions", "bash"]).stdout).unwrap();
    assert!(bash.contains("complete -F"), "a bash completion function");
    let fish = String::from_utf8(strand(&["completions", "fish"]).stdout).unwrap();
    assert!(fish.contains("complete -c strand"), "fish completions for strand");
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = strand(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("tcsh") && err.contains("bash"), "{err}");
}

#[test]
fn log_format_json_makes_every_stderr_line_a_json_object() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_strand"))
        .args([
            "--log-format",
            "json",
            "store",
            "run",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .env("STRAND_TLS_DIR", dir.path().join("tls"))
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("RUST_LOG", "info")
        .env_remove("STRAND_LOG")
        .env_remove("STRAND_CONFIG")
        .env("STRAND_EXIT_WITH_PARENT", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The replica logs its start-up (openraft, the elector) at info; read on a thread so a
    // quiet replica cannot hang the test.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait = Duration::from_secs(30);
    while seen.len() < 3 {
        match rx.recv_timeout(wait) {
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
        wait = Duration::from_secs(2);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(!seen.is_empty(), "the replica logged nothing");
    let mut messages = 0;
    for line in &seen {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for field in ["timestamp", "level", "target"] {
            assert!(v[field].is_string(), "no {field}: {line}");
        }
        messages += usize::from(v["message"].is_string());
    }
    assert!(messages > 0, "no line with a message: {seen:?}");
}
