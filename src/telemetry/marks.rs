//! Stage marks: when one store write passes each stage of its way, in every process that
//! takes part, so that `strand bench config --breakdown` can line the processes up and say
//! where the time goes. Off unless the environment variable [`MARKS_ENV`] names a directory.
//!
//! ```text
//!   setter ── SetStart, WriteSent ─► leader ── StoreRecv, Proposed, Appended, AppendSent ─►
//!   follower ── AppendRecv, Appended, Synced, AppendAnswered ─► leader ── AppendAcked,
//!   Synced, CommitSent, Applied, WatchAnswer ─► listener ── WatchRecv, Delivered
//!   (each a line `<unix ns> <stage> <key>` in `<dir>/<pid>.marks`, appended every 20 ms)
//! ```
//!
//! Off, a mark costs one load of an initialised `OnceLock` and a branch. On, it takes the
//! wall clock (the same clock in every process of the machine) and pushes to a buffer under
//! a mutex; a thread of its own appends the buffer to the file, so the marked paths do no
//! I/O. Keys are what the site knows (a log index, a revision, 0); the bench assigns marks
//! to changes by time, as it makes one change at a time.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The environment variable naming the directory marks are written to.
pub const MARKS_ENV: &str = "STRAND_MARKS";

/// How often the buffered marks are appended to the file.
const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// A point on a store write's way. The names are what the files hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// The setter starts `ConfigAccessor::set` (the bench).
    SetStart,
    /// The client sends the write to the leader (after its cached read).
    WriteSent,
    /// The client has the write's answer.
    WriteAcked,
    /// The leader's STORE service decoded a write request.
    StoreRecv,
    /// The leader's write batcher proposes a batch to Raft.
    Proposed,
    /// An append was written to the log (key: its last index), before its fsync.
    Appended,
    /// An fsync of the log finished (key: the index it made durable).
    Synced,
    /// The leader sends an AppendEntries with entries (key: the last index).
    AppendSent,
    /// The leader sends an AppendEntries advertising a commit index (key: the index).
    CommitSent,
    /// The leader held a commit index back: its fsync had not landed.
    CommitHeld,
    /// A follower received an AppendEntries (key: the last index, 0 for none).
    AppendRecv,
    /// A follower answers an AppendEntries (key: the last index, 0 for none).
    AppendAnswered,
    /// The leader has a follower's answer to an AppendEntries with entries (key: the last
    /// index).
    AppendAcked,
    /// The state machine applied entries (key: the applied revision).
    Applied,
    /// A replica answers a watch with events (key: the first revision), not the cache's.
    WatchAnswer,
    /// A client has a watch answer with events (key: the first revision), not the cache's.
    WatchRecv,
    /// The listener has the change and prints it.
    Delivered,
}

impl Stage {
    /// Every stage, in the order of a write's way.
    pub const ALL: [Stage; 17] = [
        Stage::SetStart,
        Stage::WriteSent,
        Stage::StoreRecv,
        Stage::Proposed,
        Stage::Appended,
        Stage::AppendSent,
        Stage::AppendRecv,
        Stage::Synced,
        Stage::AppendAnswered,
        Stage::AppendAcked,
        Stage::CommitHeld,
        Stage::CommitSent,
        Stage::Applied,
        Stage::WriteAcked,
        Stage::WatchAnswer,
        Stage::WatchRecv,
        Stage::Delivered,
    ];

    /// The stage's name in the files.
    pub fn name(self) -> &'static str {
        match self {
            Stage::SetStart => "set_start",
            Stage::WriteSent => "write_sent",
            Stage::WriteAcked => "write_acked",
            Stage::StoreRecv => "store_recv",
            Stage::Proposed => "proposed",
            Stage::Appended => "appended",
            Stage::Synced => "synced",
            Stage::AppendSent => "append_sent",
            Stage::CommitSent => "commit_sent",
            Stage::CommitHeld => "commit_held",
            Stage::AppendRecv => "append_recv",
            Stage::AppendAnswered => "append_answered",
            Stage::AppendAcked => "append_acked",
            Stage::Applied => "applied",
            Stage::WatchAnswer => "watch_answer",
            Stage::WatchRecv => "watch_recv",
            Stage::Delivered => "delivered",
        }
    }

    /// The stage named `name`.
    pub fn parse(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// One mark as read back from a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// Wall-clock time, ns since the Unix epoch.
    pub at_ns: u64,
    /// Where the write was.
    pub stage: Stage,
    /// What the site knew (a log index, a revision, 0).
    pub key: u64,
}

