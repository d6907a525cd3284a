//! `strand store run|status` and `strand admin ls|get|put|rm|watch` as a user runs them.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

struct DevStore {
    child: Child,
    addr: String,
    home: tempfile::TempDir,
}

impl Drop for DevStore {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env(cmd: &mut Command, home: &std::path::Path) {
    cmd.env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("STRAND_TLS_DIR")
        .env_remove("STRAND_STORE")
        .env_remove("STRAND_CONFIG")
        .env("STRAND_EXIT_WITH_PARENT", "1");
}

/// `strand store run` with only a port: the development store in its default places.
fn dev_store() -> DevStore {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strand"));
    cmd.args(["store", "run", "--listen", "127.0.0.1:0"]);
    env(&mut cmd, home.path());
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("store replica 1 listening on "), "{line:?}");
    let addr = line.split_whitespace().nth(5).unwrap().to_string();
    assert!(home.path().join("data/strand/store").is_dir(), "default data dir");
    assert!(
        home.path().join("data/strand/tls/ca.pem").is_file(),
        "default TLS dir with a dev CA"
    );
    DevStore { child, addr, home }
}

impl DevStore {
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strand"));
        cmd.args(args).args(["--store", &self.addr]);
        env(&mut cmd, self.home.path());
        cmd.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str], code: i32, needle: &str) {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn dev_store_and_admin_commands() {
    let store = dev_store();
    let out = store.ok(&[
        "admin",
        "put",
        "/MYCLUSTER/IDEALSTATES/myDB",
        "{\"id\":\"myDB\"}",
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["version"], 1);
    store.ok(&["admin", "put", "/MYCLUSTER/CONFIGS/c", "x", "--create"]);
    let out = store.ok(&["admin", "ls", "/MYCLUSTER", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["children"], serde_json::json!(["CONFIGS", "IDEALSTATES"]));
    let out = store.ok(&["admin", "get", "/MYCLUSTER/IDEALSTATES/myDB", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["value"], "{\"id\":\"myDB\"}");
    assert_eq!(v["version"], 1);
    let rev = v["mod_revision"].as_u64().unwrap();

    // watch from a revision streams JSON lines.
    let from = rev.to_string();
    let out = store.ok(&["admin", "watch", "/MYCLUSTER", "--from", &from, "--count", "2"]);
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["type"], "put");
    assert_eq!(lines[0]["path"], "/MYCLUSTER/IDEALSTATES/myDB");
    assert!(lines[1]["revision"].as_u64().unwrap() > rev);

    let out = store.ok(&["store", "status", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["replicas"][0]["role"], "leader");
    assert_eq!(v["replicas"][0]["id"], 1);
    let table = store.ok(&["store", "status"]);
    assert!(table.starts_with("ID"), "{table}");

    // Bad input: each a clear error, usage errors exit 2, failures 1.
    store.fails(&["admin", "put", "/a/", "x"], 2, "invalid path");
    store.fails(&["admin", "get", "relative"], 2, "invalid path");
    store.fails(
        &[
            "admin",
            "put",
            "/MYCLUSTER/CONFIGS/c",
            "y",
            "--expected-version",
            "9",
        ],
        1,
        "expected 9",
    );
    store.fails(
        &["admin", "put", "/MYCLUSTER/CONFIGS/c", "y", "--create"],
        1,
        "already exists",
    );
    store.fails(&["admin", "get", "/MYCLUSTER/nope"], 1, "no such key");
    store.fails(&["admin", "rm", "/MYCLUSTER"], 1, "has children");
    let out = store.ok(&["admin", "rm", "-r", "/MYCLUSTER", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["deleted"], 2);

    // An oversized value through standard input.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strand"));
    cmd.args(["admin", "put", "/big", "-", "--store", &store.addr]);
    env(&mut cmd, store.home.path());
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(&vec![b'x'; (1 << 20) + 1]);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exceeds the limit"));
}

#[test]
fn store_run_rejects_bad_flags() {
    let home = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (vec!["store", "run", "--id", "0"], "positive"),
        (
            vec!["store", "run", "--peers", "1@127.0.0.1:1"],
            "--id is required",
        ),
        (
            vec!["store", "run", "--id", "2", "--peers", "1@127.0.0.1:1"],
            "does not list",
        ),
        (
            vec!["store", "run", "--id", "1", "--peers", "1@nowhere"],
            "not an address",
        ),
        (
            vec!["store", "run", "--disk-stall-ms", "0"],
            "--disk-stall-ms must be at least 1",
        ),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strand"));
        cmd.args(&args);
        env(&mut cmd, home.path());
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
