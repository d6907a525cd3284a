//! Gossip payloads: strand's membership datagrams and requests (in the envelope), and the
//! SWIM packets inside them that foca decodes. Garbage from one sender leaves the receiver
//! able to take a genuine member's announce right after.

use std::net::SocketAddr;
use std::num::NonZeroU32;

use foca::{AccumulatingRuntime, Codec, Foca, PostcardCodec};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use strand::codec;
use strand::membership::wire::Datagram;
use strand::membership::{MemberStatus, MembershipReply, MembershipRequest, NodeId, Roles};

use super::alloc::{peak_bytes, DECODE_BUDGET};
use super::mutate::{mutated, mutations};

type Node = Foca<NodeId, PostcardCodec, StdRng, foca::NoCustomBroadcast>;

fn decode_header(bytes: &[u8]) -> Result<foca::Header<NodeId>, postcard::Error> {
    <PostcardCodec as Codec<NodeId>>::decode_header(&mut PostcardCodec, bytes)
}

fn id(name: &str, port: u16) -> NodeId {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    NodeId::new(name, addr, 1).with_metadata(Roles::PARTICIPANT.union(Roles::STORE), vec!["C".into()])
}

fn node(me: NodeId, seed: u64) -> Node {
    Foca::new(
        me,
        foca::Config::new_lan(NonZeroU32::new(8).unwrap()),
        StdRng::seed_from_u64(seed),
        PostcardCodec,
    )
}

/// Every packet `rt` was asked to send, in order.
fn drain(rt: &mut AccumulatingRuntime<NodeId>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some((_, bytes)) = rt.to_send() {
        out.push(bytes.to_vec());
    }
    while rt.to_schedule().is_some() {}
    while rt.to_notify().is_some() {}
    out
}

/// Genuine SWIM packets: `a`'s announce to `b`, `b`'s feed back, and a gossip round.
fn genuine_packets() -> Vec<Vec<u8>> {
    let (ia, ib) = (id("node-a", 7001), id("node-b", 7002));
    let (mut a, mut b) = (node(ia, 1), node(ib.clone(), 2));
    let (mut ra, mut rb) = (AccumulatingRuntime::new(), AccumulatingRuntime::new());
    a.announce(ib, &mut ra).unwrap();
    let mut packets = drain(&mut ra);
    for p in packets.clone() {
        b.handle_data(&p, &mut rb).unwrap();
    }
    let feed = drain(&mut rb);
    for p in &feed {
        a.handle_data(p, &mut ra).unwrap();
    }
    packets.extend(feed);
    a.gossip(&mut ra).unwrap();
    packets.extend(drain(&mut ra));
    assert!(packets.len() >= 2, "an announce and a feed at least");
    packets
}

/// The receiver, fed `garbage` (nothing may panic; errors are fine), then a genuine
/// announce from a third member: it must know that member afterwards.
fn receiver_survives(garbage: &[Vec<u8>]) -> Result<(), TestCaseError> {
    let ib = id("node-b", 7002);
    let mut b = node(ib.clone(), 2);
    let mut rb = AccumulatingRuntime::new();
    for g in garbage {
        let (_, held) = peak_bytes(|| {
            let _ = decode_header(g);
            let _ = b.handle_data(g, &mut rb);
        });
        prop_assert!(
            held <= DECODE_BUDGET.max(g.len() * 64),
            "{held} bytes held for {} bytes",
            g.len()
        );
        drain(&mut rb);
    }
    let ic = id("node-c", 7003);
    let mut c = node(ic.clone(), 3);
    let mut rc = AccumulatingRuntime::new();
    c.announce(ib, &mut rc).unwrap();
    for p in drain(&mut rc) {
        prop_assert!(
            b.handle_data(&p, &mut rb).is_ok(),
            "a genuine announce after garbage is taken"
        );
    }
    prop_assert!(
        b.iter_members().any(|m| m.id().name == ic.name),
        "the genuine member joined"
    );
    Ok(())
}

fn datagram() -> impl Strategy<Value = Datagram> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Datagram::Swim),
        ("[a-z0-9-]{0,12}", any::<u16>(), any::<u64>())
            .prop_map(|(n, port, g)| Datagram::Leave(NodeId::new(n, ([127, 0, 0, 1], port).into(), g))),
        ("[a-z0-9-]{0,12}", any::<u16>()).prop_map(|(n, incarnation)| Datagram::Suspected {
            id: id(&n, 1),
            incarnation
        }),
    ]
}

fn request() -> impl Strategy<Value = MembershipRequest> {
    prop_oneof![
        Just(MembershipRequest::Hello),
        Just(MembershipRequest::Members),
        ".{0,12}".prop_map(|n| MembershipRequest::Leave(id(&n, 9))),
    ]
}

fn decode_each(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (_, held) = peak_bytes(|| {
        let _ = codec::decode::<Datagram>(bytes);
        let _ = codec::decode::<MembershipRequest>(bytes);
        let _ = codec::decode::<MembershipReply>(bytes);
        let _ = codec::decode::<Vec<MemberStatus>>(bytes);
    });
    prop_assert!(held <= DECODE_BUDGET.max(bytes.len() * 64), "{held} bytes held");
    Ok(())
}

proptest! {
    #![proptest_config(super::config(256))]

    #[test]
    fn any_bytes_as_swim_packets_leave_the_receiver_working(garbage in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..6)) {
        receiver_survives(&garbage)?;
    }

    #[test]
    fn mutated_swim_packets_leave_the_receiver_working(which in any::<usize>(), ms in proptest::collection::vec(mutations(), 1..4)) {
        let genuine = genuine_packets();
        let base = &genuine[which % genuine.len()];
        let garbage: Vec<Vec<u8>> = ms.iter().map(|m| mutated(base, m, 0)).collect();
        receiver_survives(&garbage)?;
        // The same packets as strand's datagrams.
        for g in &garbage {
            decode_each(&codec::encode(&Datagram::Swim(g.clone())).unwrap())?;
        }
    }

    #[test]
    fn membership_datagrams_and_requests_round_trip(d in datagram(), r in request()) {
        prop_assert_eq!(codec::decode::<Datagram>(&codec::encode(&d).unwrap()).unwrap(), d);
        prop_assert_eq!(codec::decode::<MembershipRequest>(&codec::encode(&r).unwrap()).unwrap(), r);
    }

    #[test]
    fn any_and_mutated_membership_bytes_decode_or_are_refused(
        junk in proptest::collection::vec(any::<u8>(), 0..96),
        d in datagram(),
        r in request(),
        ms in mutations(),
    ) {
        decode_each(&junk)?;
        decode_each(&mutated(&codec::encode(&d).unwrap(), &ms, 3))?;
        decode_each(&mutated(&codec::encode(&r).unwrap(), &ms, 0))?;
        let reply = MembershipReply::Hello(id("node-a", 1));
        decode_each(&mutated(&codec::encode(&reply).unwrap(), &ms, 3))?;
    }
}

#[test]
fn genuine_packets_are_taken() {
    // The harness's own check: without garbage the receiver learns the third member, and
    // the genuine packets decode.
    receiver_survives(&[]).unwrap();
    for p in genuine_packets() {
        assert!(decode_header(&p).is_ok());
    }
}
