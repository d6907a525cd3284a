//! The workload of `strand bench linearizability` and what it records: client tasks doing
//! random gets, puts, compare-and-sets and two-key transactions over a few keys, each
//! operation with its invocation and answer times; and watchers recording every event of the
//! keys' prefix.
//!
//! A write answered `OutcomeUnknown` (or by an answer that does not fit it) is recorded with
//! an unknown outcome; a write refused as `Unavailable` was not applied (the client's
//! contract), so it is left out — if it had been applied, a read of its value would show a
//! violation. A failed read tells nothing and is left out.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::check::linearizability::store::{
    command, decode_value, ret_of_read, ret_of_store_error, ret_of_written,
};
use crate::check::linearizability::{Call, Operation, Ret, Value};
use crate::check::watch::{Seen, Settled, WatchEvent};
use crate::propertystore::{ClientError, Command, EventKind, PropertyStore};

/// The keys' common prefix.
pub const PREFIX: &str = "/linz/";

/// How the workload's gets are served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gets {
    /// Linearizable gets at the leader (`PropertyStore::get`).
    #[default]
    Leader,
    /// The client's cache (`PropertyStore::cached_get`), recorded as if linearizable: a
    /// planted fault the checker must catch (the cache lags other clients' writes).
    Cache,
}

/// A small seeded xorshift generator: one per client task.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the clients did and saw.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Every operation, in the order answers arrived.
    pub history: Vec<Operation>,
    /// Each acknowledged write's revision, by index into `history`.
    pub revisions: Vec<Option<u64>>,
}

