//! What malformed or unsupported messages get: FORMERR, NOTIMP, or nothing.

mod common;

use common::*;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::RecordType;
use switchyard_dns::{DropReason, Outcome, Transport};

fn lab() -> Lab {
    let mut lab = Lab::new();
    lab.user_network("n1", "front");
    lab.endpoint("e1", "n1", "web", &[], Some("172.18.0.2"), None);
    lab
}

fn header_only(id: u16, flags: u16, qdcount: u16) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&flags.to_be_bytes());
    h.extend_from_slice(&qdcount.to_be_bytes());
    h.extend_from_slice(&[0; 6]);
    h
}

#[test]
fn fewer_than_twelve_bytes_are_dropped() {
    let mut lab = lab();
    let outcome = lab.send(&["n1"], Transport::Udp, &[0x12, 0x34, 0x01]);
    assert_eq!(outcome, Outcome::Drop(DropReason::TooShort));
    assert!(lab.out.is_empty());
    assert_eq!(lab.resolver.stats().dropped_malformed, 1);
}

#[test]
fn responses_sent_to_the_server_are_dropped() {
    let mut lab = lab();
    let mut bytes = query("web", RecordType::A);
    bytes[2] |= 0x80;
    assert_eq!(
        lab.send(&["n1"], Transport::Udp, &bytes),
        Outcome::Drop(DropReason::NotAQuery)
    );
}

#[test]
fn garbage_after_a_header_gets_formerr_with_the_id_echoed() {
    let mut lab = lab();
    let mut bytes = header_only(0x4242, 0x0100, 1);
    bytes.extend_from_slice(&[0x3F, 1, 2, 3]);
    let outcome = lab.send(&["n1"], Transport::Udp, &bytes);
    assert_eq!(outcome, reply_to_client(Transport::Udp));
    let reply = decode(&lab.out);
    assert_eq!(reply.metadata.id, 0x4242);
    assert_eq!(reply.metadata.message_type, MessageType::Response);
    assert_eq!(rcode(&reply), ResponseCode::FormErr);
    assert_eq!(lab.resolver.stats().formerr, 1);
}

#[test]
fn no_question_is_formerr() {
    let mut lab = lab();
    lab.send(&["n1"], Transport::Udp, &header_only(7, 0x0100, 0));
    assert_eq!(rcode(&decode(&lab.out)), ResponseCode::FormErr);
}

#[test]
fn two_questions_are_formerr() {
    let mut lab = lab();
    let mut m = query_message("web", RecordType::A);
    m.add_query(hickory_proto::op::Query::query(
        "db.".parse().unwrap(),
        RecordType::A,
    ));
    lab.send(&["n1"], Transport::Udp, &m.to_vec().unwrap());
    let reply = decode(&lab.out);
    assert_eq!(rcode(&reply), ResponseCode::FormErr);
    assert_eq!(reply.metadata.id, CLIENT_ID);
}

#[test]
fn truncated_question_is_formerr() {
    let mut lab = lab();
    let bytes = query("web", RecordType::A);
    lab.send(&["n1"], Transport::Udp, &bytes[..bytes.len() - 2]);
    assert_eq!(rcode(&decode(&lab.out)), ResponseCode::FormErr);
}

#[test]
fn other_opcodes_get_notimp() {
    let mut lab = lab();
    for op in [OpCode::Notify, OpCode::Update, OpCode::Status] {
        let mut m = Message::new(9, MessageType::Query, op);
        m.add_query(hickory_proto::op::Query::query(
            "web.".parse().unwrap(),
            RecordType::SOA,
        ));
        lab.send(&["n1"], Transport::Udp, &m.to_vec().unwrap());
        let reply = decode(&lab.out);
        assert_eq!(rcode(&reply), ResponseCode::NotImp, "{op:?}");
        assert_eq!(reply.metadata.op_code, op);
        assert_eq!(reply.metadata.id, 9);
    }
    assert_eq!(lab.resolver.stats().notimp, 3);
}

#[test]
fn malformed_query_over_tcp_gets_formerr_over_tcp() {
    let mut lab = lab();
    let outcome = lab.send(&["n1"], Transport::Tcp, &header_only(1, 0, 2));
    assert_eq!(outcome, reply_to_client(Transport::Tcp));
}
