//! Helix records in the store: reads that skip empty "directory" keys, guarded
//! transactions, and read-modify-write at the version read.
//!
//! ```text
//!   read(path)            value "" → no record (a directory key)   JSON → Record
//!   commit(guards, ops)   one transaction: if every guard's condition holds, the ops run;
//!                         otherwise the first guard found failing on a re-read is the error
//!   update(path, f)       read → f → commit with "version unchanged" → retry on a change
//! ```

use crate::model::{Layout, Record};
use crate::propertystore::{ClientError, Cmp, Condition, Op, Txn};

use super::{Admin, AdminError};

/// How many times a read-modify-write is tried before [`AdminError::Conflict`].
const UPDATE_ATTEMPTS: usize = 16;

/// How many times one transaction is sent when the store loses its leader meanwhile (each
/// unknown outcome is resolved by reading back before the next).
const COMMIT_ATTEMPTS: usize = 3;

/// A record as read, with its key's version (0: no such key).
#[derive(Debug, Clone, Default)]
pub(crate) struct Versioned {
    /// The record; `None` when the key is absent or holds an empty (directory) value.
    pub record: Option<Record>,
    /// The key's version (0 when absent).
    pub version: u64,
}

/// A condition a transaction needs, and the error to report when it does not hold.
#[derive(Debug)]
pub(crate) struct Guard {
    condition: Condition,
    error: AdminError,
}

impl Guard {
    /// The cluster exists (its config record is there).
    pub fn cluster(layout: &Layout) -> Guard {
        Guard {
            condition: Condition::Exists {
                path: layout.cluster_config(),
            },
            error: AdminError::ClusterNotFound {
                cluster: layout.cluster().to_string(),
            },
        }
    }

    /// The instance is configured.
    pub fn instance(layout: &Layout, instance: &str) -> Guard {
        Guard {
            condition: Condition::Exists {
                path: layout.instance_config(instance),
            },
            error: AdminError::InstanceNotFound {
                cluster: layout.cluster().to_string(),
                instance: instance.to_string(),
            },
        }
    }

    /// The resource has an ideal state.
    pub fn resource(layout: &Layout, resource: &str) -> Guard {
        Guard {
            condition: Condition::Exists {
                path: layout.ideal_state(resource),
            },
            error: AdminError::ResourceNotFound {
                cluster: layout.cluster().to_string(),
                resource: resource.to_string(),
            },
        }
    }

    /// The state model is defined.
    pub fn state_model(layout: &Layout, state_model: &str) -> Guard {
        Guard {
            condition: Condition::Exists {
                path: layout.state_model(state_model),
            },
            error: AdminError::StateModelNotFound {
                cluster: layout.cluster().to_string(),
                state_model: state_model.to_string(),
            },
        }
    }

    /// `path` is absent; `error` otherwise.
    pub fn missing(path: String, error: AdminError) -> Guard {
        Guard {
            condition: Condition::Missing { path },
            error,
        }
    }

    /// `path` is at `version` (0: absent); a conflict otherwise.
    pub fn version(path: &str, version: u64) -> Guard {
        Guard {
            condition: Condition::Version {
                path: path.to_string(),
                cmp: Cmp::Eq,
                version,
            },
            error: AdminError::Conflict {
                path: path.to_string(),
            },
        }
    }
}

/// The value a record is stored as: Helix's pretty JSON, as `zkCli get` shows it.
pub(crate) fn encode(record: &Record) -> Vec<u8> {
    record.to_helix_json().into_bytes()
}

/// A `Set` of `record` at `path`.
pub(crate) fn put(path: String, record: &Record) -> Op {
    Op::Set {
        path,
        value: encode(record),
        expected_version: None,
    }
}

/// A `Set` of an empty (directory) value at `path`.
pub(crate) fn dir(path: String) -> Op {
    Op::Set {
        path,
        value: Vec::new(),
        expected_version: None,
    }
}

/// A non-recursive `Delete` of `path`.
pub(crate) fn delete(path: String) -> Op {
    Op::Delete {
        path,
        expected_version: None,
        recursive: false,
    }
}

fn versioned(path: &str, got: Option<&crate::propertystore::Record>) -> Result<Versioned, AdminError> {
    match got {
        None => Ok(Versioned::default()),
        Some(r) => Ok(Versioned {
            record: decode(path, &r.value)?,
            version: r.stat.version,
        }),
    }
}

/// Parses a stored value: `None` for an empty (directory) value.
pub(crate) fn decode(path: &str, value: &[u8]) -> Result<Option<Record>, AdminError> {
    if value.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let text = std::str::from_utf8(value).map_err(|_| {
        AdminError::record(
            path,
            crate::model::RecordError::Json {
                reason: "the value is not UTF-8 text".into(),
            },
        )
    })?;
    Record::from_json(text)
        .map(Some)
        .map_err(|e| AdminError::record(path, e))
}

