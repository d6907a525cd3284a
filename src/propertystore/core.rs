//! The store's data model and its deterministic state machine, over an abstract key-value
//! reader so that it is unit-testable without RocksDB or Raft.
//!
//! ```text
//!   Command (a Raft log entry's payload)
//!      │  apply(cmd)                 reads through KvRead (+ the batch's own staged writes)
//!      ▼
//!   Applier ──► Outcome per command (revision, per-op results, or a StoreError)
//!      │  finish()
//!      ▼
//!   Changes { meta, key writes/deletes, events, compaction }  ──► one storage write
//! ```
//!
//! Every command that changes something gets the next store-wide revision; every key carries
//! a version (1 at creation, +1 per set), a create revision and a modify revision. Every
//! change is also an [`Event`] in the watch history, kept from [`Meta::oldest`] on; older
//! events are compacted away. A command that fails (a condition, a wrong expected version, a
//! limit) changes nothing and consumes no revision.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The longest path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// The largest value accepted, in bytes (1 MiB).
pub const MAX_VALUE_LEN: usize = 1 << 20;
/// The most operations plus conditions in one transaction.
pub const MAX_TXN_OPS: usize = 256;
/// The largest total of path and value bytes in one transaction (4 MiB).
pub const MAX_TXN_BYTES: usize = 4 << 20;

/// Why a store operation did not succeed. None of these changed anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum StoreError {
    /// The path is not a valid store path.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The value is larger than [`MAX_VALUE_LEN`].
    #[error("value of {size} bytes for {path} exceeds the limit of {max} bytes")]
    ValueTooLarge {
        /// The key written.
        path: String,
        /// The value's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The transaction has too many operations or bytes.
    #[error("transaction too large: {reason}")]
    TxnTooLarge {
        /// Which limit was passed.
        reason: String,
    },
    /// The key does not exist.
    #[error("no such key: {path}")]
    NotFound {
        /// The key.
        path: String,
    },
    /// `create` found the key already there.
    #[error("{path} already exists")]
    AlreadyExists {
        /// The key.
        path: String,
    },
    /// The key's version is not the one the operation expected.
    #[error("{path} is at version {actual}, expected {expected}")]
    VersionMismatch {
        /// The key.
        path: String,
        /// The version expected.
        expected: u64,
        /// The version found (0: the key does not exist).
        actual: u64,
    },
    /// A non-recursive delete of a key that has children.
    #[error("{path} has children; delete recursively to remove them too")]
    NotEmpty {
        /// The key.
        path: String,
    },
    /// A watch asked for history that was compacted away.
    #[error("revision {requested} was compacted; the oldest revision available is {oldest}")]
    Compacted {
        /// The revision asked for.
        requested: u64,
        /// The oldest revision still in the history.
        oldest: u64,
    },
    /// The underlying storage failed.
    #[error("storage: {reason}")]
    Storage {
        /// What failed.
        reason: String,
    },
    /// A range read's entries would not fit in one reply frame; nothing was returned. (New
    /// variants go last: older encodings keep decoding.)
    #[error(
        "the keys under {path} take more than {max} bytes (at least {bytes} when the read stopped); \
         read narrower paths"
    )]
    RangeTooLarge {
        /// The path asked for.
        path: String,
        /// The encoded size of the entries read when the limit was passed.
        bytes: usize,
        /// The most bytes of entries one reply may carry.
        max: usize,
    },
    /// The leader's disk has less free space than writes need; nothing was written. Deletes
    /// and compaction are still taken (they free space); other writes succeed again once
    /// space returns.
    #[error(
        "no space for writes on the leader's disk: {free_bytes} bytes free, writes need at \
         least {reserve_bytes}; nothing was written (deletes and compaction still go through)"
    )]
    DiskFull {
        /// Free bytes on the data directory's filesystem.
        free_bytes: u64,
        /// The free space writes need (`--min-free-bytes`).
        reserve_bytes: u64,
    },
}

/// Checks a path: absolute, `/`-separated non-empty segments without `.`/`..`, no trailing
/// slash, no control characters, at most [`MAX_PATH_LEN`] bytes. `/` itself is valid.
pub fn validate_path(path: &str) -> Result<(), StoreError> {
    let bad = |reason: &str| StoreError::InvalidPath {
        path: path.chars().take(80).collect(),
        reason: reason.to_string(),
    };
    if path.len() > MAX_PATH_LEN {
        return Err(StoreError::InvalidPath {
            path: path.chars().take(80).collect::<String>() + "…",
            reason: format!("{} bytes, the limit is {MAX_PATH_LEN}", path.len()),
        });
    }
    if !path.starts_with('/') {
        return Err(bad("a path starts with '/'"));
    }
    if path == "/" {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(bad("a path does not end with '/'"));
    }
    for segment in path[1..].split('/') {
        if segment.is_empty() {
            return Err(bad("empty segment ('//')"));
        }
        if segment == "." || segment == ".." {
            return Err(bad("'.' and '..' are not allowed as segments"));
        }
        if segment.chars().any(char::is_control) {
            return Err(bad("control characters are not allowed"));
        }
    }
    Ok(())
}

/// Checks a path that is written to: a valid path other than `/`.
pub fn validate_key(path: &str) -> Result<(), StoreError> {
    validate_path(path)?;
    if path == "/" {
        return Err(StoreError::InvalidPath {
            path: path.into(),
            reason: "the root holds no value".into(),
        });
    }
    Ok(())
}

