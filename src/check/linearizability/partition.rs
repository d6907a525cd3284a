//! P-compositionality: a history over independent keys is linearizable if and only if the
//! history of each key is. Operations that touch several keys (transactions) join their keys
//! into one partition, so each partition is the smallest set of keys no operation crosses.

use std::collections::BTreeMap;

use super::Operation;

/// One partition: its keys (sorted) and the indices of its operations in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Part {
    pub keys: Vec<String>,
    pub ops: Vec<usize>,
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

/// Splits `history` into partitions, in the order of their first key. An operation that
/// touches no key forms a partition of its own.
pub(super) fn partitions(history: &[Operation]) -> Vec<Part> {
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    for op in history {
        for k in op.call.keys() {
            let next = ids.len();
            ids.entry(k).or_insert(next);
        }
    }
    let mut parent: Vec<usize> = (0..ids.len()).collect();
    for op in history {
        let keys = op.call.keys();
        for pair in keys.windows(2) {
            let (a, b) = (find(&mut parent, ids[pair[0]]), find(&mut parent, ids[pair[1]]));
            parent[a] = b;
        }
    }
    let mut by_root: BTreeMap<usize, Part> = BTreeMap::new();
    for (k, &id) in &ids {
        let root = find(&mut parent, id);
        by_root
            .entry(root)
            .or_insert_with(|| Part {
                keys: Vec::new(),
                ops: Vec::new(),
            })
            .keys
            .push(k.to_string());
    }
    let mut keyless = Vec::new();
    for (i, op) in history.iter().enumerate() {
        match op.call.keys().first() {
            Some(k) => {
                let root = find(&mut parent, ids[k]);
                if let Some(p) = by_root.get_mut(&root) {
                    p.ops.push(i);
                }
            }
            None => keyless.push(Part {
                keys: Vec::new(),
                ops: vec![i],
            }),
        }
    }
    let mut parts: Vec<Part> = by_root.into_values().collect();
    parts.sort_by(|a, b| a.keys.cmp(&b.keys));
    parts.extend(keyless);
    parts
}

#[cfg(test)]
mod tests {
    use super::super::{Call, Operation, Ret};
    use super::*;

    fn op(call: Call) -> Operation {
        Operation {
            client: 0,
            call,
            ret: Ret::Unknown,
            invoke: 0,
            complete: 0,
        }
    }

    #[test]
    fn single_key_operations_split_by_key_and_transactions_join_keys() {
        let get = |k: &str| op(Call::Get { key: k.into() });
        let h = [
            get("a"),
            get("b"),
            get("c"),
            op(Call::Txn {
                conditions: vec![("a".into(), 0)],
                puts: vec![("c".into(), 1)],
            }),
            get("a"),
            op(Call::Txn {
                conditions: vec![],
                puts: vec![],
            }),
        ];
        assert_eq!(
            partitions(&h),
            vec![
                Part {
                    keys: vec!["a".into(), "c".into()],
                    ops: vec![0, 2, 3, 4]
                },
                Part {
                    keys: vec!["b".into()],
                    ops: vec![1]
                },
                Part {
                    keys: vec![],
                    ops: vec![5]
                },
            ]
        );
    }
}
