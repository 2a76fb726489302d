//! Record changes are visible to the very next query.

mod common;

use common::*;
use hickory_proto::rr::RecordType;
use switchyard_dns::{NetworkPolicy, Outcome};

fn lab() -> Lab {
    let mut lab = Lab::new();
    lab.user_network("n1", "front");
    lab.endpoint("e1", "n1", "web", &["www"], Some("172.18.0.2"), None);
    lab
}

fn forwarded(outcome: Outcome) -> bool {
    matches!(outcome, Outcome::Forward { .. })
}

#[test]
fn removed_endpoint_stops_resolving_on_the_next_query() {
    let mut lab = lab();
    assert_eq!(v4_answers(&lab.ask(&["n1"], "web", RecordType::A)).len(), 1);
    lab.resolver.remove_endpoint("e1");
    assert!(forwarded(lab.ask_outcome(&["n1"], "web", RecordType::A)));
    assert_eq!(lab.resolver.endpoint_count(), 0);
}

#[test]
fn rename_takes_effect_on_the_next_query() {
    let mut lab = lab();
    lab.endpoint("e1", "n1", "web2", &["www"], Some("172.18.0.2"), None);
    assert!(forwarded(lab.ask_outcome(&["n1"], "web", RecordType::A)));
    assert_eq!(
        v4_answers(&lab.ask(&["n1"], "web2", RecordType::A)).len(),
        1
    );
}

#[test]
fn alias_change_takes_effect_on_the_next_query() {
    let mut lab = lab();
    lab.endpoint("e1", "n1", "web", &["site"], Some("172.18.0.2"), None);
    assert!(forwarded(lab.ask_outcome(&["n1"], "www", RecordType::A)));
    assert_eq!(
        v4_answers(&lab.ask(&["n1"], "site", RecordType::A)).len(),
        1
    );
}

#[test]
fn new_address_is_answered_on_the_next_query() {
    let mut lab = lab();
    lab.endpoint("e1", "n1", "web", &["www"], Some("172.18.0.9"), None);
    assert_eq!(
        v4_answers(&lab.ask(&["n1"], "web", RecordType::A)),
        vec!["172.18.0.9".parse::<std::net::Ipv4Addr>().unwrap()]
    );
}

#[test]
fn connect_to_another_network_is_seen_with_the_new_scope() {
    let mut lab = lab();
    lab.user_network("n2", "back");
    lab.endpoint("e2", "n2", "db", &[], Some("172.19.0.2"), None);
    let mut scope = switchyard_dns::Scope::new(["n1"]);
    assert!(lab
        .resolver
        .lookup(&scope, "db", switchyard_dns::Family::V4)
        .is_empty());
    scope.attach("n2");
    assert_eq!(
        lab.resolver
            .lookup(&scope, "db", switchyard_dns::Family::V4)
            .len(),
        1
    );
    scope.detach("n2");
    assert!(lab
        .resolver
        .lookup(&scope, "db", switchyard_dns::Family::V4)
        .is_empty());
}

#[test]
fn renamed_network_changes_name_dot_network() {
    let mut lab = lab();
    lab.resolver.set_network(
        "n1",
        NetworkPolicy {
            name: "edge".into(),
            names: true,
            forward: true,
        },
    );
    assert_eq!(
        v4_answers(&lab.ask(&["n1"], "web.edge", RecordType::A)).len(),
        1
    );
    assert!(forwarded(lab.ask_outcome(
        &["n1"],
        "web.front",
        RecordType::A
    )));
}

#[test]
fn turning_names_off_for_a_network_takes_effect_on_the_next_query() {
    let mut lab = lab();
    lab.network("n1", "front", false, true);
    assert!(forwarded(lab.ask_outcome(&["n1"], "web", RecordType::A)));
}

#[test]
fn shared_alias_loses_one_address_when_one_endpoint_leaves() {
    let mut lab = lab();
    lab.endpoint("e2", "n1", "web2", &["www"], Some("172.18.0.3"), None);
    assert_eq!(v4_answers(&lab.ask(&["n1"], "www", RecordType::A)).len(), 2);
    lab.resolver.remove_endpoint("e2");
    assert_eq!(v4_answers(&lab.ask(&["n1"], "www", RecordType::A)).len(), 1);
}

#[test]
fn queries_in_flight_survive_record_changes() {
    let mut lab = lab();
    let outcome = lab.ask_outcome(&["n1"], "example.com", RecordType::A);
    assert!(forwarded(outcome));
    let sent = lab.out.clone();
    lab.resolver.remove_endpoint("e1");
    lab.endpoint("e3", "n1", "other", &[], Some("172.18.0.5"), None);
    let reply = upstream_reply(
        &sent,
        hickory_proto::op::ResponseCode::NoError,
        Some("93.184.216.34".parse().unwrap()),
    );
    let outcome = lab.upstream_sends(upstream(1), switchyard_dns::Transport::Udp, &reply);
    assert_eq!(outcome, reply_to_client(switchyard_dns::Transport::Udp));
}