/// The prefix every descendant of `path` starts with (`/a` → `/a/`, `/` → `/`).
pub fn child_prefix(path: &str) -> String {
    if path == "/" {
        "/".to_string()
    } else {
        format!("{path}/")
    }
}

/// A key's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    /// 1 when created, +1 per set.
    pub version: u64,
    /// The revision that created the key.
    pub create_revision: u64,
    /// The revision that last changed the key.
    pub mod_revision: u64,
}

/// A stored key: its value and metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The value.
    #[serde(with = "crate::codec::bytes")]
    pub value: Vec<u8>,
    /// The metadata.
    pub stat: Stat,
}

/// One write operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Creates a key; fails with [`StoreError::AlreadyExists`] if it is there.
    Create {
        /// The key.
        path: String,
        /// Its value.
        #[serde(with = "crate::codec::bytes")]
        value: Vec<u8>,
    },
    /// Sets a key (creating it when `expected_version` is `None` and it is absent).
    Set {
        /// The key.
        path: String,
        /// The new value.
        #[serde(with = "crate::codec::bytes")]
        value: Vec<u8>,
        /// Only at this version (0: only if absent).
        expected_version: Option<u64>,
    },
    /// Deletes a key.
    Delete {
        /// The key.
        path: String,
        /// Only at this version.
        expected_version: Option<u64>,
        /// Also every key under it.
        recursive: bool,
    },
}

impl Op {
    /// The key the operation names.
    pub fn path(&self) -> &str {
        match self {
            Op::Create { path, .. } | Op::Set { path, .. } | Op::Delete { path, .. } => path,
        }
    }

    fn size(&self) -> usize {
        match self {
            Op::Create { path, value } | Op::Set { path, value, .. } => path.len() + value.len(),
            Op::Delete { path, .. } => path.len(),
        }
    }
}

/// How a condition compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cmp {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Less than.
    Lt,
    /// Greater than.
    Gt,
}

impl Cmp {
    fn holds<T: Ord + ?Sized>(self, a: &T, b: &T) -> bool {
        match self {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            Cmp::Lt => a < b,
            Cmp::Gt => a > b,
        }
    }
}

/// A transaction condition, evaluated against the state before the transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    /// The key's version (0 when absent) compares to `version`.
    Version {
        /// The key.
        path: String,
        /// The comparison.
        cmp: Cmp,
        /// The version compared with.
        version: u64,
    },
    /// The key exists.
    Exists {
        /// The key.
        path: String,
    },
    /// The key does not exist.
    Missing {
        /// The key.
        path: String,
    },
    /// The key exists and its value compares (bytewise) to `value`.
    Value {
        /// The key.
        path: String,
        /// The comparison.
        cmp: Cmp,
        /// The value compared with.
        #[serde(with = "crate::codec::bytes")]
        value: Vec<u8>,
    },
}

impl Condition {
    fn path(&self) -> &str {
        match self {
            Condition::Version { path, .. }
            | Condition::Exists { path }
            | Condition::Missing { path }
            | Condition::Value { path, .. } => path,
        }
    }
}

/// An atomic transaction: if every condition holds, `success` runs, else `failure`.
/// Either list's operations all take effect at one revision, or (one fails) none does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    /// Conditions, all of which must hold.
    pub conditions: Vec<Condition>,
    /// Operations when they hold.
    pub success: Vec<Op>,
    /// Operations when one does not.
    pub failure: Vec<Op>,
}

impl Txn {
    /// A transaction of one unconditional operation.
    pub fn single(op: Op) -> Txn {
        Txn {
            conditions: Vec::new(),
            success: vec![op],
            failure: Vec::new(),
        }
    }

    /// Checks paths, value sizes and the transaction limits.
    pub fn validate(&self) -> Result<(), StoreError> {
        let ops = self.conditions.len() + self.success.len() + self.failure.len();
        if ops > MAX_TXN_OPS {
            return Err(StoreError::TxnTooLarge {
                reason: format!("{ops} operations and conditions, the limit is {MAX_TXN_OPS}"),
            });
        }
        let mut bytes = 0usize;
        for c in &self.conditions {
            validate_key(c.path())?;
            bytes += c.path().len();
            if let Condition::Value { value, .. } = c {
                bytes += value.len();
            }
        }
        for op in self.success.iter().chain(&self.failure) {
            validate_key(op.path())?;
            if let Op::Create { path, value } | Op::Set { path, value, .. } = op {
                if value.len() > MAX_VALUE_LEN {
                    return Err(StoreError::ValueTooLarge {
                        path: path.clone(),
                        size: value.len(),
                        max: MAX_VALUE_LEN,
                    });
                }
            }
            bytes += op.size();
        }
        if bytes > MAX_TXN_BYTES {
            return Err(StoreError::TxnTooLarge {
                reason: format!("{bytes} bytes, the limit is {MAX_TXN_BYTES}"),
            });
        }
        Ok(())
    }
}

/// A replicated command: the payload of a Raft log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A transaction (a single write is a transaction of one operation).
    Txn(Txn),
    /// Drops the watch history below `below`.
    Compact {
        /// The new oldest revision (clamped to the current revision + 1).
        below: u64,
    },
}

/// Commands proposed together as one Raft log entry (the server batches concurrent writes,
/// because a Raft append waits for its fsync). Each command gets its own revision and
/// outcome, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch(pub Vec<Command>);

