//! Mutations of valid encodings: what a buggy or hostile peer sends that is almost right.

use proptest::prelude::*;

/// One change to a valid encoding.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Flip one bit (index taken modulo the length).
    FlipBit(usize, u8),
    /// Keep only the first `n` bytes (modulo the length).
    Truncate(usize),
    /// Insert bytes at a position.
    Insert(usize, Vec<u8>),
    /// Overwrite a byte with any value.
    Set(usize, u8),
    /// Put a huge varint (a length or count far beyond the input) at a position,
    /// replacing `replaced` bytes there.
    HugeVarint(usize, usize, u64),
    /// Append bytes.
    Append(Vec<u8>),
}

/// A huge postcard varint: a length or count from 2^20 up to 2^64 - 1.
fn huge() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(u64::MAX),
        Just(u32::MAX as u64),
        Just(1u64 << 32),
        (1u64 << 20)..u64::MAX,
    ]
}

/// Any [`Mutation`].
pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), 0usize..3, huge()).prop_map(|(i, r, v)| Mutation::HugeVarint(i, r, v)),
        proptest::collection::vec(any::<u8>(), 1..8).prop_map(Mutation::Append),
    ]
}

/// Several mutations, applied in order.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..4)
}

/// postcard's varint of `v`.
pub fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// `bytes` after `m`; `skip` leading bytes (a header checked elsewhere) are left alone
/// by positional mutations when the input is longer than them.
pub fn apply(bytes: &mut Vec<u8>, m: &Mutation, skip: usize) {
    let pos = |i: usize, len: usize| -> usize {
        if len > skip {
            skip + i % (len - skip)
        } else if len == 0 {
            0
        } else {
            i % len
        }
    };
    match m {
        Mutation::FlipBit(i, b) if !bytes.is_empty() => {
            let p = pos(*i, bytes.len());
            bytes[p] ^= 1 << b;
        }
        Mutation::Truncate(n) => {
            let keep = n % (bytes.len() + 1);
            bytes.truncate(keep);
        }
        Mutation::Insert(i, b) => {
            let p = pos(*i, bytes.len() + 1).min(bytes.len());
            bytes.splice(p..p, b.iter().copied());
        }
        Mutation::Set(i, v) if !bytes.is_empty() => {
            let p = pos(*i, bytes.len());
            bytes[p] = *v;
        }
        Mutation::HugeVarint(i, replaced, v) => {
            let p = pos(*i, bytes.len() + 1).min(bytes.len());
            let end = (p + replaced).min(bytes.len());
            bytes.splice(p..end, varint(*v));
        }
        Mutation::Append(b) => bytes.extend_from_slice(b),
        _ => {}
    }
}

/// `bytes` after every mutation of `ms`.
pub fn mutated(bytes: &[u8], ms: &[Mutation], skip: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for m in ms {
        apply(&mut out, m, skip);
    }
    out
}

/// Text after mutations of its bytes, kept only where still UTF-8 (lossily otherwise).
pub fn mutated_text(text: &str, ms: &[Mutation]) -> String {
    String::from_utf8_lossy(&mutated(text.as_bytes(), ms, 0)).into_owned()
}

#[test]
fn varints_are_postcards() {
    assert_eq!(varint(0), [0]);
    assert_eq!(varint(300), [0xac, 0x02]);
    assert_eq!(varint(u32::MAX as u64), [0xff, 0xff, 0xff, 0xff, 0x0f]);
    let mut v = vec![1, 2, 3];
    apply(&mut v, &Mutation::HugeVarint(1, 1, 300), 0);
    assert_eq!(v, [1, 0xac, 0x02, 3]);
}
