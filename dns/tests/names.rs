//! Which names resolve, for whom, and what unknown names get.

mod common;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use switchyard_dns::{Outcome, ResolverConfig, Transport};

fn lab_with_web() -> Lab {
    let mut lab = Lab::new();
    lab.user_network("n1", "front");
    lab.endpoint("e1", "n1", "web", &["www"], Some("172.18.0.2"), None);
    lab
}

#[test]
fn container_name_resolves_on_an_attached_network() {
    let mut lab = lab_with_web();
    let reply = lab.ask(&["n1"], "web", RecordType::A);
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    assert_eq!(
        v4_answers(&reply),
        vec!["172.18.0.2".parse::<std::net::Ipv4Addr>().unwrap()]
    );
}

#[test]
fn name_dot_network_resolves() {
    let mut lab = lab_with_web();
    let reply = lab.ask(&["n1"], "web.front", RecordType::A);
    assert_eq!(v4_answers(&reply).len(), 1);
}

#[test]
fn alias_and_alias_dot_network_resolve() {
    let mut lab = lab_with_web();
    assert_eq!(v4_answers(&lab.ask(&["n1"], "www", RecordType::A)).len(), 1);
    assert_eq!(
        v4_answers(&lab.ask(&["n1"], "www.front", RecordType::A)).len(),
        1
    );
}

#[test]
fn fully_qualified_name_with_trailing_dot_resolves() {
    let mut lab = lab_with_web();
    assert_eq!(
        v4_answers(&lab.ask(&["n1"], "web.", RecordType::A)).len(),
        1
    );
}

#[test]
fn names_are_case_insensitive_and_the_answer_echoes_the_question_case() {
    let mut lab = lab_with_web();
    let reply = lab.ask(&["n1"], "WeB.FrOnT", RecordType::A);
    assert_eq!(v4_answers(&reply).len(), 1);
    assert_eq!(reply.queries[0].name.to_ascii(), "WeB.FrOnT.");
    assert_eq!(reply.answers[0].name.to_ascii(), "WeB.FrOnT.");
}

#[test]
fn records_stored_in_upper_case_match_lower_case_queries() {
    let mut lab = Lab::new();
    lab.user_network("n1", "Front");
    lab.endpoint("e1", "n1", "WEB", &[], Some("172.18.0.2"), None);
    assert_eq!(
        v4_answers(&lab.ask(&["n1"], "web.front", RecordType::A)).len(),
        1
    );
}

#[test]
fn name_on_a_network_the_sandbox_is_not_on_is_forwarded() {
    let mut lab = lab_with_web();
    lab.user_network("n2", "back");
    let outcome = lab.ask_outcome(&["n2"], "web", RecordType::A);
    assert!(matches!(outcome, Outcome::Forward { .. }), "{outcome:?}");
}

#[test]
fn name_dot_network_of_another_network_is_forwarded() {
    let mut lab = lab_with_web();
    lab.user_network("n2", "back");
    let outcome = lab.ask_outcome(&["n2"], "web.front", RecordType::A);
    assert!(matches!(outcome, Outcome::Forward { .. }), "{outcome:?}");
}

#[test]
fn name_qualified_with_the_wrong_network_is_not_answered() {
    let mut lab = lab_with_web();
    lab.user_network("n2", "back");
    let outcome = lab.ask_outcome(&["n1", "n2"], "web.back", RecordType::A);
    assert!(matches!(outcome, Outcome::Forward { .. }), "{outcome:?}");
}

#[test]
fn default_bridge_names_are_forwarded_not_answered() {
    let mut lab = Lab::new();
    lab.network("bridge-id", "bridge", false, true);
    lab.endpoint("e1", "bridge-id", "web", &[], Some("172.17.0.2"), None);
    let outcome = lab.ask_outcome(&["bridge-id"], "web", RecordType::A);
    assert!(matches!(outcome, Outcome::Forward { .. }), "{outcome:?}");
}

#[test]
fn internal_network_does_not_forward_unknown_names_it_answers_nxdomain() {
    let mut lab = Lab::new();
    lab.network("n1", "secret", true, false);
    let reply = lab.ask(&["n1"], "example.com", RecordType::A);
    assert_eq!(rcode(&reply), ResponseCode::NXDomain);
    assert_eq!(lab.resolver.stats().forwarded, 0);
    assert_eq!(lab.resolver.stats().nxdomain, 1);
}

#[test]
fn internal_network_still_answers_its_own_names() {
    let mut lab = Lab::new();
    lab.network("n1", "secret", true, false);
    lab.endpoint("e1", "n1", "db", &[], Some("10.0.0.2"), None);
    assert_eq!(v4_answers(&lab.ask(&["n1"], "db", RecordType::A)).len(), 1);
}

#[test]
fn sandbox_forwards_when_any_of_its_networks_forwards() {
    let mut lab = Lab::new();
    lab.network("n1", "secret", true, false);
    lab.user_network("n2", "front");
    let outcome = lab.ask_outcome(&["n1", "n2"], "example.com", RecordType::A);
    assert!(matches!(outcome, Outcome::Forward { .. }), "{outcome:?}");
}

#[test]
fn network_without_a_policy_neither_answers_nor_forwards() {
    let mut lab = Lab::new();
    lab.endpoint("e1", "n1", "web", &[], Some("172.18.0.2"), None);
    let reply = lab.ask(&["n1"], "web", RecordType::A);
    assert_eq!(rcode(&reply), ResponseCode::NXDomain);
}

