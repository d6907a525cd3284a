//! The property store's vocabulary in the model's terms: the command a [`Call`] sends and the
//! [`Ret`] an answer means. A recorder writes each value as its decimal text; a value read
//! that is not such a text becomes [`FOREIGN`], which no recorded write carries.

use crate::propertystore::core::{Cmp, Command, Condition, Op, OpOutcome, Record, StoreError, Txn, Written};

use super::model::{Call, Ret, Value, Versioned};

/// The value a read of bytes no recorder wrote is mapped to.
pub const FOREIGN: Value = Value::MAX;

/// The bytes a recorder writes for `value`.
pub fn encode_value(value: Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

/// The value `bytes` name, or [`FOREIGN`].
pub fn decode_value(bytes: &[u8]) -> Value {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|v| *v != FOREIGN)
        .unwrap_or(FOREIGN)
}

/// The command that carries out a write call (`None` for a get).
pub fn command(call: &Call) -> Option<Command> {
    let set = |key: &String, value: &Value, expected_version| Op::Set {
        path: key.clone(),
        value: encode_value(*value),
        expected_version,
    };
    match call {
        Call::Get { .. } => None,
        Call::Put { key, value } => Some(Command::Txn(Txn::single(set(key, value, None)))),
        Call::Cas { key, expected, value } => {
            Some(Command::Txn(Txn::single(set(key, value, Some(*expected)))))
        }
        Call::Txn { conditions, puts } => Some(Command::Txn(Txn {
            conditions: conditions
                .iter()
                .map(|(k, v)| Condition::Version {
                    path: k.clone(),
                    cmp: Cmp::Eq,
                    version: *v,
                })
                .collect(),
            success: puts.iter().map(|(k, v)| set(k, v, None)).collect(),
            failure: Vec::new(),
        })),
    }
}

/// What a read's answer means.
pub fn ret_of_read(record: Option<&Record>) -> Ret {
    Ret::Get(record.map(|r| Versioned {
        value: decode_value(&r.value),
        version: r.stat.version,
    }))
}

/// What an acknowledged write of `call` means (`None`: the answer does not fit the call, a
/// protocol error to report rather than check).
pub fn ret_of_written(call: &Call, written: &Written) -> Option<Ret> {
    let versions: Vec<u64> = written
        .ops
        .iter()
        .filter_map(|o| match o {
            OpOutcome::Put { stat, .. } => Some(stat.version),
            OpOutcome::Deleted { .. } => None,
        })
        .collect();
    match call {
        Call::Get { .. } => None,
        Call::Put { .. } | Call::Cas { .. } => match versions[..] {
            [version] if written.succeeded => Some(Ret::Written { version }),
            _ => None,
        },
        Call::Txn { .. } => Some(Ret::Txn {
            succeeded: written.succeeded,
            versions,
        }),
    }
}

/// What a store error answering a write means: a compare-and-set that found another version
/// changed nothing and says so; any other refusal changed nothing and tells nothing (`None`:
/// leave the operation out of the history).
pub fn ret_of_store_error(call: &Call, error: &StoreError) -> Option<Ret> {
    match (call, error) {
        (Call::Cas { .. }, StoreError::VersionMismatch { actual, .. }) => {
            Some(Ret::CasFailed { actual: *actual })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_anything_else_is_foreign() {
        assert_eq!(decode_value(&encode_value(42)), 42);
        assert_eq!(decode_value(b"forty-two"), FOREIGN);
        assert_eq!(decode_value(&encode_value(FOREIGN)), FOREIGN);
    }
}
