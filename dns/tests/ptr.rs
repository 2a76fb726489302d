//! Reverse lookups of endpoint addresses.

mod common;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use switchyard_dns::{reverse_name, Outcome};

fn lab() -> Lab {
    let mut lab = Lab::new();
    lab.user_network("n1", "front");
    lab.endpoint(
        "e1",
        "n1",
        "Web",
        &["www"],
        Some("172.18.0.2"),
        Some("fd00::2"),
    );
    lab
}

#[test]
fn ptr_for_an_ipv4_address_answers_name_then_name_dot_network() {
    let mut lab = lab();
    let reply = lab.ask(&["n1"], &reverse_name(ip("172.18.0.2")), RecordType::PTR);
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    assert_eq!(ptr_answers(&reply), vec!["Web", "Web.front"]);
}

#[test]
fn ptr_for_an_ipv6_address_answers_the_same_names() {
    let mut lab = lab();
    let reply = lab.ask(&["n1"], &reverse_name(ip("fd00::2")), RecordType::PTR);
    assert_eq!(ptr_answers(&reply), vec!["Web", "Web.front"]);
}

#[test]
fn ptr_is_case_insensitive() {
    let mut lab = lab();
    let reply = lab.ask(&["n1"], "2.0.18.172.IN-ADDR.ARPA", RecordType::PTR);
    assert_eq!(ptr_answers(&reply).len(), 2);
}

#[test]
fn ptr_for_an_address_on_another_network_is_forwarded() {
    let mut lab = lab();
    lab.user_network("n2", "back");
    let outcome = lab.ask_outcome(&["n2"], &reverse_name(ip("172.18.0.2")), RecordType::PTR);
    assert!(matches!(outcome, Outcome::Forward { .. }), "{outcome:?}");
}

#[test]
fn ptr_for_an_unknown_address_is_forwarded() {
    let mut lab = lab();
    let outcome = lab.ask_outcome(&["n1"], &reverse_name(ip("172.18.0.99")), RecordType::PTR);
    assert!(matches!(outcome, Outcome::Forward { .. }), "{outcome:?}");
}

#[test]
fn ptr_on_a_names_off_network_is_forwarded() {
    let mut lab = Lab::new();
    lab.network("bridge-id", "bridge", false, true);
    lab.endpoint("e1", "bridge-id", "web", &[], Some("172.17.0.2"), None);
    let outcome = lab.ask_outcome(
        &["bridge-id"],
        &reverse_name(ip("172.17.0.2")),
        RecordType::PTR,
    );
    assert!(matches!(outcome, Outcome::Forward { .. }), "{outcome:?}");
}

#[test]
fn other_types_on_a_known_reverse_name_are_nodata() {
    let mut lab = lab();
    let reply = lab.ask(&["n1"], &reverse_name(ip("172.18.0.2")), RecordType::A);
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    assert!(reply.answers.is_empty());
}

#[test]
fn ptr_stops_answering_after_the_endpoint_is_removed() {
    let mut lab = lab();
    lab.resolver.remove_endpoint("e1");
    let outcome = lab.ask_outcome(&["n1"], &reverse_name(ip("172.18.0.2")), RecordType::PTR);
    assert!(matches!(outcome, Outcome::Forward { .. }), "{outcome:?}");
}

#[test]
fn lookup_ptr_lists_the_same_names() {
    let lab = lab();
    let scope = switchyard_dns::Scope::new(["n1"]);
    assert_eq!(
        lab.resolver.lookup_ptr(&scope, ip("172.18.0.2")),
        vec!["Web", "Web.front"]
    );
}
