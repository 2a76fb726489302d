//! DNS through each host's embedded resolver (127.0.0.11): names,
//! NAME.NETWORK, shared aliases, scoping, the default bridge, upstreams.

use std::net::IpAddr;
use std::time::Duration;
use switchyard_sim::{DnsResult, EndpointSpec, NetworkSpec, Sim, UpstreamZone};

fn net(name: &str, subnet: &str) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        subnets: vec![subnet.parse().unwrap()],
        ..NetworkSpec::default()
    }
}

fn at(ip: &str, aliases: &[&str]) -> EndpointSpec {
    EndpointSpec {
        ipv4: Some(ip.parse().unwrap()),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        ..EndpointSpec::default()
    }
}

/// `web` on front and the default bridge; `api`, `api2` on front sharing
/// the alias `service`; `db` on back; `old` on the default bridge.
fn world() -> Sim {
    let mut sim = Sim::builder().seed(21).build();
    sim.add_host("h1").unwrap();
    sim.create_network("h1", net("front", "10.0.1.0/24"))
        .unwrap();
    sim.create_network("h1", net("back", "10.0.2.0/24"))
        .unwrap();
    sim.add_container(
        "h1",
        "web",
        &[
            ("front", at("10.0.1.5", &[])),
            ("bridge", EndpointSpec::default()),
        ],
    )
    .unwrap();
    sim.add_container("h1", "api", &[("front", at("10.0.1.20", &["service"]))])
        .unwrap();
    sim.add_container("h1", "api2", &[("front", at("10.0.1.21", &["service"]))])
        .unwrap();
    sim.add_container("h1", "db", &[("back", at("10.0.2.30", &[]))])
        .unwrap();
    sim.add_container("h1", "old", &[("bridge", EndpointSpec::default())])
        .unwrap();
    sim
}

fn lookup(sim: &mut Sim, from: &str, name: &str) -> DnsResult {
    let h = sim.dns_lookup(from, name).unwrap();
    sim.run_until(|s| s.is_done(h), Duration::from_secs(10));
    sim.dns_result(h).unwrap()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn a_container_name_resolves_on_a_shared_network() {
    let mut sim = world();
    let r = lookup(&mut sim, "web", "api");
    assert_eq!(r.rcode.as_deref(), Some("NOERROR"));
    assert_eq!(r.addresses, ips(&["10.0.1.20"]));
}

#[test]
fn name_dot_network_resolves_too() {
    let mut sim = world();
    let r = lookup(&mut sim, "web", "api.front");
    assert_eq!(r.addresses, ips(&["10.0.1.20"]));
}

#[test]
fn a_shared_alias_answers_every_holder_in_rotating_order() {
    let mut sim = world();
    let mut orders = Vec::new();
    for _ in 0..8 {
        let mut r = lookup(&mut sim, "web", "service");
        orders.push(r.addresses.clone());
        r.addresses.sort();
        assert_eq!(r.addresses, ips(&["10.0.1.20", "10.0.1.21"]));
    }
    orders.sort();
    orders.dedup();
    assert_eq!(orders.len(), 2, "both orders show up over eight queries");
}

#[test]
fn a_name_on_a_network_the_asker_is_not_on_is_not_answered() {
    let mut sim = world();
    let r = lookup(&mut sim, "web", "db");
    assert!(r.addresses.is_empty(), "{r:?}");
    assert_ne!(r.rcode.as_deref(), Some("NOERROR"));
    // db itself sees its own name.
    assert_eq!(lookup(&mut sim, "db", "db").addresses, ips(&["10.0.2.30"]));
}

#[test]
fn the_default_bridge_network_has_no_names() {
    let mut sim = world();
    let r = lookup(&mut sim, "web", "old");
    assert!(r.addresses.is_empty(), "{r:?}");
    let r = lookup(&mut sim, "old", "web");
    assert!(r.addresses.is_empty(), "{r:?}");
}

#[test]
fn unknown_names_go_to_the_upstream_zone() {
    let mut sim = world();
    sim.add_upstream_zone(
        UpstreamZone::new("192.0.2.53:53".parse().unwrap())
            .record("example.com", "93.184.216.34".parse().unwrap()),
    );
    let r = lookup(&mut sim, "web", "example.com");
    assert_eq!(r.addresses, ips(&["93.184.216.34"]));
    assert_eq!(
        lookup(&mut sim, "web", "nowhere.example").rcode.as_deref(),
        Some("NXDOMAIN")
    );
    assert_eq!(sim.resolver_stats("h1").unwrap().forwarded, 2);
}

#[test]
fn a_dead_upstream_times_out_into_servfail() {
    let mut sim = world();
    sim.add_upstream_zone(UpstreamZone::dead("192.0.2.53:53".parse().unwrap()));
    let r = lookup(&mut sim, "web", "example.com");
    assert_eq!(r.rcode.as_deref(), Some("SERVFAIL"), "{r:?}");
    assert!(
        r.rtt.unwrap() >= Duration::from_secs(2),
        "after the upstream timeout: {r:?}"
    );
    assert_eq!(sim.resolver_stats("h1").unwrap().upstream_timeouts, 1);
}

#[test]
fn a_lookup_shows_on_the_containers_loopback_capture() {
    let mut sim = world();
    sim.capture("web/lo").unwrap();
    let r = lookup(&mut sim, "web", "api");
    assert_eq!(r.addresses.len(), 1);
    let pcap = sim.pcap("web/lo").unwrap();
    // Global header plus two records (query and answer).
    assert!(
        pcap.len() > 24 + 2 * (16 + 14 + 20 + 8 + 12),
        "{} bytes",
        pcap.len()
    );
}