impl Recorded {
    /// Every (key, version) → value a client saw: acknowledged writes (with their revision)
    /// and reads.
    pub fn seen(&self) -> Vec<Seen> {
        let mut out = Vec::new();
        for (o, rev) in self.history.iter().zip(&self.revisions) {
            match (&o.call, &o.ret) {
                (Call::Get { key }, Ret::Get(Some(v))) => out.push(Seen {
                    key: key.clone(),
                    version: v.version,
                    value: v.value,
                    revision: None,
                }),
                (Call::Put { key, value } | Call::Cas { key, value, .. }, Ret::Written { version }) => out
                    .push(Seen {
                        key: key.clone(),
                        version: *version,
                        value: *value,
                        revision: *rev,
                    }),
                (
                    Call::Txn { puts, .. },
                    Ret::Txn {
                        succeeded: true,
                        versions,
                    },
                ) => {
                    // A key put twice in one transaction shows only its last put.
                    let last = |i: usize| !puts[i + 1..].iter().any(|(k, _)| *k == puts[i].0);
                    for (i, ((key, value), version)) in puts.iter().zip(versions).enumerate() {
                        if last(i) {
                            out.push(Seen {
                                key: key.clone(),
                                version: *version,
                                value: *value,
                                revision: *rev,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }
}

/// The shared state of one run's client tasks.
#[derive(Clone)]
pub struct Workload {
    /// Keys (`/linz/k0` …).
    pub keys: u64,
    /// How gets are served.
    pub gets: Gets,
    /// The run's time origin.
    pub base: Instant,
    /// Set to stop the tasks.
    pub stop: Arc<AtomicBool>,
    /// A pause after each operation (zero: none), to keep a long run's history checkable.
    pub pace: std::time::Duration,
    /// The next unique value.
    next_value: Arc<AtomicU64>,
    /// What they recorded.
    pub recorded: Arc<Mutex<Recorded>>,
}

impl Workload {
    /// A workload over `keys` keys.
    pub fn new(keys: u64, gets: Gets) -> Workload {
        Workload {
            keys,
            gets,
            base: crate::clock::now(),
            stop: Arc::new(AtomicBool::new(false)),
            pace: std::time::Duration::ZERO,
            next_value: Arc::new(AtomicU64::new(1)),
            recorded: Arc::new(Mutex::new(Recorded::default())),
        }
    }

    fn now(&self) -> u64 {
        crate::clock::now()
            .saturating_duration_since(self.base)
            .as_nanos() as u64
    }

    fn key(&self, i: u64) -> String {
        format!("{PREFIX}k{i}")
    }

    /// A random call: 40% gets, 25% puts, 25% compare-and-sets on the version this client
    /// last saw, 10% transactions writing two keys if one is at the version last seen.
    fn call(&self, rng: &mut Rng, last_version: &[u64]) -> Call {
        let k = rng.below(self.keys);
        let value = || self.next_value.fetch_add(1, Ordering::Relaxed);
        match rng.below(20) {
            0..=7 => Call::Get { key: self.key(k) },
            8..=12 => Call::Put {
                key: self.key(k),
                value: value(),
            },
            13..=17 => Call::Cas {
                key: self.key(k),
                expected: last_version[k as usize],
                value: value(),
            },
            _ => {
                let other = (k + 1 + rng.below(self.keys.max(2) - 1)) % self.keys;
                Call::Txn {
                    conditions: vec![(self.key(k), last_version[k as usize])],
                    puts: vec![(self.key(k), value()), (self.key(other), value())],
                }
            }
        }
    }

    /// One client task: operations one after another until stopped.
    pub async fn client(self, client: PropertyStore, id: u32, seed: u64) {
        let mut rng = Rng((seed ^ (u64::from(id) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
        let mut last_version = vec![0u64; self.keys as usize];
        let index = |key: &str| -> usize {
            key.strip_prefix(PREFIX)
                .and_then(|k| k.strip_prefix('k'))
                .and_then(|k| k.parse().ok())
                .unwrap_or(0)
        };
        while !self.stop.load(Ordering::Relaxed) {
            let call = self.call(&mut rng, &last_version);
            let invoke = self.now();
            let (ret, revision) = match &call {
                Call::Get { key } => {
                    let read = match self.gets {
                        Gets::Leader => client.get(key).await,
                        Gets::Cache => client.cached_get(key).await,
                    };
                    match read {
                        Ok(r) => (ret_of_read(r.as_ref()), None),
                        Err(_) => {
                            backoff().await;
                            continue;
                        }
                    }
                }
                write => {
                    let Some(cmd) = command(write) else { continue };
                    let answer = match cmd {
                        Command::Txn(txn) => client.txn(txn).await,
                        other => client.write(other).await,
                    };
                    match answer {
                        Ok(w) => match ret_of_written(write, &w) {
                            Some(ret) => (ret, Some(w.revision)),
                            None => (Ret::Unknown, None),
                        },
                        Err(ClientError::Store(e)) => match ret_of_store_error(write, &e) {
                            Some(ret) => (ret, None),
                            None => {
                                backoff().await;
                                continue;
                            }
                        },
                        // Nothing was applied (no replica reached, or refused before
                        // anything was done): not an operation of the history.
                        Err(
                            ClientError::Unavailable { .. }
                            | ClientError::Authentication { .. }
                            | ClientError::PermissionDenied(_),
                        ) => {
                            backoff().await;
                            continue;
                        }
                        Err(ClientError::OutcomeUnknown { .. } | ClientError::Protocol { .. }) => {
                            (Ret::Unknown, None)
                        }
                    }
                }
            };
            let complete = self.now();
            match (&call, &ret) {
                (Call::Get { key }, Ret::Get(Some(v))) => last_version[index(key)] = v.version,
                (Call::Put { key, .. } | Call::Cas { key, .. }, Ret::Written { version }) => {
                    last_version[index(key)] = *version
                }
                (Call::Cas { key, .. }, Ret::CasFailed { actual }) => last_version[index(key)] = *actual,
                (Call::Txn { puts, .. }, Ret::Txn { versions, .. }) => {
                    for ((key, _), v) in puts.iter().zip(versions) {
                        last_version[index(key)] = *v;
                    }
                }
                _ => {}
            }
            {
                let mut r = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
                r.history.push(Operation {
                    client: id,
                    call,
                    ret,
                    invoke,
                    complete,
                });
                r.revisions.push(revision);
            }
            if !self.pace.is_zero() {
                tokio::time::sleep(self.pace).await;
            }
        }
    }
}

/// Settles `recorded`'s writes of unknown outcome from a complete, checked watch stream (see
/// [`crate::check::watch::settle_unknown`]): applied ones get their answer and revision,
/// ones that never took effect leave the history. Returns how many were settled.
pub fn settle(recorded: &mut Recorded, events: &[WatchEvent]) -> usize {
    let settled = crate::check::watch::settle_unknown(&recorded.history, events);
    let mut never = std::collections::BTreeSet::new();
    for (i, s) in &settled {
        match s {
            Settled::Applied { ret, revision } => {
                recorded.history[*i].ret = ret.clone();
                recorded.revisions[*i] = Some(*revision);
            }
            Settled::Never => {
                never.insert(*i);
            }
        }
    }
    let keep = |i: &usize| !never.contains(i);
    let (history, revisions) = std::mem::take(&mut recorded.history)
        .into_iter()
        .zip(std::mem::take(&mut recorded.revisions))
        .enumerate()
        .filter(|(i, _)| keep(i))
        .map(|(_, pair)| pair)
        .unzip();
    recorded.history = history;
    recorded.revisions = revisions;
    settled.len()
}

/// A pause after a failed request, so a client does not spin while no leader answers.
async fn backoff() {
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
}

/// One watcher's events from `from` on, until it has passed `until` (`u64::MAX` until the
/// run's last revision is known).
pub async fn watch(
    client: PropertyStore,
    from: u64,
    until: Arc<AtomicU64>,
    give_up: Instant,
) -> Result<Vec<WatchEvent>, String> {
    let mut watcher = client.watch(PREFIX, from);
    let mut events = Vec::new();
    loop {
        if watcher.next_revision() > until.load(Ordering::Acquire) {
            return Ok(events);
        }
        if crate::clock::now() > give_up {
            return Err(format!(
                "the watch reached revision {} only, not {}",
                watcher.next_revision(),
                until.load(Ordering::Acquire)
            ));
        }
        let batch = tokio::time::timeout(std::time::Duration::from_millis(500), watcher.next_batch()).await;
        // On an error or a timeout the watcher resumes from where it was on its next call.
        if let Ok(Ok(batch)) = batch {
            for e in batch {
                let EventKind::Put { value, stat } = e.kind else {
                    return Err(format!(
                        "a delete of {} at revision {}: nothing deletes",
                        e.path, e.revision
                    ));
                };
                events.push(WatchEvent {
                    revision: e.revision,
                    key: e.path,
                    value: decode_value(&value),
                    version: stat.version,
                });
            }
        }
    }
}

/// Every value a write of `history` may have written: not those of a compare-and-set or
/// transaction whose answer says it changed nothing.
pub fn sent_values(history: &[Operation]) -> std::collections::BTreeSet<Value> {
    history
        .iter()
        .filter(|o| !matches!(o.ret, Ret::CasFailed { .. } | Ret::Txn { succeeded: false, .. }))
        .flat_map(|o| o.call.written_values())
        .collect()
}

/// Writes `key` once the store answers again after a run (retrying every 100 ms until
/// `deadline`); returns the write's revision: the last one the watchers must reach.
pub async fn final_write(
    probe: &PropertyStore,
    key: &str,
    deadline: Instant,
) -> Result<u64, crate::cli::CliError> {
    loop {
        match probe.set(key, b"2", None).await {
            Ok(stat) => return Ok(stat.mod_revision),
            Err(e) if crate::clock::now() > deadline => {
                return Err(crate::cli::CliError::failed(format!(
                    "the store did not answer after the run: {e}"
                )))
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
}