impl Command {
    /// Roughly how many bytes the command takes (paths and values).
    pub fn approx_size(&self) -> usize {
        match self {
            Command::Compact { .. } => 16,
            Command::Txn(t) => {
                16 + t.success.iter().chain(&t.failure).map(Op::size).sum::<usize>()
                    + t.conditions
                        .iter()
                        .map(|c| {
                            c.path().len()
                                + match c {
                                    Condition::Value { value, .. } => value.len(),
                                    _ => 8,
                                }
                        })
                        .sum::<usize>()
            }
        }
    }
}

/// What one operation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpOutcome {
    /// The key was created or set; its new metadata.
    Put {
        /// The key.
        path: String,
        /// Its metadata after the write.
        stat: Stat,
    },
    /// Keys were deleted.
    Deleted {
        /// The key named by the operation.
        path: String,
        /// How many keys were removed (more than 1 for a recursive delete).
        count: u64,
    },
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    /// The store's revision after the command (the command's revision if it changed anything).
    pub revision: u64,
    /// Whether the transaction's conditions held (always true for a single write).
    pub succeeded: bool,
    /// What each operation of the branch that ran did.
    pub ops: Vec<OpOutcome>,
}

/// The result of applying a command.
pub type Outcome = Result<Written, StoreError>;

/// What happened to a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// Created or set, with the new value.
    Put {
        /// The new value.
        #[serde(with = "crate::codec::bytes")]
        value: Vec<u8>,
        /// The new metadata.
        stat: Stat,
    },
    /// Deleted.
    Delete,
}

/// One change in the watch history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The revision of the command that made it.
    pub revision: u64,
    /// The key.
    pub path: String,
    /// The change.
    pub kind: EventKind,
}

/// Store-wide counters, persisted with the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The revision of the last command that changed something (0: none yet).
    pub revision: u64,
    /// The oldest revision whose events are still in the history.
    pub oldest: u64,
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            revision: 0,
            oldest: 1,
        }
    }
}

/// Read access to the committed keys, for [`Applier`].
pub trait KvRead {
    /// The record at `path`.
    fn get(&self, path: &str) -> Result<Option<Record>, StoreError>;
    /// Calls `f` for each key starting with `prefix`, in order, until it returns false.
    fn scan(&self, prefix: &str, f: &mut dyn FnMut(&str, &Record) -> bool) -> Result<(), StoreError>;
}

/// Everything a batch of applied commands changes, for one atomic storage write.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The counters after the batch.
    pub meta: Meta,
    /// Keys to write (`Some`) or delete (`None`).
    pub keys: BTreeMap<String, Option<Record>>,
    /// New events, in revision order.
    pub events: Vec<Event>,
    /// Events below this revision are to be removed, if set.
    pub compact_below: Option<u64>,
}

/// Applies commands in order over a [`KvRead`], staging their effects in memory.
///
/// `retain` bounds the watch history: once it holds more than `retain + retain / 8`
/// revisions, it is compacted to the last `retain`. Replicas should use the same value;
/// the history only serves watches, so a difference changes which watches find their start.
pub struct Applier<'a, K: KvRead + ?Sized> {
    base: &'a K,
    staged: BTreeMap<String, Option<Record>>,
    meta: Meta,
    events: Vec<Event>,
    compact_below: Option<u64>,
    retain: u64,
}

impl<'a, K: KvRead + ?Sized> Applier<'a, K> {
    /// An applier over `base`, whose counters are `meta`.
    pub fn new(base: &'a K, meta: Meta, retain: u64) -> Self {
        Applier {
            base,
            staged: BTreeMap::new(),
            meta,
            events: Vec::new(),
            compact_below: None,
            retain: retain.max(1),
        }
    }

    /// The counters as of the commands applied so far.
    pub fn meta(&self) -> Meta {
        self.meta
    }

    fn read(
        &self,
        view: &BTreeMap<String, Option<Record>>,
        path: &str,
    ) -> Result<Option<Record>, StoreError> {
        if let Some(r) = view.get(path) {
            return Ok(r.clone());
        }
        if let Some(r) = self.staged.get(path) {
            return Ok(r.clone());
        }
        self.base.get(path)
    }

    /// Keys under `prefix` as the command sees them (base, then staged, then `view`).
    fn descendants(
        &self,
        view: &BTreeMap<String, Option<Record>>,
        prefix: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut keys: BTreeMap<String, bool> = BTreeMap::new();
        self.base.scan(prefix, &mut |k, _| {
            keys.insert(k.to_string(), true);
            true
        })?;
        for layer in [&self.staged, view] {
            for (k, v) in layer.range(prefix.to_string()..) {
                if !k.starts_with(prefix) {
                    break;
                }
                keys.insert(k.clone(), v.is_some());
            }
        }
        Ok(keys
            .into_iter()
            .filter(|(_, live)| *live)
            .map(|(k, _)| k)
            .collect())
    }

    fn check(&self, c: &Condition) -> Result<bool, StoreError> {
        let current = self.read(&BTreeMap::new(), c.path())?;
        Ok(match c {
            Condition::Version { cmp, version, .. } => {
                let v = current.map_or(0, |r| r.stat.version);
                cmp.holds(&v, version)
            }
            Condition::Exists { .. } => current.is_some(),
            Condition::Missing { .. } => current.is_none(),
            Condition::Value { cmp, value, .. } => {
                current.is_some_and(|r| cmp.holds(r.value.as_slice(), value.as_slice()))
            }
        })
    }

