//! Transport frames: request/message headers, answer headers, datagram prefixes.

use bytes::Bytes;
use proptest::prelude::*;
use strand::transport::frame::{
    decode_datagram, encode_datagram, AnswerHeader, FrameError, Header, Kind, Status, ANSWER_HEADER_LEN,
    FRAME_VERSION, HEADER_LEN, MAGIC, MAX_REASON_LEN,
};
use strand::transport::Service;

use super::alloc::peak_bytes;
use super::mutate::{mutated, mutations};

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Request), Just(Kind::Message)]
}

fn header() -> impl Strategy<Value = Header> {
    (kind(), any::<u16>(), any::<u32>()).prop_map(|(kind, s, len)| Header {
        kind,
        service: Service(s),
        len,
    })
}

proptest! {
    #![proptest_config(super::config(2048))]

    #[test]
    fn any_header_bytes_are_a_header_within_the_limit_or_a_named_error(
        bytes in prop_oneof![
            proptest::array::uniform10(any::<u8>()),
            // A valid start, so the later checks (kind, reserved byte, length) are reached.
            (0u8..4, any::<u8>(), proptest::array::uniform6(any::<u8>())).prop_map(|(kind, reserved, rest)| {
                let mut b = [0u8; HEADER_LEN];
                b[0] = MAGIC;
                b[1] = FRAME_VERSION;
                b[2] = kind;
                b[3] = if reserved < 200 { 0 } else { reserved };
                b[4..].copy_from_slice(&rest);
                b
            }),
        ],
        max in prop_oneof![Just(0usize), Just(usize::MAX), 0usize..1 << 24],
    ) {
        match Header::decode(&bytes, max) {
            Ok(h) => {
                prop_assert!(h.len as usize <= max);
                prop_assert_eq!(h.encode(), bytes);
            }
            Err(e) => prop_assert!(e.to_string().contains("header") || e.to_string().contains("exceeds"), "{e}"),
        }
        let mut answer = [0u8; ANSWER_HEADER_LEN];
        answer.copy_from_slice(&bytes[..ANSWER_HEADER_LEN]);
        if let Ok(a) = AnswerHeader::decode(&answer, max) {
            let limit = if a.status == Status::Ok { max } else { MAX_REASON_LEN };
            prop_assert!(a.len as usize <= limit);
            prop_assert_eq!(a.encode(), answer);
        }
    }

    #[test]
    fn headers_round_trip_and_a_declared_length_over_the_limit_costs_nothing(h in header(), max in 0usize..1 << 24) {
        let bytes = h.encode();
        prop_assert_eq!(bytes.len(), HEADER_LEN);
        let (decoded, held) = peak_bytes(|| Header::decode(&bytes, max));
        prop_assert_eq!(held, 0, "decoding a header allocates nothing");
        if h.len as usize <= max {
            prop_assert_eq!(decoded, Ok(h));
        } else {
            prop_assert_eq!(decoded, Err(FrameError::TooLarge { size: h.len as usize, max }));
        }
        let a = AnswerHeader { status: Status::Ok, len: h.len };
        prop_assert_eq!(AnswerHeader::decode(&a.encode(), usize::MAX), Ok(a));
        let refusal = AnswerHeader { status: Status::Refused, len: h.len };
        let r = AnswerHeader::decode(&refusal.encode(), usize::MAX);
        if h.len as usize <= MAX_REASON_LEN {
            prop_assert_eq!(r, Ok(refusal));
        } else {
            let too_large = matches!(r, Err(FrameError::TooLarge { .. }));
            prop_assert!(too_large, "a refusal reason is capped whatever the body limit");
        }
    }

    #[test]
    fn mutated_headers_never_pass_with_a_length_over_the_limit(h in header(), ms in mutations(), max in 0usize..1 << 20) {
        let bytes = mutated(&h.encode(), &ms, 0);
        if bytes.len() >= HEADER_LEN {
            let mut head = [0u8; HEADER_LEN];
            head.copy_from_slice(&bytes[..HEADER_LEN]);
            if let Ok(d) = Header::decode(&head, max) {
                prop_assert!(d.len as usize <= max);
            }
        }
    }

    #[test]
    fn datagrams_round_trip_and_any_bytes_decode_or_are_dropped(
        service in any::<u16>(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
        junk in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let d = encode_datagram(Service(service), &body);
        let (s, b) = decode_datagram(d).expect("an encoded datagram decodes");
        prop_assert_eq!(s, Service(service));
        prop_assert_eq!(b.as_ref(), &body[..]);
        if let Some((_, b)) = decode_datagram(Bytes::from(junk.clone())) {
            prop_assert_eq!(b.len() + 3, junk.len());
        }
    }
}
