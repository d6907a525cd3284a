//! The audit log of administrative writes: every write, compaction and replica change that a
//! caller holding the admin or operator role made through the STORE service is recorded by
//! the replica that handled it (the leader then) as one JSON line — who, with which roles,
//! what, when, and how it ended — in `<data dir>/audit.jsonl`. The file is bounded: past
//! [`AUDIT_MAX_BYTES`] it becomes `audit.jsonl.1` (replacing the previous one) and a new one
//! starts. `strand admin audit --cluster C` asks every replica for its entries and merges
//! them by time (a write is recorded once, by the leader that answered it).
//!
//! ```text
//!   handle(request from Peer{name, roles}) ─► answer ─► entry(…) (pure) ─► AuditLog::append
//!   StoreRequest::Audit{cluster, max} ─► AuditLog::read ─► StoreResponse::Audit(entries)
//! ```

use std::fs;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::core::{Command, Op};
use super::protocol::{StoreRequest, StoreResponse};
use crate::authz::{self, RoleSet};

/// The file's size beyond which it is rotated.
pub const AUDIT_MAX_BYTES: u64 = 8 * 1024 * 1024;
/// The most operations one entry lists (a larger transaction ends with "… and N more").
pub const AUDIT_MAX_OPS: usize = 16;
/// The longest path an entry spells out (longer ones are cut, ending with "…").
pub const AUDIT_MAX_PATH: usize = 256;

/// One administrative write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When the replica answered, in milliseconds since the epoch.
    pub when_ms: u64,
    /// The name in the caller's certificate.
    pub who: String,
    /// The caller's roles.
    pub roles: String,
    /// The clusters the write touched (the first segment of each path); empty for store-wide
    /// operations (compaction, replica changes).
    pub clusters: Vec<String>,
    /// What it did, one item per operation (`set /C/…`, `delete /C/… recursively`, …).
    pub what: Vec<String>,
    /// How it ended: `revision N`, `failed: …`, `outcome unknown: …`.
    pub outcome: String,
}

impl AuditEntry {
    /// Whether the entry concerns `cluster` (store-wide entries concern every cluster).
    pub fn concerns(&self, cluster: &str) -> bool {
        self.clusters.is_empty() || self.clusters.iter().any(|c| c == cluster)
    }
}

fn describe_op(op: &Op) -> (String, &str) {
    match op {
        Op::Create { path, .. } => (format!("create {}", shown(path)), path),
        Op::Set { path, .. } => (format!("set {}", shown(path)), path),
        Op::Delete {
            path,
            recursive: true,
            ..
        } => (format!("delete {} recursively", shown(path)), path),
        Op::Delete { path, .. } => (format!("delete {}", shown(path)), path),
    }
}

fn shown(path: &str) -> String {
    match path.char_indices().nth(AUDIT_MAX_PATH) {
        Some((cut, _)) => format!("{}…", &path[..cut]),
        None => path.to_string(),
    }
}

fn describe_command(cmd: &Command, what: &mut Vec<String>, clusters: &mut Vec<String>) {
    match cmd {
        Command::Compact { below } => what.push(format!("compact below revision {below}")),
        Command::Txn(t) => {
            let guarded = !t.conditions.is_empty();
            let total = t.success.len() + t.failure.len();
            for (branch, ops) in [("", &t.success), ("else ", &t.failure)] {
                for op in ops {
                    let (text, path) = describe_op(op);
                    if what.len() < AUDIT_MAX_OPS {
                        what.push(if guarded { format!("{branch}{text}") } else { text });
                    } else if what.len() == AUDIT_MAX_OPS {
                        what.push(format!("… and {} more", total - AUDIT_MAX_OPS));
                    }
                    if let Some(c) = path
                        .trim_start_matches('/')
                        .split('/')
                        .next()
                        .filter(|c| !c.is_empty())
                    {
                        if !clusters.iter().any(|k| k == c) {
                            clusters.push(c.to_string());
                        }
                    }
                }
            }
        }
    }
}

fn outcome(resp: &StoreResponse) -> Option<String> {
    Some(match resp {
        StoreResponse::Written(w) if w.succeeded => format!("revision {}", w.revision),
        StoreResponse::Written(w) => format!("revision {} (conditions failed)", w.revision),
        StoreResponse::Error(e) => format!("failed: {e}"),
        StoreResponse::OutcomeUnknown { reason } => format!("outcome unknown: {reason}"),
        StoreResponse::MembershipChanged { voters } => format!("voters now {voters:?}"),
        // Nothing was done: not the leader, unavailable, refused.
        _ => return None,
    })
}