    /// Applies one command; on error nothing of it is staged.
    pub fn apply(&mut self, cmd: &Command) -> Outcome {
        match cmd {
            Command::Compact { below } => {
                let below = (*below).min(self.meta.revision + 1);
                if below > self.meta.oldest {
                    self.meta.oldest = below;
                    self.compact_below = Some(below);
                }
                Ok(Written {
                    revision: self.meta.revision,
                    succeeded: true,
                    ops: Vec::new(),
                })
            }
            Command::Txn(txn) => {
                txn.validate()?;
                let mut holds = true;
                for c in &txn.conditions {
                    if !self.check(c)? {
                        holds = false;
                        break;
                    }
                }
                let ops = if holds { &txn.success } else { &txn.failure };
                let revision = self.meta.revision + 1;
                let mut view: BTreeMap<String, Option<Record>> = BTreeMap::new();
                let mut events = Vec::new();
                let mut outcomes = Vec::with_capacity(ops.len());
                for op in ops {
                    outcomes.push(self.apply_op(op, revision, &mut view, &mut events)?);
                }
                if !events.is_empty() {
                    self.meta.revision = revision;
                    self.staged.extend(view);
                    self.events.extend(events);
                    self.auto_compact();
                }
                Ok(Written {
                    revision: self.meta.revision,
                    succeeded: holds,
                    ops: outcomes,
                })
            }
        }
    }

    fn auto_compact(&mut self) {
        let held = self.meta.revision + 1 - self.meta.oldest;
        if held > self.retain + self.retain / 8 {
            let below = self.meta.revision + 1 - self.retain;
            self.meta.oldest = below;
            self.compact_below = Some(below);
        }
    }

    fn apply_op(
        &self,
        op: &Op,
        revision: u64,
        view: &mut BTreeMap<String, Option<Record>>,
        events: &mut Vec<Event>,
    ) -> Result<OpOutcome, StoreError> {
        match op {
            Op::Create { path, value } => {
                if self.read(view, path)?.is_some() {
                    return Err(StoreError::AlreadyExists { path: path.clone() });
                }
                Ok(self.put(path, value, None, revision, view, events))
            }
            Op::Set {
                path,
                value,
                expected_version,
            } => {
                let current = self.read(view, path)?;
                let actual = current.as_ref().map_or(0, |r| r.stat.version);
                if let Some(expected) = *expected_version {
                    if expected != actual {
                        return Err(StoreError::VersionMismatch {
                            path: path.clone(),
                            expected,
                            actual,
                        });
                    }
                }
                Ok(self.put(path, value, current.map(|r| r.stat), revision, view, events))
            }
            Op::Delete {
                path,
                expected_version,
                recursive,
            } => {
                let current = self.read(view, path)?;
                if let Some(expected) = *expected_version {
                    let actual = current.as_ref().map_or(0, |r| r.stat.version);
                    if expected != actual {
                        return Err(StoreError::VersionMismatch {
                            path: path.clone(),
                            expected,
                            actual,
                        });
                    }
                }
                let below = self.descendants(view, &child_prefix(path))?;
                if !below.is_empty() && !recursive {
                    return Err(StoreError::NotEmpty { path: path.clone() });
                }
                if current.is_none() && below.is_empty() {
                    return Err(StoreError::NotFound { path: path.clone() });
                }
                let mut count = 0;
                let doomed = current.is_some().then(|| path.clone()).into_iter().chain(below);
                for key in doomed {
                    view.insert(key.clone(), None);
                    events.push(Event {
                        revision,
                        path: key,
                        kind: EventKind::Delete,
                    });
                    count += 1;
                }
                Ok(OpOutcome::Deleted {
                    path: path.clone(),
                    count,
                })
            }
        }
    }

    fn put(
        &self,
        path: &str,
        value: &[u8],
        prev: Option<Stat>,
        revision: u64,
        view: &mut BTreeMap<String, Option<Record>>,
        events: &mut Vec<Event>,
    ) -> OpOutcome {
        let stat = match prev {
            Some(s) => Stat {
                version: s.version + 1,
                create_revision: s.create_revision,
                mod_revision: revision,
            },
            None => Stat {
                version: 1,
                create_revision: revision,
                mod_revision: revision,
            },
        };
        view.insert(
            path.to_string(),
            Some(Record {
                value: value.to_vec(),
                stat,
            }),
        );
        events.push(Event {
            revision,
            path: path.to_string(),
            kind: EventKind::Put {
                value: value.to_vec(),
                stat,
            },
        });
        OpOutcome::Put {
            path: path.to_string(),
            stat,
        }
    }

    /// Everything the commands applied so far change.
    pub fn finish(self) -> Changes {
        Changes {
            meta: self.meta,
            keys: self.staged,
            events: self.events,
            compact_below: self.compact_below,
        }
    }
}

/// Where a watch continues in the history: a revision, and the position of an event within
/// it (0: its first event). Positions count every event of the revision, whatever its path,
/// and are the same on every replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Position {
    /// The revision.
    pub revision: u64,
    /// The position of the next event within it.
    pub seq: u32,
}

