//! Reply sizes: EDNS payload honoured, TC when an answer does not fit,
//! TCP's larger limit, and the OPT record in replies.

mod common;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use switchyard_dns::Transport;

/// `n` containers sharing the alias "api".
fn lab_with_shared_alias(n: u16) -> Lab {
    let mut lab = Lab::new();
    lab.user_network("n1", "front");
    for i in 0..n {
        let addr = format!("10.1.{}.{}", i / 250, 1 + i % 250);
        lab.endpoint(
            &format!("e{i}"),
            "n1",
            &format!("api-{i}"),
            &["api"],
            Some(&addr),
            None,
        );
    }
    lab
}

#[test]
fn answer_too_big_for_512_bytes_without_edns_is_truncated() {
    let mut lab = lab_with_shared_alias(60);
    let reply = lab.ask(&["n1"], "api", RecordType::A);
    assert!(reply.metadata.truncation);
    assert!(reply.answers.is_empty());
    assert_eq!(reply.queries.len(), 1);
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    assert!(lab.out.len() <= 512);
    assert_eq!(lab.resolver.stats().truncated, 1);
}

#[test]
fn answer_that_fits_512_bytes_is_not_truncated() {
    let mut lab = lab_with_shared_alias(20);
    let reply = lab.ask(&["n1"], "api", RecordType::A);
    assert!(!reply.metadata.truncation);
    assert_eq!(reply.answers.len(), 20);
}

#[test]
fn edns_payload_size_is_honoured() {
    let mut lab = lab_with_shared_alias(60);
    lab.send(
        &["n1"],
        Transport::Udp,
        &query_edns("api", RecordType::A, 4096),
    );
    let reply = decode(&lab.out);
    assert!(!reply.metadata.truncation);
    assert_eq!(reply.answers.len(), 60);
}

#[test]
fn answer_over_the_edns_payload_size_is_truncated() {
    let mut lab = lab_with_shared_alias(100);
    lab.send(
        &["n1"],
        Transport::Udp,
        &query_edns("api", RecordType::A, 1232),
    );
    let reply = decode(&lab.out);
    assert!(reply.metadata.truncation);
    assert!(reply.answers.is_empty());
    assert!(lab.out.len() <= 1232);
}

#[test]
fn edns_payload_below_512_counts_as_512() {
    let mut lab = lab_with_shared_alias(20);
    lab.send(
        &["n1"],
        Transport::Udp,
        &query_edns("api", RecordType::A, 100),
    );
    let reply = decode(&lab.out);
    assert!(!reply.metadata.truncation);
    assert_eq!(reply.answers.len(), 20);
}

#[test]
fn edns_payload_above_4096_counts_as_4096() {
    let mut lab = lab_with_shared_alias(300);
    lab.send(
        &["n1"],
        Transport::Udp,
        &query_edns("api", RecordType::A, 65000),
    );
    let reply = decode(&lab.out);
    assert!(reply.metadata.truncation);
    assert!(lab.out.len() <= 4096);
}

#[test]
fn tcp_answers_are_not_truncated_at_udp_sizes() {
    let mut lab = lab_with_shared_alias(300);
    lab.send(&["n1"], Transport::Tcp, &query("api", RecordType::A));
    let reply = decode(&lab.out);
    assert!(!reply.metadata.truncation);
    assert_eq!(reply.answers.len(), 300);
}

#[test]
fn reply_carries_opt_only_when_the_query_did() {
    let mut lab = lab_with_shared_alias(1);
    lab.send(
        &["n1"],
        Transport::Udp,
        &query_edns("api", RecordType::A, 1232),
    );
    let edns = decode(&lab.out).edns.expect("OPT in reply");
    assert_eq!(edns.version(), 0);
    lab.send(&["n1"], Transport::Udp, &query("api", RecordType::A));
    assert!(decode(&lab.out).edns.is_none());
}

#[test]
fn truncated_reply_keeps_the_opt_record() {
    let mut lab = lab_with_shared_alias(100);
    lab.send(
        &["n1"],
        Transport::Udp,
        &query_edns("api", RecordType::A, 1232),
    );
    assert!(decode(&lab.out).edns.is_some());
}

#[test]
fn unsupported_edns_version_gets_badvers() {
    let mut lab = lab_with_shared_alias(1);
    let mut m = query_message("api", RecordType::A);
    let mut edns = hickory_proto::op::Edns::new();
    edns.set_version(1);
    m.set_edns(edns);
    lab.send(&["n1"], Transport::Udp, &m.to_vec().unwrap());
    let reply = decode(&lab.out);
    // 16 is BADVERS in an OPT-carrying reply (hickory names it BADSIG, its
    // TSIG meaning).
    assert_eq!(u16::from(rcode(&reply)), 16);
    assert!(reply.edns.is_some());
    assert!(reply.answers.is_empty());
}
