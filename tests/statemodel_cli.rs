//! `strand statemodel …` as a user runs it: exit codes and messages.

use std::process::Command;

fn strand(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strand"))
        .args(args)
        .output()
        .expect("run strand");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write fixture");
    path.display().to_string()
}

#[test]
fn every_builtin_exports_a_record_that_validates() {
    let dir = tempfile::tempdir().unwrap();
    let (code, list, _) = strand(&["statemodel", "list", "-o", "json"]);
    assert_eq!(code, 0);
    let names: Vec<String> = serde_json::from_str(&list).unwrap();
    assert_eq!(names.len(), 5);
    for name in names {
        let (code, json, err) = strand(&["statemodel", "show", &name, "-o", "json"]);
        assert_eq!(code, 0, "{err}");
        let file = write(&dir, &format!("{name}.json"), &json);
        let (code, out, _) = strand(&["statemodel", "validate", &file]);
        assert_eq!(code, 0, "{out}");
        assert!(out.starts_with("valid"), "{out}");
    }
}

#[test]
fn an_invalid_record_lists_every_broken_rule_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "bad.json",
        r#"{"id": "Broken",
            "simpleFields": {"INITIAL_STATE": "OFFLINE"},
            "listFields": {"STATE_PRIORITY_LIST": ["ONLINE", "OFFLINE", "LIMBO"],
                           "STATE_TRANSITION_PRIORITYLIST": ["OFFLINE-ONLINE", "ONLINE-OFFLINE"]},
            "mapFields": {"ONLINE.meta": {"count": "lots"}}}"#,
    );
    let (code, out, _) = strand(&["statemodel", "validate", &file]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("invalid"), "{out}");
    assert!(out.contains("the states do not include DROPPED"), "{out}");
    assert!(out.contains("upper bound 'lots'"), "{out}");
    assert!(
        out.contains("LIMBO cannot be reached from the initial state"),
        "{out}"
    );
}

#[test]
fn unreadable_or_malformed_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = strand(&["statemodel", "validate", "/no/such/file.json"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read /no/such/file.json"), "{err}");
    let file = write(&dir, "trunc.json", "{\"id\": ");
    let (code, _, err) = strand(&["statemodel", "validate", &file]);
    assert_eq!(code, 1);
    assert!(err.contains("not a valid record"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let (code, _, err) = strand(&["statemodel", "show", "Nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("no built-in state model named 'Nope'"), "{err}");
}
