//! A name shared by several endpoints: every address, in rotating order.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use common::*;
use hickory_proto::rr::RecordType;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn lab_with_shared_alias(n: u8) -> Lab {
    let mut lab = Lab::new();
    lab.user_network("n1", "front");
    for i in 0..n {
        let addr = format!("172.18.0.{}", 10 + i);
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

fn expected(n: u8) -> BTreeSet<Ipv4Addr> {
    (0..n).map(|i| Ipv4Addr::new(172, 18, 0, 10 + i)).collect()
}

#[test]
fn shared_alias_returns_every_address() {
    let mut lab = lab_with_shared_alias(4);
    let answers = v4_answers(&lab.ask(&["n1"], "api", RecordType::A));
    assert_eq!(answers.len(), 4);
    assert_eq!(answers.into_iter().collect::<BTreeSet<_>>(), expected(4));
}

#[test]
fn shared_alias_order_rotates_across_queries() {
    let mut lab = lab_with_shared_alias(4);
    let firsts: BTreeSet<Ipv4Addr> = (0..32)
        .map(|_| v4_answers(&lab.ask(&["n1"], "api", RecordType::A))[0])
        .collect();
    assert!(
        firsts.len() > 1,
        "the first address never changed: {firsts:?}"
    );
}

#[test]
fn rotation_keeps_the_cyclic_order() {
    let mut lab = lab_with_shared_alias(4);
    let answers = v4_answers(&lab.ask(&["n1"], "api", RecordType::A));
    let mut sorted = answers.clone();
    sorted.sort();
    let start = sorted.iter().position(|a| *a == answers[0]).unwrap();
    sorted.rotate_left(start);
    assert_eq!(answers, sorted);
}

#[test]
fn rotation_is_deterministic_for_a_seed() {
    let run = |seed: u64| {
        let mut lab = lab_with_shared_alias(5);
        lab.rng = ChaCha8Rng::seed_from_u64(seed);
        (0..16)
            .map(|_| v4_answers(&lab.ask(&["n1"], "api", RecordType::A)))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
}

#[test]
fn same_address_reached_through_two_networks_is_answered_once() {
    let mut lab = Lab::new();
    lab.user_network("n1", "front");
    lab.user_network("n2", "back");
    lab.endpoint("e1", "n1", "web", &["svc"], Some("10.9.0.2"), None);
    lab.endpoint("e2", "n2", "web2", &["svc"], Some("10.9.0.2"), None);
    assert_eq!(
        v4_answers(&lab.ask(&["n1", "n2"], "svc", RecordType::A)).len(),
        1
    );
}