impl Mark {
    /// Parses a line `<ns> <stage> <key>`; `None` for anything else.
    pub fn parse(line: &str) -> Option<Mark> {
        let mut it = line.split_ascii_whitespace();
        let at_ns = it.next()?.parse().ok()?;
        let stage = Stage::parse(it.next()?)?;
        let key = it.next()?.parse().ok()?;
        it.next().is_none().then_some(Mark { at_ns, stage, key })
    }
}

struct Recorder {
    buf: Mutex<Vec<Mark>>,
}

static RECORDER: OnceLock<Option<Recorder>> = OnceLock::new();

fn recorder() -> Option<&'static Recorder> {
    RECORDER
        .get_or_init(|| {
            let dir = PathBuf::from(std::env::var_os(MARKS_ENV).filter(|d| !d.is_empty())?);
            let file = dir.join(format!("{}.marks", std::process::id()));
            let spawned = std::thread::Builder::new()
                .name("stage-marks".into())
                .spawn(move || flush_loop(&file));
            if let Err(e) = spawned {
                tracing::warn!("stage marks: no flushing thread ({e}); marks are off");
                return None;
            }
            Some(Recorder {
                buf: Mutex::new(Vec::with_capacity(4096)),
            })
        })
        .as_ref()
}

/// Whether marks are being recorded (the environment variable was set at the first mark).
pub fn enabled() -> bool {
    recorder().is_some()
}

/// Records that this process's write reached `stage` now; nothing when marks are off.
#[inline]
pub fn mark(stage: Stage, key: u64) {
    if let Some(r) = recorder() {
        let at_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        r.buf
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Mark { at_ns, stage, key });
    }
}

fn flush_loop(file: &std::path::Path) {
    let mut out = match std::fs::OpenOptions::new().create(true).append(true).open(file) {
        Ok(f) => std::io::BufWriter::new(f),
        Err(e) => {
            tracing::warn!("stage marks: cannot open {}: {e}", file.display());
            return;
        }
    };
    let mut taken = Vec::with_capacity(4096);
    loop {
        std::thread::sleep(FLUSH_EVERY);
        let Some(r) = RECORDER.get().and_then(Option::as_ref) else {
            continue;
        };
        std::mem::swap(&mut *r.buf.lock().unwrap_or_else(|p| p.into_inner()), &mut taken);
        for m in taken.drain(..) {
            let _ = writeln!(out, "{} {} {}", m.at_ns, m.stage.name(), m.key);
        }
        let _ = out.flush();
    }
}

/// Reads every mark of the `.marks` files in `dir`, by process id (lines that do not parse
/// are skipped).
pub fn read_dir(dir: &std::path::Path) -> std::io::Result<Vec<(u32, Vec<Mark>)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(pid) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".marks"))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path)?;
        let mut marks: Vec<Mark> = text.lines().filter_map(Mark::parse).collect();
        marks.sort_by_key(|m| m.at_ns);
        out.push((pid, marks));
    }
    out.sort_by_key(|(pid, _)| *pid);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_reads_back_by_its_name_and_bad_lines_are_skipped() {
        for s in Stage::ALL {
            assert_eq!(Stage::parse(s.name()), Some(s));
        }
        assert_eq!(
            Mark::parse("17 applied 5"),
            Some(Mark {
                at_ns: 17,
                stage: Stage::Applied,
                key: 5
            })
        );
        for bad in [
            "",
            "17",
            "17 applied",
            "x applied 5",
            "17 nope 5",
            "17 applied 5 6",
            "17 applied -1",
        ] {
            assert_eq!(Mark::parse(bad), None, "{bad:?}");
        }
    }
}
