//! The QUIC transport's wire framing: pure encoding and checking, no I/O.
//!
//! Each request and each one-way message gets its own bidirectional stream:
//!
//! ```text
//!   requester → responder   | 'S' | ver | kind | 0 | service u16 | len u32 | body (len) |
//!   responder → requester   | status u8 | len u32 | body or refusal reason (len) |
//! ```
//!
//! (integers big-endian; `kind` 1 = request, 2 = one-way message, whose answer is an empty
//! "ok" once the peer's inbox has it). A datagram is `| ver | service u16 | body |`.
//! The declared length is checked against the receiver's maximum before anything else is
//! read, so an oversized frame costs the receiver 10 bytes.

use bytes::{BufMut, Bytes, BytesMut};

use super::Service;

/// The first byte of every stream header.
pub const MAGIC: u8 = b'S';
/// The framing version this build writes and reads.
pub const FRAME_VERSION: u8 = 1;
/// Bytes in a request or message header.
pub const HEADER_LEN: usize = 10;
/// Bytes in an answer header.
pub const ANSWER_HEADER_LEN: usize = 5;
/// Bytes in a datagram's prefix.
pub const DATAGRAM_PREFIX_LEN: usize = 3;
/// The longest refusal reason carried; longer ones are cut.
pub const MAX_REASON_LEN: usize = 4096;

/// What a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A request that gets one answer.
    Request,
    /// A one-way message; the answer is an empty acknowledgement of delivery.
    Message,
}

/// A request or message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Request or message.
    pub kind: Kind,
    /// The service it is for.
    pub service: Service,
    /// Body length in bytes.
    pub len: u32,
}

/// Why a header could not be accepted. Each refuses one stream; the connection carries on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The first byte is not strand's.
    #[error("malformed header: bad magic byte {found:#04x}")]
    BadMagic {
        /// The byte found.
        found: u8,
    },
    /// A framing version this build does not read.
    #[error("malformed header: framing version {found} is not supported (this build reads {FRAME_VERSION})")]
    UnsupportedVersion {
        /// The version found.
        found: u8,
    },
    /// An unknown frame kind.
    #[error("malformed header: unknown kind {found}")]
    UnknownKind {
        /// The kind byte found.
        found: u8,
    },
    /// The reserved byte is not zero.
    #[error("malformed header: reserved byte is {found}, not 0")]
    Reserved {
        /// The byte found.
        found: u8,
    },
    /// The declared body is larger than the receiver accepts.
    #[error("frame of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The declared size.
        size: usize,
        /// The receiver's maximum.
        max: usize,
    },
    /// An answer's status byte is unknown.
    #[error("malformed answer: unknown status {found}")]
    BadStatus {
        /// The status byte found.
        found: u8,
    },
}

impl Header {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = MAGIC;
        out[1] = FRAME_VERSION;
        out[2] = match self.kind {
            Kind::Request => 1,
            Kind::Message => 2,
        };
        out[3] = 0;
        out[4..6].copy_from_slice(&self.service.0.to_be_bytes());
        out[6..10].copy_from_slice(&self.len.to_be_bytes());
        out
    }

    /// Reads a header and checks the body length against `max`.
    pub fn decode(bytes: &[u8; HEADER_LEN], max: usize) -> Result<Header, FrameError> {
        if bytes[0] != MAGIC {
            return Err(FrameError::BadMagic { found: bytes[0] });
        }
        if bytes[1] != FRAME_VERSION {
            return Err(FrameError::UnsupportedVersion { found: bytes[1] });
        }
        let kind = match bytes[2] {
            1 => Kind::Request,
            2 => Kind::Message,
            found => return Err(FrameError::UnknownKind { found }),
        };
        if bytes[3] != 0 {
            return Err(FrameError::Reserved { found: bytes[3] });
        }
        let service = Service(u16::from_be_bytes([bytes[4], bytes[5]]));
        let len = u32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
        if len as usize > max {
            return Err(FrameError::TooLarge {
                size: len as usize,
                max,
            });
        }
        Ok(Header { kind, service, len })
    }
}

/// How the responder answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The body is the answer.
    Ok,
    /// The body is a UTF-8 reason for refusing.
    Refused,
}

/// An answer header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerHeader {
    /// Ok or refused.
    pub status: Status,
    /// Body length in bytes.
    pub len: u32,
}