#[test]
fn removed_network_stops_answering_its_names() {
    let mut lab = lab_with_web();
    lab.network("n9", "other", false, true);
    lab.resolver.remove_network("n1");
    let outcome = lab.ask_outcome(&["n1", "n9"], "web", RecordType::A);
    assert!(matches!(outcome, Outcome::Forward { .. }), "{outcome:?}");
}

#[test]
fn aaaa_for_an_ipv4_only_container_is_nodata() {
    let mut lab = lab_with_web();
    let reply = lab.ask(&["n1"], "web", RecordType::AAAA);
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    assert!(reply.answers.is_empty());
    assert_eq!(lab.resolver.stats().nodata, 1);
}

#[test]
fn other_record_types_for_a_known_name_are_nodata() {
    let mut lab = lab_with_web();
    let reply = lab.ask(&["n1"], "web", RecordType::MX);
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    assert!(reply.answers.is_empty());
}

#[test]
fn aaaa_answers_the_ipv6_address() {
    let mut lab = Lab::new();
    lab.user_network("n1", "front");
    lab.endpoint("e1", "n1", "web", &[], Some("172.18.0.2"), Some("fd00::2"));
    let reply = lab.ask(&["n1"], "web", RecordType::AAAA);
    assert_eq!(
        v6_answers(&reply),
        vec!["fd00::2".parse::<std::net::Ipv6Addr>().unwrap()]
    );
    assert!(v4_answers(&reply).is_empty());
}

#[test]
fn dotted_network_names_split_at_any_label() {
    let mut lab = Lab::new();
    lab.user_network("n1", "my.net");
    lab.endpoint("e1", "n1", "web", &[], Some("172.18.0.2"), None);
    assert_eq!(
        v4_answers(&lab.ask(&["n1"], "web.my.net", RecordType::A)).len(),
        1
    );
}

#[test]
fn whole_name_wins_over_a_network_suffix() {
    let mut lab = Lab::new();
    lab.user_network("n1", "front");
    lab.endpoint("e1", "n1", "web", &[], Some("172.18.0.2"), None);
    lab.endpoint(
        "e2",
        "n1",
        "dotted",
        &["web.front"],
        Some("172.18.0.3"),
        None,
    );
    let reply = lab.ask(&["n1"], "web.front", RecordType::A);
    assert_eq!(
        v4_answers(&reply),
        vec!["172.18.0.3".parse::<std::net::Ipv4Addr>().unwrap()]
    );
}

#[test]
fn names_from_every_attached_network_are_visible() {
    let mut lab = lab_with_web();
    lab.user_network("n2", "back");
    lab.endpoint("e2", "n2", "db", &[], Some("172.19.0.2"), None);
    assert_eq!(
        v4_answers(&lab.ask(&["n1", "n2"], "db", RecordType::A)).len(),
        1
    );
    assert_eq!(
        v4_answers(&lab.ask(&["n1", "n2"], "web", RecordType::A)).len(),
        1
    );
}

#[test]
fn answers_carry_the_default_ttl_of_five_seconds() {
    let mut lab = lab_with_web();
    let reply = lab.ask(&["n1"], "web", RecordType::A);
    assert_eq!(reply.answers[0].ttl, 5);
}

#[test]
fn ttl_is_configurable() {
    let mut lab = Lab::with_config(ResolverConfig {
        ttl: 30,
        ..ResolverConfig::default()
    });
    lab.user_network("n1", "front");
    lab.endpoint("e1", "n1", "web", &[], Some("172.18.0.2"), None);
    assert_eq!(lab.ask(&["n1"], "web", RecordType::A).answers[0].ttl, 30);
}

#[test]
fn local_answers_are_authoritative_echo_rd_and_offer_recursion_when_forwarding() {
    let mut lab = lab_with_web();
    let reply = lab.ask(&["n1"], "web", RecordType::A);
    assert!(reply.metadata.authoritative);
    assert!(reply.metadata.recursion_desired);
    assert!(reply.metadata.recursion_available);
    assert_eq!(reply.metadata.id, CLIENT_ID);
}

#[test]
fn unknown_name_with_no_upstreams_configured_is_servfail() {
    let mut lab = Lab::with_config(ResolverConfig::default());
    lab.user_network("n1", "front");
    let reply = lab.ask(&["n1"], "example.com", RecordType::A);
    assert_eq!(rcode(&reply), ResponseCode::ServFail);
}

#[test]
fn lookup_follows_the_query_rules() {
    let lab = lab_with_web();
    let scope = switchyard_dns::Scope::new(["n1"]);
    assert_eq!(
        lab.resolver
            .lookup(&scope, "WEB.front", switchyard_dns::Family::Any),
        vec![ip("172.18.0.2")]
    );
    assert!(lab
        .resolver
        .lookup(
            &switchyard_dns::Scope::new(["n2"]),
            "web",
            switchyard_dns::Family::Any
        )
        .is_empty());
}

#[test]
fn tcp_queries_are_answered_over_tcp() {
    let mut lab = lab_with_web();
    let outcome = lab.send(&["n1"], Transport::Tcp, &query("web", RecordType::A));
    assert_eq!(outcome, reply_to_client(Transport::Tcp));
    assert_eq!(v4_answers(&decode(&lab.out)).len(), 1);
}
