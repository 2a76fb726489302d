//! End to end through the real switch core in the simulator: forwarding,
//! isolation, learning, connect/disconnect and port security, as the
//! foundation issue states them.

use std::time::Duration;
use switchyard_sim::{DropReason, EndpointSpec, NetworkSpec, Sim};

fn net(name: &str, subnet: &str) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        subnets: vec![subnet.parse().unwrap()],
        ..NetworkSpec::default()
    }
}

fn on(network: &str) -> [(&str, EndpointSpec); 1] {
    [(network, EndpointSpec::default())]
}

/// One host with `front` (10.0.1.0/24) and `back` (10.0.2.0/24).
fn world(seed: u64) -> Sim {
    let mut sim = Sim::builder().seed(seed).build();
    sim.add_host("h1").unwrap();
    sim.create_network("h1", net("front", "10.0.1.0/24"))
        .unwrap();
    sim.create_network("h1", net("back", "10.0.2.0/24"))
        .unwrap();
    sim
}

#[test]
fn ping_works_between_two_containers_on_one_network() {
    let mut sim = world(1);
    sim.add_container("h1", "a", &on("front")).unwrap();
    sim.add_container("h1", "b", &on("front")).unwrap();
    let ping = sim.ping("a", "b", 3).unwrap();
    sim.run_until(|s| s.is_done(ping), Duration::from_secs(10));
    let r = sim.ping_result(ping).unwrap();
    assert_eq!((r.sent, r.received), (3, 3), "{r:?}");
    assert_eq!(r.target, sim.ip_of("b", "front"));
}

#[test]
fn a_container_on_another_network_cannot_reach_and_no_frame_crosses_segments() {
    let mut sim = world(2);
    sim.add_container("h1", "a", &on("front")).unwrap();
    sim.add_container("h1", "b", &on("back")).unwrap();
    let b_ip = sim.ip_of("b", "back").unwrap();
    let ping = sim.ping("a", b_ip, 3).unwrap();
    sim.run_until(|s| s.is_done(ping), Duration::from_secs(10));
    assert_eq!(sim.ping_result(ping).unwrap().received, 0);
    // a's ARP requests for its gateway flooded `front` only.
    let a_port = sim.port_counters("h1", "a/eth0").unwrap();
    assert!(a_port.rx_frames > 0, "a did send frames");
    let b_port = sim.port_counters("h1", "b/eth0").unwrap();
    assert_eq!(b_port.tx_frames, 0, "nothing of a's left through b's port");
    let a_mac = sim.mac_of("a", "front").unwrap();
    assert!(
        sim.fdb("h1")
            .unwrap()
            .iter()
            .all(|e| !(e.mac == a_mac && e.network == "back")),
        "a was never learned in back"
    );
}

#[test]
fn after_arp_the_fdb_holds_both_macs_and_unicast_is_not_flooded() {
    let mut sim = world(3);
    for c in ["a", "b", "c"] {
        sim.add_container("h1", c, &on("front")).unwrap();
    }
    let first = sim.ping("a", "b", 1).unwrap();
    sim.run_until(|s| s.is_done(first), Duration::from_secs(5));
    assert_eq!(sim.ping_result(first).unwrap().received, 1);

    let fdb = sim.fdb("h1").unwrap();
    let where_is = |c: &str| {
        let mac = sim.mac_of(c, "front").unwrap();
        fdb.iter()
            .find(|e| e.mac == mac)
            .map(|e| e.port_label.clone())
    };
    assert_eq!(where_is("a").as_deref(), Some("a/eth0"));
    assert_eq!(where_is("b").as_deref(), Some("b/eth0"));

    let c_before = sim.port_counters("h1", "c/eth0").unwrap().tx_frames;
    assert_eq!(c_before, 1, "c saw only the broadcast ARP request");
    let more = sim.ping("a", "b", 5).unwrap();
    sim.run_until(|s| s.is_done(more), Duration::from_secs(10));
    assert_eq!(sim.ping_result(more).unwrap().received, 5);
    assert_eq!(
        sim.port_counters("h1", "c/eth0").unwrap().tx_frames,
        c_before,
        "known unicast never went out of c's port"
    );
}