impl AnswerHeader {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; ANSWER_HEADER_LEN] {
        let mut out = [0u8; ANSWER_HEADER_LEN];
        out[0] = match self.status {
            Status::Ok => 0,
            Status::Refused => 1,
        };
        out[1..5].copy_from_slice(&self.len.to_be_bytes());
        out
    }

    /// Reads an answer header; an ok body may be up to `max`, a reason up to
    /// [`MAX_REASON_LEN`].
    pub fn decode(bytes: &[u8; ANSWER_HEADER_LEN], max: usize) -> Result<AnswerHeader, FrameError> {
        let status = match bytes[0] {
            0 => Status::Ok,
            1 => Status::Refused,
            found => return Err(FrameError::BadStatus { found }),
        };
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let limit = match status {
            Status::Ok => max,
            Status::Refused => MAX_REASON_LEN,
        };
        if len as usize > limit {
            return Err(FrameError::TooLarge {
                size: len as usize,
                max: limit,
            });
        }
        Ok(AnswerHeader { status, len })
    }
}

/// A refusal reason cut to [`MAX_REASON_LEN`] bytes at a character boundary.
pub fn clip_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// A datagram for `service`: prefix and body.
pub fn encode_datagram(service: Service, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(DATAGRAM_PREFIX_LEN + body.len());
    out.put_u8(FRAME_VERSION);
    out.put_u16(service.0);
    out.put_slice(body);
    out.freeze()
}

/// The service and body of a received datagram; `None` for anything malformed.
pub fn decode_datagram(datagram: Bytes) -> Option<(Service, Bytes)> {
    if datagram.len() < DATAGRAM_PREFIX_LEN || datagram[0] != FRAME_VERSION {
        return None;
    }
    let service = Service(u16::from_be_bytes([datagram[1], datagram[2]]));
    Some((service, datagram.slice(DATAGRAM_PREFIX_LEN..)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn headers_round_trip() {
        let h = Header {
            kind: Kind::Message,
            service: Service::RAFT,
            len: 70_000,
        };
        assert_eq!(Header::decode(&h.encode(), 70_000), Ok(h));
        assert_eq!(
            Header::decode(&h.encode(), 69_999),
            Err(FrameError::TooLarge {
                size: 70_000,
                max: 69_999
            })
        );
        let a = AnswerHeader {
            status: Status::Refused,
            len: 12,
        };
        assert_eq!(AnswerHeader::decode(&a.encode(), 0), Ok(a));
        let (service, body) = decode_datagram(encode_datagram(Service::MEMBERSHIP, b"ping")).unwrap();
        assert_eq!((service, body.as_ref()), (Service::MEMBERSHIP, &b"ping"[..]));
    }

    #[test]
    fn malformed_headers_are_named() {
        let mut b = Header {
            kind: Kind::Request,
            service: Service::STORE,
            len: 1,
        }
        .encode();
        b[0] = b'X';
        assert!(matches!(Header::decode(&b, 10), Err(FrameError::BadMagic { .. })));
        b[0] = MAGIC;
        b[1] = 9;
        assert!(matches!(
            Header::decode(&b, 10),
            Err(FrameError::UnsupportedVersion { found: 9 })
        ));
        b[1] = FRAME_VERSION;
        b[2] = 7;
        assert!(matches!(
            Header::decode(&b, 10),
            Err(FrameError::UnknownKind { found: 7 })
        ));
        b[2] = 1;
        b[3] = 1;
        assert!(matches!(
            Header::decode(&b, 10),
            Err(FrameError::Reserved { found: 1 })
        ));
        assert!(decode_datagram(Bytes::from_static(b"\x01\x00")).is_none());
        assert!(decode_datagram(Bytes::from_static(b"\x09\x00\x01x")).is_none());
    }

    #[test]
    fn long_reasons_are_clipped_at_a_char_boundary() {
        let long = "é".repeat(MAX_REASON_LEN);
        let clipped = clip_reason(&long);
        assert!(clipped.len() <= MAX_REASON_LEN && clipped.len() >= MAX_REASON_LEN - 1);
        assert_eq!(clip_reason("short"), "short");
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::array::uniform10(any::<u8>()), max in 0usize..1 << 20) {
            if let Ok(h) = Header::decode(&bytes, max) {
                prop_assert!(h.len as usize <= max);
                prop_assert_eq!(h.encode(), bytes);
            }
            let answer: [u8; ANSWER_HEADER_LEN] = [bytes[0], bytes[1], bytes[2], bytes[3], bytes[4]];
            if let Ok(a) = AnswerHeader::decode(&answer, max) {
                prop_assert_eq!(a.encode(), answer);
            }
            let _ = decode_datagram(Bytes::copy_from_slice(&bytes[..(max % 11)]));
        }
    }
}
