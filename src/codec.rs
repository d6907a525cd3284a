//! The versioned binary envelope used for everything strand puts on the wire or on disk.
//!
//! ```text
//!   +-------+---------+-----------------------+
//!   | magic | version | postcard(payload)     |
//!   | "ST"  |  u8     |                       |
//!   +-------+---------+-----------------------+
//! ```
//!
//! The version is the envelope format's version; a payload type evolves by adding
//! variants/fields in ways postcard can still read, or by bumping [`ENVELOPE_VERSION`].
//! JSON is for people and for Helix-shaped records, never for strand's own wire format.

use serde::{de::DeserializeOwned, Serialize};

/// Two bytes that open every envelope.
pub const MAGIC: [u8; 2] = *b"ST";
/// The envelope format this build writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;

/// Why bytes could not be turned into a value (or back). No state is changed by any of these.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    /// The input is shorter than the envelope header.
    #[error("envelope truncated: {len} bytes, the header alone needs 3")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// The input does not start with strand's magic bytes.
    #[error("not a strand envelope (magic {found:02x?})")]
    BadMagic {
        /// The two bytes found.
        found: [u8; 2],
    },
    /// The envelope was written by an incompatible format version.
    #[error("envelope version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion {
        /// Version in the envelope.
        found: u8,
        /// Version this build reads.
        supported: u8,
    },
    /// The payload did not decode as the expected type.
    #[error("malformed payload: {reason}")]
    Malformed {
        /// postcard's description of the problem.
        reason: String,
    },
    /// The value could not be encoded.
    #[error("cannot encode value: {reason}")]
    Encode {
        /// postcard's description of the problem.
        reason: String,
    },
}

/// Encodes `value` into a versioned envelope.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&MAGIC);
    out.push(ENVELOPE_VERSION);
    postcard::to_extend(value, out).map_err(|e| CodecError::Encode {
        reason: e.to_string(),
    })
}

/// Decodes a versioned envelope. Trailing bytes after the payload are refused.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() < 3 {
        return Err(CodecError::Truncated { len: bytes.len() });
    }
    let magic = [bytes[0], bytes[1]];
    if magic != MAGIC {
        return Err(CodecError::BadMagic { found: magic });
    }
    if bytes[2] != ENVELOPE_VERSION {
        return Err(CodecError::UnsupportedVersion {
            found: bytes[2],
            supported: ENVELOPE_VERSION,
        });
    }
    let (value, rest) = postcard::take_from_bytes(&bytes[3..]).map_err(|e| CodecError::Malformed {
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(CodecError::Malformed {
            reason: format!("{} trailing bytes after the payload", rest.len()),
        });
    }
    Ok(value)
}

/// `#[serde(with = "crate::codec::bytes")]` for a `Vec<u8>` field: one length and one copy
/// instead of a sequence of single bytes. postcard writes both forms identically (a varint
/// length, then the bytes), so data written either way reads either way.
pub mod bytes {
    use std::fmt;

    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    /// Serializes `v` as a byte string.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    /// Deserializes a byte string, or a sequence of bytes (JSON's form).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Probe {
        name: String,
        generation: u64,
    }

    #[test]
    fn round_trips() {
        let p = Probe {
            name: "localhost_12913".into(),
            generation: 7,
        };
        let bytes = encode(&p).unwrap();
        assert_eq!(&bytes[..3], b"ST\x01");
        assert_eq!(decode::<Probe>(&bytes).unwrap(), p);
    }

    #[test]
    fn refuses_bad_envelopes() {
        assert_eq!(decode::<Probe>(b"S"), Err(CodecError::Truncated { len: 1 }));
        assert!(matches!(
            decode::<Probe>(b"XX\x01\x00"),
            Err(CodecError::BadMagic { .. })
        ));
        assert!(matches!(
            decode::<Probe>(b"ST\x09\x00"),
            Err(CodecError::UnsupportedVersion {
                found: 9,
                supported: 1
            })
        ));
        assert!(matches!(
            decode::<Probe>(b"ST\x01\xff\xff"),
            Err(CodecError::Malformed { .. })
        ));
        let mut bytes = encode(&Probe {
            name: "a".into(),
            generation: 1,
        })
        .unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<Probe>(&bytes),
            Err(CodecError::Malformed { .. })
        ));
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Plain {
        value: Vec<u8>,
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct AsBytes {
        #[serde(with = "super::bytes")]
        value: Vec<u8>,
    }

    #[test]
    fn byte_fields_read_and_write_like_plain_vectors() {
        for value in [vec![], vec![0u8, 1, 255], vec![7u8; 300]] {
            let plain = encode(&Plain { value: value.clone() }).unwrap();
            let bytes = encode(&AsBytes { value: value.clone() }).unwrap();
            assert_eq!(plain, bytes, "the same bytes on the wire and on disk");
            assert_eq!(decode::<AsBytes>(&plain).unwrap().value, value);
            assert_eq!(decode::<Plain>(&bytes).unwrap().value, value);
            let json = serde_json::to_string(&AsBytes { value: value.clone() }).unwrap();
            assert_eq!(serde_json::from_str::<AsBytes>(&json).unwrap().value, value);
        }
    }
}
