//! Forwarding unknown names upstream: ids, matching, failover, bounds.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use switchyard_dns::{DropReason, Outcome, ResolverConfig, Transport, UPSTREAM_SUSPECT_FOR};

const ANSWER: &str = "93.184.216.34";

fn lab() -> Lab {
    let mut lab = Lab::new();
    lab.user_network("n1", "front");
    lab
}

/// Sends a query for example.com and returns the bytes forwarded upstream.
fn forward(lab: &mut Lab, transport: Transport) -> (Outcome, Vec<u8>) {
    let outcome = lab.send(&["n1"], transport, &query("example.com", RecordType::A));
    (outcome, lab.out.clone())
}

/// The outcome of a query sent to upstream `n` over UDP.
fn udp_to(n: u8) -> Outcome {
    Outcome::Forward {
        upstream: upstream(n),
        transport: Transport::Udp,
    }
}

fn ok_reply(forwarded: &[u8]) -> Vec<u8> {
    upstream_reply(
        forwarded,
        ResponseCode::NoError,
        Some(ANSWER.parse().unwrap()),
    )
}

#[test]
fn unknown_name_goes_to_the_first_upstream_with_a_new_id_and_the_same_question() {
    let mut lab = lab();
    let (outcome, sent) = forward(&mut lab, Transport::Udp);
    assert_eq!(outcome, udp_to(1));
    let sent = decode(&sent);
    assert_ne!(sent.metadata.id, CLIENT_ID);
    assert_eq!(
        sent.queries,
        query_message("example.com", RecordType::A).queries
    );
    assert_eq!(lab.resolver.in_flight(), 1);
}