impl Position {
    /// The start of `revision`.
    pub fn at(revision: u64) -> Position {
        Position { revision, seq: 0 }
    }
}

/// How large one watch answer may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    /// The most events.
    pub max_events: usize,
    /// The most bytes of encoded events.
    pub max_bytes: usize,
    /// Whether a revision that alone passes a limit may be cut (its remaining events go in
    /// the next answers); otherwise such a revision goes whole (what older clients, which
    /// resume only at revision boundaries, get).
    pub split: bool,
}

/// Cuts the watch history into answers of bounded size. Fed the history's events in order
/// (from a [`Position`]), it keeps those under the watched prefix and says when the answer is
/// full.
///
/// An answer holds whole revisions while they fit; it ends at the start of the first
/// revision that does not fit, unless that revision is the answer's first: then, when
/// [`PageLimits::split`] allows, it is cut after the last event that fits (an answer always
/// holds at least one event) and the next answer continues from the cut. No event is skipped
/// or repeated, and only a revision larger than a whole answer is ever cut.
#[derive(Debug)]
pub struct Pager {
    limits: PageLimits,
    events: Vec<Event>,
    bytes: usize,
    current: Option<OpenRevision>,
    /// Where the next answer starts once this one is full.
    cut: Option<Position>,
}

/// The revision a [`Pager`] is reading.
#[derive(Debug, Clone, Copy)]
struct OpenRevision {
    revision: u64,
    /// Where its events begin in the answer.
    start: usize,
    /// The answer's bytes before them.
    bytes: usize,
}

/// What [`Pager::offer`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// Taken or passed over; offer the next event.
    More,
    /// The answer is full; the event offered was not taken.
    Full,
}

impl Pager {
    /// An empty answer.
    pub fn new(limits: PageLimits) -> Pager {
        Pager {
            limits,
            events: Vec::new(),
            bytes: 0,
            current: None,
            cut: None,
        }
    }

    /// Offers the history's event at `at`, of `size` encoded bytes: `Some` when it is under
    /// the watched prefix, `None` when it only advances the position.
    pub fn offer(&mut self, at: Position, size: usize, event: Option<Event>) -> Offered {
        if self.cut.is_some() {
            return Offered::Full;
        }
        let open = match self.current {
            Some(open) if open.revision == at.revision => open,
            _ => {
                let open = OpenRevision {
                    revision: at.revision,
                    start: self.events.len(),
                    bytes: self.bytes,
                };
                self.current = Some(open);
                open
            }
        };
        let Some(event) = event else {
            return Offered::More;
        };
        let fits = self.events.len() < self.limits.max_events
            && self.bytes.saturating_add(size) <= self.limits.max_bytes;
        if !fits {
            if open.start > 0 {
                // Whole revisions are in: end before this one.
                self.events.truncate(open.start);
                self.bytes = open.bytes;
                self.cut = Some(Position::at(at.revision));
                return Offered::Full;
            }
            if self.limits.split && !self.events.is_empty() {
                self.cut = Some(at);
                return Offered::Full;
            }
            // The answer's first event, or a revision that may not be cut: taken anyway.
        }
        self.events.push(event);
        self.bytes += size;
        Offered::More
    }

    /// The answer, and where the next one starts: the cut, or `end` when the history was
    /// offered up to it.
    pub fn finish(self, end: Position) -> (Vec<Event>, Position) {
        (self.events, self.cut.unwrap_or(end))
    }
}

/// The names of the direct children of `path`, given its descendants in key order.
///
/// `seek` returns the first key at or after its argument that starts with the prefix; the
/// walk skips each child's subtree in one seek, so it costs one seek per child.
pub fn list_children(
    path: &str,
    mut seek: impl FnMut(&str) -> Result<Option<String>, StoreError>,
) -> Result<Vec<String>, StoreError> {
    let prefix = child_prefix(path);
    let mut out: Vec<String> = Vec::new();
    let mut from = prefix.clone();
    while let Some(key) = seek(&from)? {
        let Some(rest) = key.strip_prefix(&prefix) else {
            break;
        };
        let name = rest.split('/').next().unwrap_or(rest).to_string();
        // Past every key of this child's subtree: '/' + 1 is '0'.
        from = format!("{prefix}{name}0");
        out.push(name);
    }
    Ok(out)
}

/// An in-memory [`KvRead`] (tests, and a reference for the RocksDB one).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemKv {
    /// The keys.
    pub keys: BTreeMap<String, Record>,
    /// The counters.
    pub meta: Meta,
    /// The watch history.
    pub events: Vec<Event>,
}

impl KvRead for MemKv {
    fn get(&self, path: &str) -> Result<Option<Record>, StoreError> {
        Ok(self.keys.get(path).cloned())
    }

    fn scan(&self, prefix: &str, f: &mut dyn FnMut(&str, &Record) -> bool) -> Result<(), StoreError> {
        for (k, v) in self.keys.range(prefix.to_string()..) {
            if !k.starts_with(prefix) || !f(k, v) {
                break;
            }
        }
        Ok(())
    }
}

impl MemKv {
    /// Applies one command and commits its changes.
    pub fn apply(&mut self, cmd: &Command, retain: u64) -> Outcome {
        let mut applier = Applier::new(&*self, self.meta, retain);
        let out = applier.apply(cmd);
        let changes = applier.finish();
        self.commit(changes);
        out
    }