impl Admin {
    /// Reads the record at `path` (none for an absent key or a directory key).
    pub(crate) async fn read(&self, path: &str) -> Result<Versioned, AdminError> {
        let got = self
            .store
            .get(path)
            .await
            .map_err(|e| AdminError::store(format!("reading {path}"), e))?;
        versioned(path, got.as_ref())
    }

    /// [`Admin::read`] through the client's cache: never older than this client's own
    /// acknowledged writes, but possibly older than others'.
    pub(crate) async fn read_cached(&self, path: &str) -> Result<Versioned, AdminError> {
        let got = self
            .store
            .cached_get_shared(path)
            .await
            .map_err(|e| AdminError::store(format!("reading {path}"), e))?;
        versioned(path, got.as_deref())
    }

    /// The record at `path`, if there is one.
    pub(crate) async fn record(&self, path: &str) -> Result<Option<Record>, AdminError> {
        Ok(self.read(path).await?.record)
    }

    /// Whether the key `path` exists (directory keys included).
    pub(crate) async fn key_exists(&self, path: &str) -> Result<bool, AdminError> {
        self.store
            .get(path)
            .await
            .map(|r| r.is_some())
            .map_err(|e| AdminError::store(format!("reading {path}"), e))
    }

    /// The names under `path`, sorted.
    pub(crate) async fn children(&self, path: &str) -> Result<Vec<String>, AdminError> {
        let mut names = self
            .store
            .children(path)
            .await
            .map_err(|e| AdminError::store(format!("listing {path}"), e))?;
        names.sort();
        Ok(names)
    }

    async fn holds(&self, condition: &Condition) -> Result<bool, AdminError> {
        Ok(match condition {
            Condition::Exists { path } => self.key_exists(path).await?,
            Condition::Missing { path } => !self.key_exists(path).await?,
            Condition::Version { path, cmp, version } => {
                let actual = self.read_version(path).await?;
                match cmp {
                    Cmp::Eq => actual == *version,
                    Cmp::Ne => actual != *version,
                    Cmp::Lt => actual < *version,
                    Cmp::Gt => actual > *version,
                }
            }
            // Not used by the admin's guards; treat as "changed under us".
            Condition::Value { .. } => false,
        })
    }

    async fn read_version(&self, path: &str) -> Result<u64, AdminError> {
        self.store
            .get(path)
            .await
            .map(|r| r.map_or(0, |r| r.stat.version))
            .map_err(|e| AdminError::store(format!("reading {path}"), e))
    }

    /// Runs `ops` in one transaction if every guard holds. When one does not, the first
    /// guard found failing on a re-read gives the error; if all hold again by then, the
    /// store changed in between and the result is [`AdminError::Conflict`] on `what`.
    pub(crate) async fn commit(
        &self,
        what: &str,
        guards: Vec<Guard>,
        ops: Vec<Op>,
    ) -> Result<(), AdminError> {
        if ops.is_empty() {
            return Ok(());
        }
        let txn = Txn {
            conditions: guards.iter().map(|g| g.condition.clone()).collect(),
            success: ops,
            failure: Vec::new(),
        };
        let mut attempt = 0;
        let written = loop {
            attempt += 1;
            match self.store.txn(txn.clone()).await {
                Ok(w) => break w,
                // The store lost its leader while the write was in flight: read back what
                // is there now (a linearizable read, served once a new leader has decided
                // the fate of every earlier entry) to learn whether it was applied.
                Err(ClientError::OutcomeUnknown { reason }) if attempt < COMMIT_ATTEMPTS => {
                    match self.applied(&txn).await {
                        Some(true) => return Ok(()),
                        Some(false) => continue,
                        None => return Err(AdminError::store(what, ClientError::OutcomeUnknown { reason })),
                    }
                }
                Err(e) => return Err(AdminError::store(what, e)),
            }
        };
        if written.succeeded {
            return Ok(());
        }
        for guard in guards {
            if !self.holds(&guard.condition).await? {
                return Err(guard.error);
            }
        }
        Err(AdminError::Conflict {
            path: what.to_string(),
        })
    }

    /// Whether `txn`, whose outcome is unknown, was applied ([`applied_verdict`] over what
    /// the store holds now); `None` also when the store does not answer.
    async fn applied(&self, txn: &Txn) -> Option<bool> {
        let mut now = Vec::with_capacity(txn.success.len());
        for op in &txn.success {
            let got = self.store.get(op.path()).await.ok()?;
            now.push(got.map(|r| r.value.to_vec()));
        }
        let mut conditions_hold = true;
        for condition in &txn.conditions {
            conditions_hold &= self.holds(condition).await.ok()?;
        }
        applied_verdict(&txn.success, &now, conditions_hold)
    }