/// The entries `req` from a caller named `who` with `roles`, answered with `resp`, adds to the
/// log: none unless the caller administers (admin, operator) and the request changed or may
/// have changed something.
pub fn entries(
    who: &str,
    roles: RoleSet,
    req: &StoreRequest,
    resp: &StoreResponse,
    when_ms: u64,
) -> Vec<AuditEntry> {
    if !authz::administers(roles) {
        return Vec::new();
    }
    let entry = |what: Vec<String>, clusters: Vec<String>, resp: &StoreResponse| {
        outcome(resp).map(|outcome| AuditEntry {
            when_ms,
            who: who.to_string(),
            roles: roles.to_string(),
            clusters,
            what,
            outcome,
        })
    };
    let single = |cmd: &Command, resp: &StoreResponse| {
        let (mut what, mut clusters) = (Vec::new(), Vec::new());
        describe_command(cmd, &mut what, &mut clusters);
        entry(what, clusters, resp)
    };
    match (req, resp) {
        (StoreRequest::Write(cmd), resp) => single(cmd, resp).into_iter().collect(),
        (StoreRequest::Writes(cmds), StoreResponse::Many(answers)) => cmds
            .iter()
            .zip(answers)
            .filter_map(|(cmd, resp)| single(cmd, resp))
            .collect(),
        (StoreRequest::AddReplica { id, addr }, resp) => {
            entry(vec![format!("add replica {id} at {addr}")], Vec::new(), resp)
                .into_iter()
                .collect()
        }
        (StoreRequest::RemoveReplica { id }, resp) => {
            entry(vec![format!("remove replica {id}")], Vec::new(), resp)
                .into_iter()
                .collect()
        }
        _ => Vec::new(),
    }
}

