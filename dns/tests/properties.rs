//! Properties over arbitrary input: nothing panics, every reply is a DNS
//! message that answers the query it was given, and TCP deframing does not
//! depend on how the stream was split.

mod common;

use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::RecordType;
use proptest::prelude::*;
use switchyard_dns::{tcp_frame, DropReason, Outcome, TcpDeframer, Transport};

fn lab() -> Lab {
    let mut lab = Lab::new();
    lab.user_network("n1", "front");
    lab.endpoint(
        "e1",
        "n1",
        "web",
        &["api"],
        Some("172.18.0.2"),
        Some("fd00::2"),
    );
    for i in 0..40 {
        lab.endpoint(
            &format!("s{i}"),
            "n1",
            &format!("svc-{i}"),
            &["many"],
            Some(&format!("10.0.0.{}", i + 1)),
            None,
        );
    }
    lab
}

/// A valid query to start mutating from.
fn seed_query() -> impl Strategy<Value = Vec<u8>> {
    let names = prop::sample::select(vec![
        "web",
        "WEB.front",
        "api",
        "many",
        "example.com",
        "2.0.18.172.in-addr.arpa",
        "x.y.z",
    ]);
    let types = prop::sample::select(vec![
        RecordType::A,
        RecordType::AAAA,
        RecordType::PTR,
        RecordType::MX,
        RecordType::ANY,
    ]);
    (names, types, prop::option::of(any::<u16>())).prop_map(|(name, rtype, edns)| match edns {
        Some(payload) => query_edns(name, rtype, payload),
        None => query(name, rtype),
    })
}

/// Random bytes, or a valid query with some bytes changed and maybe cut.
fn packet() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..700),
        (
            seed_query(),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            prop::option::of(any::<prop::sample::Index>()),
        )
            .prop_map(|(mut bytes, flips, cut)| {
                for (at, value) in flips {
                    let at = at.index(bytes.len());
                    bytes[at] = value;
                }
                if let Some(cut) = cut {
                    bytes.truncate(cut.index(bytes.len() + 1));
                }
                bytes
            }),
    ]
}

fn check_outcome(
    bytes: &[u8],
    transport: Transport,
    outcome: Outcome,
    out: &[u8],
) -> Result<(), TestCaseError> {
    match outcome {
        Outcome::Reply {
            client,
            transport: t,
        } => {
            prop_assert_eq!(client, CLIENT);
            prop_assert_eq!(t, transport);
            let reply = Message::from_vec(out);
            prop_assert!(reply.is_ok(), "unparseable reply {:?} to {:?}", out, bytes);
            let reply = reply.unwrap();
            prop_assert_eq!(reply.metadata.message_type, MessageType::Response);
            prop_assert_eq!(&out[..2], &bytes[..2]);
            if transport == Transport::Udp {
                prop_assert!(out.len() <= 4096);
                if reply.edns.is_none() {
                    prop_assert!(out.len() <= 512);
                }
            }
        }
        Outcome::Forward { transport: t, .. } => {
            prop_assert_eq!(t, transport);
            // The client's query, verbatim but for the id.
            prop_assert_eq!(&out[2..], &bytes[2..]);
        }
        Outcome::Drop(reason) => {
            prop_assert!(out.is_empty());
            match reason {
                DropReason::TooShort => prop_assert!(bytes.len() < 12),
                DropReason::NotAQuery => prop_assert!(bytes[2] & 0x80 != 0),
                other => prop_assert!(false, "unexpected drop reason {:?}", other),
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_packet_gets_a_well_formed_reply_a_forward_or_a_drop(bytes in packet()) {
        let mut lab = lab();
        for transport in [Transport::Udp, Transport::Tcp] {
            let outcome = lab.send(&["n1"], transport, &bytes);
            let out = lab.out.clone();
            check_outcome(&bytes, transport, outcome, &out)?;
        }
    }

    #[test]
    fn any_upstream_message_is_relayed_retried_or_dropped_without_panic(
        bytes in packet(),
        keep_id in any::<bool>(),
    ) {
        let mut lab = lab();
        lab.send(&["n1"], Transport::Udp, &query("example.com", RecordType::A));
        let sent = lab.out.clone();
        let mut reply = bytes;
        if keep_id && reply.len() >= 2 {
            reply[..2].copy_from_slice(&sent[..2]);
        }
        let outcome = lab.upstream_sends(upstream(1), Transport::Udp, &reply);
        if let Outcome::Reply { .. } = outcome {
            prop_assert_eq!(&lab.out[..2], &CLIENT_ID.to_be_bytes()[..]);
            prop_assert!(lab.out.len() <= 512);
        }
        lab.advance(Duration::from_secs(10));
    }

    #[test]
    fn deframing_does_not_depend_on_how_the_stream_is_split(
        messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let mut stream = Vec::new();
        for m in &messages {
            tcp_frame(m, &mut stream).unwrap();
        }
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();
        let mut deframer = TcpDeframer::new();
        let mut got = Vec::new();
        for pair in points.windows(2) {
            deframer.push(&stream[pair[0]..pair[1]]).unwrap();
            while let Some(m) = deframer.next_message() {
                got.push(m.to_vec());
            }
        }
        prop_assert_eq!(got, messages);
        prop_assert_eq!(deframer.buffered(), 0);
    }
}