    /// Commits a batch of changes.
    pub fn commit(&mut self, changes: Changes) {
        self.meta = changes.meta;
        for (k, v) in changes.keys {
            match v {
                Some(r) => {
                    self.keys.insert(k, r);
                }
                None => {
                    self.keys.remove(&k);
                }
            }
        }
        self.events.extend(changes.events);
        if let Some(below) = changes.compact_below {
            self.events.retain(|e| e.revision >= below);
        }
    }

    /// The children of `path`.
    pub fn children(&self, path: &str) -> Result<Vec<String>, StoreError> {
        let prefix = child_prefix(path);
        list_children(path, |from| {
            Ok(self
                .keys
                .range(from.to_string()..)
                .next()
                .map(|(k, _)| k.clone())
                .filter(|k| k.starts_with(&prefix)))
        })
    }

    /// Events under `prefix` from revision `from` on.
    pub fn watch(&self, prefix: &str, from: u64) -> Result<Vec<Event>, StoreError> {
        if from < self.meta.oldest {
            return Err(StoreError::Compacted {
                requested: from,
                oldest: self.meta.oldest,
            });
        }
        Ok(self
            .events
            .iter()
            .filter(|e| e.revision >= from && e.path.starts_with(prefix))
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history for the pager tests: revision r (1..=revisions) has a seeded number of
    /// events (sometimes many), of seeded sizes, some under the watched prefix `/w/`.
    fn paged_history(seed: u64, revisions: u64) -> Vec<(Position, usize, Event)> {
        let mut x = seed | 1;
        let mut rand = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut out = Vec::new();
        for revision in 1..=revisions {
            let events = if rand(10) == 0 { 20 + rand(40) } else { 1 + rand(4) };
            for seq in 0..events as u32 {
                let under = rand(3) > 0;
                let event = Event {
                    revision,
                    path: format!("{}/k{seq}", if under { "/w" } else { "/other" }),
                    kind: EventKind::Delete,
                };
                out.push((Position { revision, seq }, 10 + rand(90) as usize, event));
            }
        }
        out
    }

    /// One answer from `from`, as storage builds it.
    fn page(
        history: &[(Position, usize, Event)],
        from: Position,
        limits: PageLimits,
    ) -> (Vec<Event>, Position) {
        let mut pager = Pager::new(limits);
        for (at, size, event) in history.iter().filter(|(at, _, _)| *at >= from) {
            let wanted = event.path.starts_with("/w/").then(|| event.clone());
            if pager.offer(*at, *size, wanted) == Offered::Full {
                break;
            }
        }
        let last = history.last().map_or(0, |(at, _, _)| at.revision);
        pager.finish(Position::at(last + 1).max(from))
    }

    #[test]
    fn watch_answers_are_bounded_and_together_are_the_history_once_in_order() {
        for seed in 1..=40u64 {
            let history = paged_history(seed, 60);
            let size_of = |e: &Event| {
                history
                    .iter()
                    .find(|(_, _, h)| h == e)
                    .map(|(_, size, _)| *size)
                    .unwrap()
            };
            let wanted: Vec<Event> = history
                .iter()
                .map(|(_, _, e)| e.clone())
                .filter(|e| e.path.starts_with("/w/"))
                .collect();
            for (max_events, max_bytes, split) in [
                (1000, 300, true),
                (5, 100_000, true),
                (3, 150, true),
                (4, 250, false),
            ] {
                let limits = PageLimits {
                    max_events,
                    max_bytes,
                    split,
                };
                let mut from = Position::at(1);
                let mut got = Vec::new();
                loop {
                    let (events, next) = page(&history, from, limits);
                    assert!(next > from || events.is_empty(), "seed {seed}: progress");
                    if !split {
                        assert_eq!(next.seq, 0, "seed {seed}: whole revisions only");
                    }
                    let bytes: usize = events.iter().map(size_of).sum();
                    let over = events.len() > max_events || bytes > max_bytes;
                    if over {
                        // Only a single revision larger than an answer: cut when allowed,
                        // else whole.
                        let first = events[0].revision;
                        assert!(events.iter().all(|e| e.revision == first), "seed {seed}");
                        assert!(
                            events.len() == 1 || !split,
                            "seed {seed}: {} events, {bytes} bytes",
                            events.len()
                        );
                    }
                    // A cut inside a revision only when the answer is that one revision.
                    if next.seq > 0 {
                        assert!(events.iter().all(|e| e.revision == next.revision), "seed {seed}");
                    }
                    got.extend(events);
                    if next.revision > 60 {
                        break;
                    }
                    from = next;
                }
                assert_eq!(got, wanted, "seed {seed}, limits {limits:?}");
            }
        }
    }

    #[test]
    fn a_pager_takes_at_least_one_event_and_never_cuts_whole_revisions_short() {
        let event = |revision: u64, seq: u32| Event {
            revision,
            path: format!("/w/{seq}"),
            kind: EventKind::Delete,
        };
        let limits = PageLimits {
            max_events: 10,
            max_bytes: 100,
            split: true,
        };
        // A first event larger than the whole budget still goes.
        let mut pager = Pager::new(limits);
        assert_eq!(
            pager.offer(Position::at(3), 500, Some(event(3, 0))),
            Offered::More
        );
        assert_eq!(
            pager.offer(Position { revision: 3, seq: 1 }, 1, Some(event(3, 1))),
            Offered::Full
        );
        assert_eq!(
            pager.finish(Position::at(9)),
            (vec![event(3, 0)], Position { revision: 3, seq: 1 })
        );
        // Revision 4 fits whole; revision 5 does not: the answer ends before it, even though
        // some of its events would fit.
        let mut pager = Pager::new(limits);
        for seq in 0..3 {
            assert_eq!(
                pager.offer(Position { revision: 4, seq }, 20, Some(event(4, seq))),
                Offered::More
            );
        }
        assert_eq!(pager.offer(Position::at(5), 20, Some(event(5, 0))), Offered::More);
        assert_eq!(
            pager.offer(Position { revision: 5, seq: 1 }, 30, Some(event(5, 1))),
            Offered::Full
        );
        let (events, next) = pager.finish(Position::at(9));
        assert_eq!(events.len(), 3);
        assert_eq!(next, Position::at(5));
        // Events outside the prefix cost nothing but move the position.
        let mut pager = Pager::new(limits);
        assert_eq!(pager.offer(Position::at(6), 1000, None), Offered::More);
        assert_eq!(pager.finish(Position::at(7)), (vec![], Position::at(7)));
    }

    fn set(path: &str, value: &str) -> Command {
        Command::Txn(Txn::single(Op::Set {
            path: path.into(),
            value: value.as_bytes().to_vec(),
            expected_version: None,
        }))
    }

    fn create(path: &str, value: &str) -> Command {
        Command::Txn(Txn::single(Op::Create {
            path: path.into(),
            value: value.as_bytes().to_vec(),
        }))
    }

    fn delete(path: &str, expected_version: Option<u64>, recursive: bool) -> Command {
        Command::Txn(Txn::single(Op::Delete {
            path: path.into(),
            expected_version,
            recursive,
        }))
    }

    #[test]
    fn paths_are_checked() {
        for ok in ["/", "/a", "/MYCLUSTER/IDEALSTATES/myDB", "/a b/ü"] {
            assert_eq!(validate_path(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a", "/a/", "//a", "/a//b", "/a/./b", "/..", "/a\nb"] {
            assert!(
                matches!(validate_path(bad), Err(StoreError::InvalidPath { .. })),
                "{bad:?}"
            );
        }
        let long = format!("/{}", "x".repeat(MAX_PATH_LEN));
        assert!(matches!(
            validate_path(&long),
            Err(StoreError::InvalidPath { .. })
        ));
        assert!(validate_key("/").is_err());
    }

    #[test]
    fn revisions_versions_and_stats() {
        let mut kv = MemKv::default();
        let w = kv.apply(&create("/a", "1"), 100).unwrap();
        assert_eq!(w.revision, 1);
        kv.apply(&set("/b", "x"), 100).unwrap();
        let w = kv.apply(&set("/a", "2"), 100).unwrap();
        assert_eq!(w.revision, 3);
        let r = kv.keys.get("/a").unwrap();
        assert_eq!(
            r.stat,
            Stat {
                version: 2,
                create_revision: 1,
                mod_revision: 3
            }
        );
        assert_eq!(r.value, b"2");
    }

    #[test]
    fn failed_commands_change_nothing_and_take_no_revision() {
        let mut kv = MemKv::default();
        kv.apply(&create("/a", "1"), 100).unwrap();
        let before = kv.clone();
        assert_eq!(
            kv.apply(&create("/a", "2"), 100),
            Err(StoreError::AlreadyExists { path: "/a".into() })
        );
        let cas = Command::Txn(Txn::single(Op::Set {
            path: "/a".into(),
            value: b"3".to_vec(),
            expected_version: Some(7),
        }));
        assert_eq!(
            kv.apply(&cas, 100),
            Err(StoreError::VersionMismatch {
                path: "/a".into(),
                expected: 7,
                actual: 1
            })
        );
        assert_eq!(
            kv.apply(&delete("/nope", None, false), 100),
            Err(StoreError::NotFound { path: "/nope".into() })
        );
        let big = Command::Txn(Txn::single(Op::Set {
            path: "/big".into(),
            value: vec![0; MAX_VALUE_LEN + 1],
            expected_version: None,
        }));
        assert!(matches!(
            kv.apply(&big, 100),
            Err(StoreError::ValueTooLarge { .. })
        ));
        assert_eq!(kv, before);
    }

    #[test]
    fn expected_version_zero_means_absent() {
        let mut kv = MemKv::default();
        let only_if_absent = Command::Txn(Txn::single(Op::Set {
            path: "/a".into(),
            value: b"1".to_vec(),
            expected_version: Some(0),
        }));
        kv.apply(&only_if_absent, 100).unwrap();
        assert!(kv.apply(&only_if_absent, 100).is_err());
    }

    #[test]
    fn delete_recursive_and_not_empty() {
        let mut kv = MemKv::default();
        for p in ["/c", "/c/x", "/c/x/y", "/c/z", "/cc"] {
            kv.apply(&set(p, "v"), 100).unwrap();
        }
        assert_eq!(
            kv.apply(&delete("/c", None, false), 100),
            Err(StoreError::NotEmpty { path: "/c".into() })
        );
        assert_eq!(kv.children("/c").unwrap(), vec!["x", "z"]);
        assert_eq!(kv.children("/").unwrap(), vec!["c", "cc"]);
        let w = kv.apply(&delete("/c", Some(1), true), 100).unwrap();
        assert_eq!(
            w.ops,
            vec![OpOutcome::Deleted {
                path: "/c".into(),
                count: 4
            }]
        );
        assert_eq!(kv.keys.keys().collect::<Vec<_>>(), vec!["/cc"]);
        // All four deletions share one revision.
        let last: Vec<_> = kv.events.iter().filter(|e| e.revision == w.revision).collect();
        assert_eq!(last.len(), 4);
    }

    #[test]
    fn txn_conditions_pick_the_branch_and_ops_see_each_other() {
        let mut kv = MemKv::default();
        // Take a leadership record with a fencing epoch.
        let take = |epoch: &str, seen_version: u64| {
            Command::Txn(Txn {
                conditions: vec![Condition::Version {
                    path: "/C/CONTROLLER/LEADER".into(),
                    cmp: Cmp::Eq,
                    version: seen_version,
                }],
                success: vec![
                    Op::Set {
                        path: "/C/CONTROLLER/LEADER".into(),
                        value: epoch.as_bytes().to_vec(),
                        expected_version: None,
                    },
                    Op::Set {
                        path: "/C/CONTROLLER/EPOCH".into(),
                        value: epoch.as_bytes().to_vec(),
                        expected_version: None,
                    },
                ],
                failure: vec![],
            })
        };
        let w = kv.apply(&take("1", 0), 100).unwrap();
        assert!(w.succeeded);
        assert_eq!(w.revision, 1);
        let w = kv.apply(&take("2", 0), 100).unwrap();
        assert!(!w.succeeded);
        assert_eq!(
            w.revision, 1,
            "a failed condition with no failure ops takes no revision"
        );
        assert!(kv.apply(&take("2", 1), 100).unwrap().succeeded);

        // Ops in one transaction see earlier ones; a failing op undoes the whole txn.
        let txn = Command::Txn(Txn {
            conditions: vec![
                Condition::Exists {
                    path: "/C/CONTROLLER/EPOCH".into(),
                },
                Condition::Value {
                    path: "/C/CONTROLLER/EPOCH".into(),
                    cmp: Cmp::Eq,
                    value: b"2".to_vec(),
                },
            ],
            success: vec![
                Op::Create {
                    path: "/n".into(),
                    value: b"1".to_vec(),
                },
                Op::Create {
                    path: "/n".into(),
                    value: b"2".to_vec(),
                },
            ],
            failure: vec![],
        });
        let before = kv.clone();
        assert_eq!(
            kv.apply(&txn, 100),
            Err(StoreError::AlreadyExists { path: "/n".into() })
        );
        assert_eq!(kv, before);
        let missing = Command::Txn(Txn {
            conditions: vec![Condition::Missing { path: "/n".into() }],
            success: vec![Op::Create {
                path: "/n".into(),
                value: b"1".to_vec(),
            }],
            failure: vec![],
        });
        assert!(kv.apply(&missing, 100).unwrap().succeeded);
        assert!(!kv.apply(&missing, 100).unwrap().succeeded);
    }

    #[test]
    fn txn_limits() {
        let many = Txn {
            conditions: vec![],
            success: (0..=MAX_TXN_OPS)
                .map(|i| Op::Delete {
                    path: format!("/k{i}"),
                    expected_version: None,
                    recursive: false,
                })
                .collect(),
            failure: vec![],
        };
        assert!(matches!(many.validate(), Err(StoreError::TxnTooLarge { .. })));
        let bytes = Txn {
            conditions: vec![],
            success: (0..5)
                .map(|i| Op::Set {
                    path: format!("/k{i}"),
                    value: vec![0; MAX_VALUE_LEN],
                    expected_version: None,
                })
                .collect(),
            failure: vec![],
        };
        assert!(matches!(bytes.validate(), Err(StoreError::TxnTooLarge { .. })));
    }

    #[test]
    fn watch_history_is_ordered_and_compacts() {
        let mut kv = MemKv::default();
        for i in 0..20 {
            kv.apply(&set(&format!("/w/{}", i % 3), &i.to_string()), 8)
                .unwrap();
        }
        // retain 8: compacted once more than 9 revisions are held.
        assert!(kv.meta.oldest > 1);
        assert!(kv.meta.revision + 1 - kv.meta.oldest <= 9);
        let oldest = kv.meta.oldest;
        assert_eq!(
            kv.watch("/w", 1),
            Err(StoreError::Compacted { requested: 1, oldest })
        );
        let events = kv.watch("/w/1", oldest).unwrap();
        assert!(events.windows(2).all(|w| w[0].revision < w[1].revision));
        kv.apply(&Command::Compact { below: 1000 }, 8).unwrap();
        assert_eq!(kv.meta.oldest, kv.meta.revision + 1);
        assert!(kv.watch("/", kv.meta.revision + 1).unwrap().is_empty());
    }

    #[test]
    fn a_batch_sees_its_own_writes() {
        let base = MemKv::default();
        let mut a = Applier::new(&base, base.meta, 100);
        a.apply(&create("/x", "1")).unwrap();
        assert!(a.apply(&create("/x", "2")).is_err());
        a.apply(&set("/x/y", "1")).unwrap();
        assert_eq!(
            a.apply(&delete("/x", None, false)),
            Err(StoreError::NotEmpty { path: "/x".into() })
        );
        let c = a.finish();
        assert_eq!(c.meta.revision, 2);
        assert_eq!(c.events.len(), 2);
    }
}