    /// Read-modify-write of the record at `path`: `f` gets the current record (none when
    /// absent) and returns the new one, or `None` to write nothing. The write happens only
    /// if every guard holds and the key is still at the version read; a concurrent change
    /// makes it start over (at most [`UPDATE_ATTEMPTS`] times). Returns the record written
    /// (or the current one when nothing was written).
    pub(crate) async fn update<F>(
        &self,
        path: &str,
        guards: impl Fn() -> Vec<Guard>,
        mut f: F,
    ) -> Result<Option<Record>, AdminError>
    where
        F: FnMut(Option<Record>) -> Result<Option<Record>, AdminError>,
    {
        for attempt in 0..UPDATE_ATTEMPTS {
            // The first attempt reads through the client's cache (never older than this
            // client's own writes; usually no round trip). A stale record only fails the
            // version guard below and the next attempt reads linearizably.
            let cached = attempt == 0;
            let current = if cached {
                self.read_cached(path).await?
            } else {
                self.read(path).await?
            };
            let Some(new) = f(current.record.clone())? else {
                if cached {
                    // "Nothing to write" must not rest on a stale read.
                    continue;
                }
                return Ok(current.record);
            };
            let mut all = guards();
            all.push(Guard::version(path, current.version));
            match self
                .commit(&format!("writing {path}"), all, vec![put(path.to_string(), &new)])
                .await
            {
                Ok(()) => return Ok(Some(new)),
                Err(AdminError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(AdminError::Conflict {
            path: path.to_string(),
        })
    }

    /// Like [`Admin::update`] for a record that must exist: a missing one is `missing()`.
    pub(crate) async fn update_existing<F>(
        &self,
        path: &str,
        guards: impl Fn() -> Vec<Guard>,
        missing: impl Fn() -> AdminError,
        mut f: F,
    ) -> Result<Record, AdminError>
    where
        F: FnMut(&mut Record) -> Result<bool, AdminError>,
    {
        let written = self
            .update(path, guards, |current| {
                let mut record = current.ok_or_else(&missing)?;
                Ok(f(&mut record)?.then_some(record))
            })
            .await?;
        written.ok_or_else(missing)
    }
}

/// Whether a transaction whose outcome is unknown was applied, from the value now at each of
/// its ops' keys (`now[i]` for `ops[i]`, `None` when absent): `Some(true)` when every write
/// is visible, `Some(false)` when none is and its conditions still hold (running it again is
/// safe), `None` when it cannot be told.
fn applied_verdict(ops: &[Op], now: &[Option<Vec<u8>>], conditions_hold: bool) -> Option<bool> {
    let visible = ops
        .iter()
        .zip(now)
        .filter(|(op, now)| match op {
            Op::Create { value, .. } | Op::Set { value, .. } => now.as_ref() == Some(value),
            Op::Delete { .. } => now.is_none(),
        })
        .count();
    if visible == ops.len() {
        Some(true)
    } else if visible == 0 && conditions_hold {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_outcome_is_told_from_what_the_store_holds() {
        let ops = vec![
            Op::Create {
                path: "/a".into(),
                value: b"1".to_vec(),
            },
            Op::Delete {
                path: "/b".into(),
                expected_version: None,
                recursive: false,
            },
        ];
        let v = |a: Option<&[u8]>, b: Option<&[u8]>| vec![a.map(<[u8]>::to_vec), b.map(<[u8]>::to_vec)];
        // Both writes visible: applied.
        assert_eq!(applied_verdict(&ops, &v(Some(b"1"), None), false), Some(true));
        // Neither visible, conditions hold: not applied, safe to send again.
        assert_eq!(applied_verdict(&ops, &v(None, Some(b"x")), true), Some(false));
        // Neither visible but the conditions no longer hold: cannot tell.
        assert_eq!(applied_verdict(&ops, &v(None, Some(b"x")), false), None);
        // One visible, one not (someone else wrote meanwhile): cannot tell.
        assert_eq!(applied_verdict(&ops, &v(Some(b"1"), Some(b"x")), true), None);
        assert_eq!(applied_verdict(&ops, &v(Some(b"2"), None), true), None);
    }

    #[test]
    fn empty_values_are_directories_not_records() {
        assert_eq!(decode("/C/IDEALSTATES", b"").unwrap(), None);
        assert_eq!(decode("/C/IDEALSTATES", b" \n").unwrap(), None);
        let r = decode("/C/IDEALSTATES/db", Record::new("db").to_helix_json().as_bytes()).unwrap();
        assert_eq!(r.unwrap().id, "db");
        let e = decode("/C/IDEALSTATES/db", b"{oops").unwrap_err();
        assert!(e.to_string().starts_with("/C/IDEALSTATES/db: "), "{e}");
    }
}