#[test]
fn upstream_answer_is_relayed_with_the_client_id_restored() {
    let mut lab = lab();
    let (_, sent) = forward(&mut lab, Transport::Udp);
    let outcome = lab.upstream_sends(upstream(1), Transport::Udp, &ok_reply(&sent));
    assert_eq!(outcome, reply_to_client(Transport::Udp));
    let reply = decode(&lab.out);
    assert_eq!(reply.metadata.id, CLIENT_ID);
    assert_eq!(
        v4_answers(&reply),
        vec![ANSWER.parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert_eq!(lab.resolver.in_flight(), 0);
}

#[test]
fn tcp_queries_are_forwarded_over_tcp() {
    let mut lab = lab();
    let (outcome, sent) = forward(&mut lab, Transport::Tcp);
    assert_eq!(
        outcome,
        Outcome::Forward {
            upstream: upstream(1),
            transport: Transport::Tcp
        }
    );
    let outcome = lab.upstream_sends(upstream(1), Transport::Tcp, &ok_reply(&sent));
    assert_eq!(outcome, reply_to_client(Transport::Tcp));
}

#[test]
fn reply_over_the_other_transport_is_dropped() {
    let mut lab = lab();
    let (_, sent) = forward(&mut lab, Transport::Tcp);
    let outcome = lab.upstream_sends(upstream(1), Transport::Udp, &ok_reply(&sent));
    assert_eq!(outcome, Outcome::Drop(DropReason::Unmatched));
}

#[test]
fn reply_with_an_unknown_id_is_dropped_and_counted() {
    let mut lab = lab();
    let (_, sent) = forward(&mut lab, Transport::Udp);
    let mut reply = ok_reply(&sent);
    reply[0] ^= 0xFF;
    let outcome = lab.upstream_sends(upstream(1), Transport::Udp, &reply);
    assert_eq!(outcome, Outcome::Drop(DropReason::Unmatched));
    assert_eq!(lab.resolver.stats().dropped_unmatched, 1);
    assert_eq!(lab.resolver.in_flight(), 1);
}

#[test]
fn reply_from_another_address_is_dropped() {
    let mut lab = lab();
    let (_, sent) = forward(&mut lab, Transport::Udp);
    let outcome = lab.upstream_sends(upstream(2), Transport::Udp, &ok_reply(&sent));
    assert_eq!(outcome, Outcome::Drop(DropReason::Unmatched));
}

#[test]
fn reply_for_another_question_is_dropped() {
    let mut lab = lab();
    let (_, sent) = forward(&mut lab, Transport::Udp);
    let mut other = query_message("example.org", RecordType::A);
    other.metadata.id = decode(&sent).metadata.id;
    let reply = ok_reply(&other.to_vec().unwrap());
    let outcome = lab.upstream_sends(upstream(1), Transport::Udp, &reply);
    assert_eq!(outcome, Outcome::Drop(DropReason::Unmatched));
}

#[test]
fn spoofed_reply_does_not_cancel_the_real_one() {
    let mut lab = lab();
    let (_, sent) = forward(&mut lab, Transport::Udp);
    lab.upstream_sends(upstream(3), Transport::Udp, &ok_reply(&sent));
    let outcome = lab.upstream_sends(upstream(1), Transport::Udp, &ok_reply(&sent));
    assert_eq!(outcome, reply_to_client(Transport::Udp));
}

#[test]
fn duplicate_reply_is_dropped() {
    let mut lab = lab();
    let (_, sent) = forward(&mut lab, Transport::Udp);
    lab.upstream_sends(upstream(1), Transport::Udp, &ok_reply(&sent));
    let outcome = lab.upstream_sends(upstream(1), Transport::Udp, &ok_reply(&sent));
    assert_eq!(outcome, Outcome::Drop(DropReason::Unmatched));
}

#[test]
fn garbage_from_upstream_is_dropped() {
    let mut lab = lab();
    forward(&mut lab, Transport::Udp);
    let outcome = lab.upstream_sends(upstream(1), Transport::Udp, b"\x01\x02\x03");
    assert_eq!(outcome, Outcome::Drop(DropReason::MalformedReply));
}

#[test]
fn upstream_answer_in_another_case_reaches_the_client_in_its_own_case() {
    let mut lab = lab();
    lab.send(
        &["n1"],
        Transport::Udp,
        &query("ExAmPlE.com", RecordType::A),
    );
    let sent = lab.out.clone();
    let mut reply = ok_reply(&sent);
    reply[13..20].make_ascii_lowercase();
    let outcome = lab.upstream_sends(upstream(1), Transport::Udp, &reply);
    assert_eq!(outcome, reply_to_client(Transport::Udp));
    assert_eq!(decode(&lab.out).queries[0].name.to_ascii(), "ExAmPlE.com.");
}

#[test]
fn timeout_moves_on_to_the_next_upstream_under_the_same_id() {
    let mut lab = lab();
    let (_, first) = forward(&mut lab, Transport::Udp);
    assert_eq!(
        lab.resolver.next_deadline(),
        Some(lab.now + Duration::from_secs(2))
    );
    assert!(lab.advance(Duration::from_millis(1999)).is_empty());
    let emitted = lab.advance(Duration::from_millis(1));
    assert_eq!(emitted.len(), 1);
    assert_eq!(emitted[0].0, udp_to(2));
    assert_eq!(
        decode(&emitted[0].1).metadata.id,
        decode(&first).metadata.id,
        "the same id, so a late answer to the first attempt still matches"
    );
    assert_eq!(lab.resolver.stats().upstream_timeouts, 1);
}

#[test]
fn a_late_answer_from_a_timed_out_upstream_is_relayed_while_the_query_waits() {
    let mut lab = lab();
    let (_, first) = forward(&mut lab, Transport::Udp);
    lab.advance(Duration::from_secs(2)); // on to upstream 2
    let outcome = lab.upstream_sends(upstream(1), Transport::Udp, &ok_reply(&first));
    assert_eq!(outcome, reply_to_client(Transport::Udp));
    let reply = decode(&lab.out);
    assert_eq!(reply.metadata.id, CLIENT_ID);
    assert_eq!(lab.resolver.stats().late_relayed, 1);
    assert_eq!(lab.resolver.in_flight(), 0);
    assert_eq!(
        lab.resolver.next_deadline(),
        None,
        "upstream 2's timer is gone"
    );
    // Upstream 2's answer, arriving after, matches nothing.
    let outcome = lab.upstream_sends(upstream(2), Transport::Udp, &ok_reply(&first));
    assert_eq!(outcome, Outcome::Drop(DropReason::Unmatched));
}

#[test]
fn a_late_failure_from_a_timed_out_upstream_does_not_cut_the_current_attempt() {
    let mut lab = lab();
    let (_, first) = forward(&mut lab, Transport::Udp);
    lab.advance(Duration::from_secs(2)); // on to upstream 2
    let outcome = lab.upstream_sends(
        upstream(1),
        Transport::Udp,
        &upstream_reply(&first, ResponseCode::ServFail, None),
    );
    assert_eq!(outcome, Outcome::Drop(DropReason::LateFailure));
    assert_eq!(lab.resolver.stats().late_failures, 1);
    assert_eq!(lab.resolver.in_flight(), 1);
    let outcome = lab.upstream_sends(upstream(2), Transport::Udp, &ok_reply(&first));
    assert_eq!(outcome, reply_to_client(Transport::Udp));
    assert_eq!(lab.resolver.stats().late_relayed, 0);
}

#[test]
fn an_answer_after_the_final_servfail_matches_nothing() {
    let mut lab = lab();
    let (_, first) = forward(&mut lab, Transport::Udp);
    for _ in 0..3 {
        lab.advance(Duration::from_secs(2));
    }
    assert_eq!(lab.resolver.in_flight(), 0);
    let outcome = lab.upstream_sends(upstream(1), Transport::Udp, &ok_reply(&first));
    assert_eq!(outcome, Outcome::Drop(DropReason::Unmatched));
}

#[test]
fn an_answer_from_an_upstream_never_asked_matches_nothing() {
    let mut lab = lab();
    let (_, first) = forward(&mut lab, Transport::Udp);
    lab.advance(Duration::from_secs(2)); // asked: 1, then 2; never 3
    let outcome = lab.upstream_sends(upstream(3), Transport::Udp, &ok_reply(&first));
    assert_eq!(outcome, Outcome::Drop(DropReason::Unmatched));
    assert_eq!(lab.resolver.in_flight(), 1);
}

#[test]
fn an_upstream_that_timed_out_is_tried_last_for_a_while() {
    let mut lab = lab();
    forward(&mut lab, Transport::Udp);
    lab.advance(Duration::from_secs(2)); // upstream 1 times out; on to 2
                                         // The next query goes to upstream 2 first, not through 1's timeout.
    let (outcome, sent) = forward(&mut lab, Transport::Udp);
    assert_eq!(outcome, udp_to(2));
    assert_eq!(lab.resolver.stats().suspect_skipped, 1);
    // If 2 and 3 fail, 1 still gets its turn before SERVFAIL.
    let outcome = lab.upstream_sends(
        upstream(2),
        Transport::Udp,
        &upstream_reply(&sent, ResponseCode::ServFail, None),
    );
    assert_eq!(outcome, udp_to(3));
    let sent = lab.out.clone();
    let outcome = lab.upstream_sends(
        upstream(3),
        Transport::Udp,
        &upstream_reply(&sent, ResponseCode::ServFail, None),
    );
    assert_eq!(outcome, udp_to(1));
}

#[test]
fn a_suspect_upstream_is_first_again_after_the_suspect_period() {
    let mut lab = lab();
    forward(&mut lab, Transport::Udp);
    let emitted = lab.advance(Duration::from_secs(2));
    // Upstream 2 answers the retry, so nothing stays in flight.
    lab.upstream_sends(upstream(2), Transport::Udp, &ok_reply(&emitted[0].1));
    lab.advance(UPSTREAM_SUSPECT_FOR - Duration::from_millis(1));
    assert_eq!(
        forward(&mut lab, Transport::Udp).0,
        udp_to(2),
        "still suspect"
    );
    let (_, sent) = forward(&mut lab, Transport::Udp);
    lab.upstream_sends(upstream(2), Transport::Udp, &ok_reply(&sent));
    lab.advance(Duration::from_millis(1));
    assert_eq!(
        forward(&mut lab, Transport::Udp).0,
        udp_to(1),
        "the suspect period is over"
    );
}

#[test]
fn an_answer_from_a_suspect_upstream_clears_it() {
    let mut lab = Lab::with_config(ResolverConfig {
        upstreams: vec![upstream(1), upstream(2)],
        ..ResolverConfig::default()
    });
    lab.user_network("n1", "front");
    // Both time out: both suspect, and the query ends in SERVFAIL.
    forward(&mut lab, Transport::Udp);
    lab.advance(Duration::from_secs(2));
    lab.advance(Duration::from_secs(2));
    // With every upstream suspect, list order holds: 1 first. It answers.
    let (outcome, sent) = forward(&mut lab, Transport::Udp);
    assert_eq!(outcome, udp_to(1));
    lab.upstream_sends(upstream(1), Transport::Udp, &ok_reply(&sent));
    // 1 is healthy again, 2 still suspect: 1 first, and nothing skipped.
    let skipped = lab.resolver.stats().suspect_skipped;
    assert_eq!(forward(&mut lab, Transport::Udp).0, udp_to(1));
    assert_eq!(lab.resolver.stats().suspect_skipped, skipped);
}

#[test]
fn an_upstream_listed_twice_is_asked_once() {
    let mut lab = Lab::with_config(ResolverConfig {
        upstreams: vec![upstream(1), upstream(1), upstream(2)],
        ..ResolverConfig::default()
    });
    lab.user_network("n1", "front");
    assert_eq!(lab.resolver.config().upstreams, [upstream(1), upstream(2)]);
    forward(&mut lab, Transport::Udp);
    lab.advance(Duration::from_secs(2)); // 1 times out: on to 2
                                         // 1 is suspect: the next query goes to 2 first.
    assert_eq!(forward(&mut lab, Transport::Udp).0, udp_to(2));
    lab.resolver
        .set_upstreams(&[upstream(3), upstream(3), upstream(3), upstream(1)]);
    assert_eq!(lab.resolver.config().upstreams, [upstream(3), upstream(1)]);
}

#[test]
fn new_upstreams_start_healthy() {
    let mut lab = lab();
    forward(&mut lab, Transport::Udp);
    lab.advance(Duration::from_secs(2));
    lab.resolver.set_upstreams(&[upstream(1), upstream(2)]);
    assert_eq!(forward(&mut lab, Transport::Udp).0, udp_to(1));
}

#[test]
fn upstream_timeout_is_configurable() {
    let mut lab = Lab::with_config(ResolverConfig {
        upstreams: vec![upstream(1), upstream(2)],
        upstream_timeout: Duration::from_millis(300),
        ..ResolverConfig::default()
    });
    lab.user_network("n1", "front");
    forward(&mut lab, Transport::Udp);
    assert_eq!(lab.advance(Duration::from_millis(300)).len(), 1);
}

#[test]
fn servfail_from_upstream_moves_on_to_the_next() {
    let mut lab = lab();
    let (_, sent) = forward(&mut lab, Transport::Udp);
    let outcome = lab.upstream_sends(
        upstream(1),
        Transport::Udp,
        &upstream_reply(&sent, ResponseCode::ServFail, None),
    );
    assert_eq!(outcome, udp_to(2));
    let retry = lab.out.clone();
    let outcome = lab.upstream_sends(upstream(2), Transport::Udp, &ok_reply(&retry));
    assert_eq!(outcome, reply_to_client(Transport::Udp));
    assert_eq!(decode(&lab.out).metadata.id, CLIENT_ID);
}

#[test]
fn refused_from_upstream_moves_on_to_the_next() {
    let mut lab = lab();
    let (_, sent) = forward(&mut lab, Transport::Udp);
    let outcome = lab.upstream_sends(
        upstream(1),
        Transport::Udp,
        &upstream_reply(&sent, ResponseCode::Refused, None),
    );
    assert!(matches!(outcome, Outcome::Forward { upstream: u, .. } if u == upstream(2)));
}

#[test]
fn nxdomain_from_upstream_is_relayed_not_retried() {
    let mut lab = lab();
    let (_, sent) = forward(&mut lab, Transport::Udp);
    let outcome = lab.upstream_sends(
        upstream(1),
        Transport::Udp,
        &upstream_reply(&sent, ResponseCode::NXDomain, None),
    );
    assert_eq!(outcome, reply_to_client(Transport::Udp));
    assert_eq!(rcode(&decode(&lab.out)), ResponseCode::NXDomain);
}

#[test]
fn when_every_upstream_fails_the_client_gets_servfail() {
    let mut lab = lab();
    let (_, mut sent) = forward(&mut lab, Transport::Udp);
    for n in 1..=2 {
        let outcome = lab.upstream_sends(
            upstream(n),
            Transport::Udp,
            &upstream_reply(&sent, ResponseCode::Refused, None),
        );
        assert!(matches!(outcome, Outcome::Forward { .. }));
        sent = lab.out.clone();
    }
    let emitted = lab.advance(Duration::from_secs(2));
    assert_eq!(emitted.len(), 1);
    assert_eq!(emitted[0].0, reply_to_client(Transport::Udp));
    let reply = decode(&emitted[0].1);
    assert_eq!(rcode(&reply), ResponseCode::ServFail);
    assert_eq!(reply.metadata.id, CLIENT_ID);
    assert_eq!(
        reply.queries,
        query_message("example.com", RecordType::A).queries
    );
    assert_eq!(lab.resolver.in_flight(), 0);
    assert_eq!(lab.resolver.next_deadline(), None);
}

#[test]
fn three_timeouts_end_in_servfail() {
    let mut lab = lab();
    forward(&mut lab, Transport::Udp);
    let mut last = Vec::new();
    for _ in 0..3 {
        last = lab.advance(Duration::from_secs(2));
    }
    assert_eq!(last.len(), 1);
    assert_eq!(rcode(&decode(&last[0].1)), ResponseCode::ServFail);
    assert_eq!(lab.resolver.stats().upstream_timeouts, 3);
}

#[test]
fn queries_beyond_the_in_flight_bound_get_servfail_at_once() {
    let mut lab = Lab::with_config(ResolverConfig {
        upstreams: vec![upstream(1)],
        max_in_flight: 2,
        ..ResolverConfig::default()
    });
    lab.user_network("n1", "front");
    assert!(matches!(
        forward(&mut lab, Transport::Udp).0,
        Outcome::Forward { .. }
    ));
    assert!(matches!(
        forward(&mut lab, Transport::Udp).0,
        Outcome::Forward { .. }
    ));
    let (outcome, bytes) = forward(&mut lab, Transport::Udp);
    assert_eq!(outcome, reply_to_client(Transport::Udp));
    assert_eq!(rcode(&decode(&bytes)), ResponseCode::ServFail);
    assert_eq!(lab.resolver.stats().over_capacity, 1);
    assert_eq!(lab.resolver.in_flight(), 2);
}

#[test]
fn upstream_ids_never_collide_while_in_flight() {
    let mut lab = lab();
    let mut ids = BTreeSet::new();
    for _ in 0..1000 {
        let (outcome, sent) = forward(&mut lab, Transport::Udp);
        assert!(matches!(outcome, Outcome::Forward { .. }));
        assert!(ids.insert(decode(&sent).metadata.id));
    }
    assert_eq!(lab.resolver.in_flight(), 1000);
}

#[test]
fn truncated_udp_answer_from_upstream_is_passed_on_as_is() {
    let mut lab = lab();
    let (_, sent) = forward(&mut lab, Transport::Udp);
    let mut reply = Message::from_vec(&upstream_reply(&sent, ResponseCode::NoError, None)).unwrap();
    reply.metadata.truncation = true;
    let reply = reply.to_vec().unwrap();
    let outcome = lab.upstream_sends(upstream(1), Transport::Udp, &reply);
    assert_eq!(outcome, reply_to_client(Transport::Udp));
    assert!(decode(&lab.out).metadata.truncation);
    assert_eq!(&lab.out[2..], &reply[2..]);
}

#[test]
fn upstream_answer_too_big_for_the_udp_client_is_truncated() {
    let mut lab = lab();
    let (_, sent) = forward(&mut lab, Transport::Udp);
    let q = decode(&sent);
    let mut reply = Message::from_vec(&upstream_reply(&sent, ResponseCode::NoError, None)).unwrap();
    for i in 0..60u8 {
        reply.add_answer(hickory_proto::rr::Record::from_rdata(
            q.queries[0].name.clone(),
            60,
            hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A([10, 0, 0, i].into())),
        ));
    }
    let outcome = lab.upstream_sends(upstream(1), Transport::Udp, &reply.to_vec().unwrap());
    assert_eq!(outcome, reply_to_client(Transport::Udp));
    let relayed = decode(&lab.out);
    assert!(relayed.metadata.truncation);
    assert!(relayed.answers.is_empty());
    assert!(lab.out.len() <= 512);
}

#[test]
fn forwarded_query_keeps_the_clients_edns() {
    let mut lab = lab();
    lab.send(
        &["n1"],
        Transport::Udp,
        &query_edns("example.com", RecordType::A, 1232),
    );
    assert_eq!(decode(&lab.out).edns.map(|e| e.max_payload()), Some(1232));
}