#[test]
fn disconnect_cuts_at_once_and_reconnect_restores() {
    let mut sim = world(4);
    sim.add_container("h1", "a", &on("front")).unwrap();
    let fixed = EndpointSpec {
        ipv4: Some("10.0.1.50".parse().unwrap()),
        ..EndpointSpec::default()
    };
    sim.add_container("h1", "b", &[("front", fixed.clone())])
        .unwrap();
    let ping = sim.ping("a", "b", 1).unwrap();
    sim.run_until(|s| s.is_done(ping), Duration::from_secs(5));
    assert_eq!(sim.ping_result(ping).unwrap().received, 1);

    sim.disconnect("b", "front").unwrap();
    assert!(
        sim.ports("h1").unwrap().iter().all(|p| p.label != "b/eth0"),
        "b's port is gone from the switch"
    );
    assert!(sim.interfaces("b").unwrap().is_empty());
    let cut = sim.ping("a", "10.0.1.50", 2).unwrap();
    sim.run_until(|s| s.is_done(cut), Duration::from_secs(10));
    assert_eq!(sim.ping_result(cut).unwrap().received, 0);

    sim.connect("b", "front", fixed).unwrap();
    assert!(sim.ports("h1").unwrap().iter().any(|p| p.label == "b/eth0"));
    let back = sim.ping("a", "b", 3).unwrap();
    sim.run_until(|s| s.is_done(back), Duration::from_secs(10));
    // b's new interface starts with an empty ARP cache, and smoltcp drops
    // the first echo reply while it resolves a: the rest are answered.
    assert!(sim.ping_result(back).unwrap().received >= 2);
}

/// An Ethernet/IPv4/UDP frame with the given sources, to 10.0.1.2.
fn forged(src_mac: [u8; 6], src_ip: [u8; 4], dst_mac: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0];
    ip.extend_from_slice(&src_ip);
    ip.extend_from_slice(&[10, 0, 1, 2]);
    ip.extend_from_slice(&[0x30, 0x39, 0x30, 0x39, 0, 8, 0, 0]);
    f.extend_from_slice(&ip);
    f
}

#[test]
fn port_security_drops_and_counts_spoofed_source_mac_and_ip() {
    let mut sim = world(5);
    sim.add_container("h1", "a", &on("front")).unwrap();
    sim.add_raw_container("h1", "x", &on("front")).unwrap();
    let a_mac = sim.mac_of("a", "front").unwrap().0;
    let x_mac = sim.mac_of("x", "front").unwrap().0;
    let a_rx = sim.interfaces("a").unwrap()[0].rx_frames;

    // x claims a's MAC, then its own MAC with a's address.
    sim.send_raw("x", "eth0", forged(a_mac, [10, 0, 1, 2], a_mac))
        .unwrap();
    sim.send_raw("x", "eth0", forged(x_mac, [10, 0, 1, 2], a_mac))
        .unwrap();
    // And one honest frame, which does get through.
    let x_ip = sim.ip_of("x", "front").unwrap().octets();
    sim.send_raw("x", "eth0", forged(x_mac, x_ip, a_mac))
        .unwrap();
    sim.run_for(Duration::from_millis(10));

    let x_port = sim.port_counters("h1", "x/eth0").unwrap();
    assert_eq!(x_port.drops_for(DropReason::SpoofedMac), 1);
    assert_eq!(x_port.drops_for(DropReason::SpoofedIp), 1);
    assert_eq!(x_port.rx_frames, 3);
    assert_eq!(
        sim.interfaces("a").unwrap()[0].rx_frames,
        a_rx + 1,
        "only the honest frame reached a"
    );
    let fdb = sim.fdb("h1").unwrap();
    assert!(
        fdb.iter()
            .all(|e| !(e.mac.0 == a_mac && e.port_label == "x/eth0")),
        "the spoofed source was not learned"
    );
}