/// A replica's audit file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
    /// Held while the files are written or read.
    files: Mutex<()>,
    /// Entries recorded and not yet written (reads include them).
    pending: Mutex<Vec<AuditEntry>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AuditLog {
    /// The log in `data_dir` (`audit.jsonl`), rotated past `max_bytes`.
    pub fn new(data_dir: &Path, max_bytes: u64) -> AuditLog {
        AuditLog {
            path: data_dir.join("audit.jsonl"),
            max_bytes,
            files: Mutex::new(()),
            pending: Mutex::new(Vec::new()),
        }
    }

    fn rotated(&self) -> PathBuf {
        self.path.with_extension("jsonl.1")
    }

    /// Records `entries` at once (in memory; cheap): reads see them from now on, and
    /// [`AuditLog::flush`] writes them. Returns whether a flush must be scheduled: nothing
    /// was pending before, so no flush scheduled earlier will take these (one that is
    /// scheduled and has not run yet takes everything pending when it runs).
    pub fn record(&self, entries: Vec<AuditEntry>) -> bool {
        let mut pending = lock(&self.pending);
        let was_empty = pending.is_empty();
        pending.extend(entries);
        was_empty && !pending.is_empty()
    }

    /// Writes the recorded entries to the file (blocking I/O); a failure is logged, never
    /// fatal to the writes it records.
    pub fn flush(&self) {
        let _files = lock(&self.files);
        let entries = std::mem::take(&mut *lock(&self.pending));
        if entries.is_empty() {
            return;
        }
        let result = (|| -> std::io::Result<()> {
            if fs::metadata(&self.path).is_ok_and(|m| m.len() >= self.max_bytes) {
                fs::rename(&self.path, self.rotated())?;
            }
            let mut f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            let mut text = String::new();
            for e in &entries {
                text.push_str(&serde_json::to_string(e).map_err(std::io::Error::other)?);
                text.push('\n');
            }
            f.write_all(text.as_bytes())
        })();
        if let Err(e) = result {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the audit log");
        }
    }

    /// Records and writes `entries` (see [`AuditLog::record`], [`AuditLog::flush`]).
    pub fn append(&self, entries: Vec<AuditEntry>) {
        if self.record(entries) {
            self.flush();
        }
    }

    /// The last `max` entries concerning `cluster`, oldest first (unreadable lines skipped),
    /// those not written yet included.
    pub fn read(&self, cluster: &str, max: usize) -> Vec<AuditEntry> {
        let _files = lock(&self.files);
        let mut out = Vec::new();
        for path in [self.rotated(), self.path.clone()] {
            let Ok(f) = fs::File::open(&path) else { continue };
            for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
                if let Ok(e) = serde_json::from_str::<AuditEntry>(&line) {
                    if e.concerns(cluster) {
                        out.push(e);
                    }
                }
            }
        }
        out.extend(
            lock(&self.pending)
                .iter()
                .filter(|e| e.concerns(cluster))
                .cloned(),
        );
        let skip = out.len().saturating_sub(max);
        out.split_off(skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::Role;
    use crate::propertystore::core::{Txn, Written};

    fn set(path: &str) -> Command {
        Command::Txn(Txn::single(Op::Set {
            path: path.into(),
            value: Vec::new(),
            expected_version: None,
        }))
    }

    fn written(revision: u64) -> StoreResponse {
        StoreResponse::Written(Written {
            revision,
            succeeded: true,
            ops: Vec::new(),
        })
    }

    #[test]
    fn administrative_writes_are_recorded_and_nothing_else() {
        let admin = RoleSet::of(Role::Operator);
        let req = StoreRequest::Write(set("/C/IDEALSTATES/db"));
        let e = entries("ops", admin, &req, &written(7), 42);
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].who.as_str(), e[0].roles.as_str(), e[0].when_ms),
            ("ops", "operator", 42)
        );
        assert_eq!(e[0].what, vec!["set /C/IDEALSTATES/db".to_string()]);
        assert_eq!(e[0].clusters, vec!["C".to_string()]);
        assert_eq!(e[0].outcome, "revision 7");
        // A participant's write, a read, a write that was not done: nothing.
        assert!(entries("p1", RoleSet::of(Role::Participant), &req, &written(7), 1).is_empty());
        assert!(entries("ops", admin, &StoreRequest::Status, &written(7), 1).is_empty());
        let not_leader = StoreResponse::NotLeader { leader: None };
        assert!(entries("ops", admin, &req, &not_leader, 1).is_empty());
        // Store-wide operations concern every cluster.
        let rm = entries(
            "root",
            RoleSet::of(Role::Admin),
            &StoreRequest::RemoveReplica { id: 3 },
            &StoreResponse::MembershipChanged { voters: vec![1, 2] },
            5,
        );
        assert_eq!(rm[0].what, vec!["remove replica 3".to_string()]);
        assert!(rm[0].concerns("anything"));
        // A large transaction is listed in part; long paths are cut.
        let ops: Vec<Op> = (0..40)
            .map(|i| Op::Set {
                path: format!("/C/{}{i}", "x".repeat(400)),
                value: Vec::new(),
                expected_version: None,
            })
            .collect();
        let big = StoreRequest::Write(Command::Txn(Txn {
            conditions: Vec::new(),
            success: ops,
            failure: Vec::new(),
        }));
        let e = entries("ops", admin, &big, &written(3), 1);
        assert_eq!(e[0].what.len(), AUDIT_MAX_OPS + 1);
        assert_eq!(
            e[0].what.last().unwrap(),
            &format!("… and {} more", 40 - AUDIT_MAX_OPS)
        );
        assert!(e[0].what[0].len() < AUDIT_MAX_PATH + 16 && e[0].what[0].ends_with('…'));
        assert_eq!(e[0].clusters, vec!["C".to_string()]);
        // A batch: one entry per write that was done.
        let batch = StoreRequest::Writes(vec![set("/C/a"), set("/D/b")]);
        let answers = StoreResponse::Many(vec![written(8), not_leader]);
        let e = entries("ops", admin, &batch, &answers, 9);
        assert_eq!(e.len(), 1);
        assert!(e[0].concerns("C") && !e[0].concerns("D"));
    }

    #[test]
    fn the_file_is_bounded_and_read_back_by_cluster() {
        let tmp = tempfile::tempdir().unwrap();
        let log = AuditLog::new(tmp.path(), 600);
        for i in 0..20u64 {
            let req = StoreRequest::Write(set(if i % 2 == 0 { "/C/x" } else { "/D/x" }));
            log.append(entries("ops", RoleSet::of(Role::Admin), &req, &written(i), i));
        }
        let c = log.read("C", 1000);
        assert!(!c.is_empty() && c.iter().all(|e| e.concerns("C")));
        assert!(c.windows(2).all(|w| w[0].when_ms < w[1].when_ms), "oldest first");
        assert_eq!(c.last().unwrap().when_ms, 18, "the newest is kept");
        assert!(c.len() < 10, "older entries were rotated away: {}", c.len());
        let total: u64 = ["audit.jsonl", "audit.jsonl.1"]
            .iter()
            .map(|f| fs::metadata(tmp.path().join(f)).map_or(0, |m| m.len()))
            .sum();
        assert!(total <= 2 * 600 + 400, "{total}");
        assert_eq!(log.read("C", 2).len(), 2);
        // Recorded and not written yet: read all the same, and written by the next flush.
        let y = |t| {
            entries(
                "ops",
                RoleSet::of(Role::Admin),
                &StoreRequest::Write(set("/C/y")),
                &written(t),
                t,
            )
        };
        assert!(log.record(y(99)), "nothing was pending: flush");
        assert!(!log.record(y(100)), "a flush is already due");
        assert_eq!(log.read("C", 2)[0].when_ms, 99);
        log.flush();
        assert_eq!(log.read("C", 1)[0].when_ms, 100);
        assert!(log.record(y(101)), "the flush took everything");
        assert!(fs::read_to_string(tmp.path().join("audit.jsonl"))
            .unwrap()
            .contains("/C/y"));
    }
}
