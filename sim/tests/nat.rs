//! The way out and the way in: containers reach servers on the simulated
//! internet through their network's gateway (NAT to the host's outside
//! address), `--internal` networks have no way out, networks stay
//! isolated from each other through their gateways, and a published port
//! carries an external client in with its real address.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use switchyard_sim::lab::{Lab, RunOptions};
use switchyard_sim::{
    compare_runs, EndpointSpec, NetworkSpec, OutsideSpec, Publish, Sim, TcpTransfer, UdpEcho,
};

const WEB: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const VISITOR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 50);

fn net(name: &str, subnet: &str, internal: bool) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        subnets: vec![subnet.parse().unwrap()],
        internal,
        ..NetworkSpec::default()
    }
}

/// h1 with `front` (10.0.1.0/24), `back` (10.0.2.0/24) and `vault`
/// (internal, 10.0.3.0/24); a on front, b on back, v on vault; a web
/// server and a visitor on the internet.
fn world(seed: u64) -> Sim {
    let mut sim = Sim::builder().seed(seed).build();
    sim.add_host("h1").unwrap();
    sim.create_network("h1", net("front", "10.0.1.0/24", false))
        .unwrap();
    sim.create_network("h1", net("back", "10.0.2.0/24", false))
        .unwrap();
    sim.create_network("h1", net("vault", "10.0.3.0/24", true))
        .unwrap();
    for (c, n) in [("a", "front"), ("b", "back"), ("v", "vault")] {
        sim.add_container("h1", c, &[(n, EndpointSpec::default())])
            .unwrap();
    }
    sim.add_outside(OutsideSpec::new("web", WEB).tcp(80).udp(7))
        .unwrap();
    sim.add_outside(OutsideSpec::new("visitor", VISITOR))
        .unwrap();
    sim
}

#[test]
fn a_container_fetches_from_an_outside_server_through_the_gateway() {
    let mut sim = world(1);
    let t = sim.tcp_fetch("a", WEB, 80, 200_000).unwrap();
    sim.run_until(|s| s.is_done(t), Duration::from_secs(30));
    let r = sim.tcp_result(t).unwrap();
    assert!(r.completed_at.is_some() && r.error.is_none(), "{r:?}");
    assert_eq!(r.received, 200_000);
    // The server saw the host's outside address, not the container's.
    let outside = sim.outside_address("h1").unwrap();
    let served = sim.served_requests();
    assert_eq!(served.len(), 1, "{served:?}");
    assert_eq!(served[0].client.ip(), IpAddr::V4(outside));
    assert_eq!(served[0].bytes, 200_000);
    let c = sim.gateway_counters("h1", "front").unwrap();
    assert_eq!(c.tcp_outbound, 1, "{c:?}");
    assert!(c.bytes_in >= 200_000, "{c:?}");
}

#[test]
fn udp_echo_and_ping_reach_an_outside_address() {
    let mut sim = world(2);
    let u = sim.udp_echo("a", WEB, 7, 5).unwrap();
    let p = sim.ping("a", WEB, 3).unwrap();
    sim.run_until(|s| s.is_done(u) && s.is_done(p), Duration::from_secs(30));
    let ur = sim.udp_result(u).unwrap();
    assert_eq!((ur.sent, ur.echoed), (5, 5), "{ur:?}");
    let pr = sim.ping_result(p).unwrap();
    assert_eq!((pr.sent, pr.received), (3, 3), "{pr:?}");
    // Two 10 ms access links plus the 1 ms uplink, both ways.
    assert!(
        pr.rtts.iter().all(|t| *t >= Duration::from_millis(22)),
        "{pr:?}"
    );
    let c = sim.gateway_counters("h1", "front").unwrap();
    assert_eq!((c.udp_out, c.udp_in), (5, 5), "{c:?}");
    assert_eq!((c.ping_out, c.ping_in), (3, 3), "{c:?}");
}

#[test]
fn an_internal_network_has_no_way_out() {
    let mut sim = world(3);
    assert!(
        sim.gateway_counters("h1", "vault").is_err(),
        "no gateway on an internal network"
    );
    let p = sim.ping("v", WEB, 2).unwrap();
    let t = sim
        .start(TcpTransfer::fetch("v", WEB, 80, 1000).timeout(Duration::from_secs(5)))
        .unwrap();
    sim.run_until(|s| s.is_done(p) && s.is_done(t), Duration::from_secs(30));
    assert_eq!(sim.ping_result(p).unwrap().received, 0);
    let r = sim.tcp_result(t).unwrap();
    assert!(r.completed_at.is_none() && r.received == 0, "{r:?}");
    assert!(sim.served_requests().is_empty());
}

#[test]
fn a_network_cannot_reach_another_networks_container_through_its_gateway() {
    let mut sim = world(4);
    let b_ip = sim.ip_of("b", "back").unwrap();
    let p = sim.ping("a", b_ip, 2).unwrap();
    let t = sim
        .start(TcpTransfer::send("a", b_ip, 80, 1000).timeout(Duration::from_secs(5)))
        .unwrap();
    sim.run_until(|s| s.is_done(p) && s.is_done(t), Duration::from_secs(30));
    assert_eq!(sim.ping_result(p).unwrap().received, 0);
    let r = sim.tcp_result(t).unwrap();
    assert!(r.error.is_some() && r.received == 0, "{r:?}");
    let c = sim.gateway_counters("h1", "front").unwrap();
    assert!(c.refused_isolation >= 2, "{c:?}");
    assert_eq!(sim.port_counters("h1", "b/eth0").unwrap().tx_frames, 0);
}

#[test]
fn a_published_port_carries_an_external_client_with_its_real_address() {
    let mut sim = world(5);
    sim.publish(Publish {
        container: "a".into(),
        network: String::new(),
        port: 8080,
        host_port: 80,
        udp: false,
    })
    .unwrap();
    let t = sim
        .start(TcpTransfer::fetch("visitor", "h1", 80, 50_000))
        .unwrap();
    sim.run_until(|s| s.is_done(t), Duration::from_secs(30));
    let r = sim.tcp_result(t).unwrap();
    assert!(r.completed_at.is_some() && r.error.is_none(), "{r:?}");
    assert_eq!(r.received, 50_000);
    let seen = r.peer_seen.expect("the container saw its client");
    assert_eq!(seen.ip(), IpAddr::V4(VISITOR), "{seen}");
    assert_eq!(sim.gateway_counters("h1", "front").unwrap().tcp_inbound, 1);

    // A port nobody published is refused by the host.
    let t = sim
        .start(TcpTransfer::fetch("visitor", "h1", 81, 1000).timeout(Duration::from_secs(5)))
        .unwrap();
    sim.run_until(|s| s.is_done(t), Duration::from_secs(30));
    let r = sim.tcp_result(t).unwrap();
    assert!(r.error.is_some() && r.received == 0, "{r:?}");
}

fn nat_lab() -> Lab {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../labs/nat.toml");
    Lab::from_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// True when some frame in `pcap` carries an IPv4 packet from `src` to
/// `dst` (the header's address fields, side by side).
fn carries(pcap: &[u8], src: [u8; 4], dst: [u8; 4]) -> bool {
    let mut needle = src.to_vec();
    needle.extend_from_slice(&dst);
    pcap.windows(8).any(|w| w == needle.as_slice())
}

#[test]
fn the_nat_lab_passes_and_its_pcaps_show_both_sides_of_the_rewrite() {
    let lab = nat_lab();
    let (report, sim) = lab
        .run(&RunOptions {
            capture: true,
            ..RunOptions::default()
        })
        .unwrap();
    let failed: Vec<String> = report
        .steps
        .iter()
        .filter(|s| !s.passed)
        .map(|s| format!("line {}: {}: {}", s.line, s.step, s.observed))
        .collect();
    assert!(report.passed, "{failed:#?}");
    let inside = sim.pcap("c/eth0").unwrap();
    let outside = sim.pcap("h1/outside").unwrap();
    let (c, web, host) = ([10, 0, 1, 10], [203, 0, 113, 10], [198, 51, 100, 1]);
    assert!(
        carries(inside, c, web),
        "the container's side has its own address"
    );
    assert!(!carries(inside, host, web));
    assert!(
        carries(outside, host, web),
        "the outside has the host's address"
    );
    assert!(
        !carries(outside, c, web),
        "no container address leaks outside"
    );
    // The published port: the container sees the visitor itself.
    let app = sim.pcap("app/eth0").unwrap();
    assert!(carries(app, [203, 0, 113, 50], [10, 0, 1, 20]));
}

#[test]
fn the_nat_lab_gives_the_same_bytes_for_the_same_seed() {
    let lab = nat_lab();
    let options = RunOptions {
        record: true,
        ..RunOptions::default()
    };
    let (first, a) = lab.run(&options).unwrap();
    let (second, b) = lab.run(&options).unwrap();
    let digest = compare_runs(&a, &b).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(first.digest, second.digest);
    assert!(digest.frames > 100, "{digest}");
    // Another seed gives other bytes (the gateways' and stacks' sequence
    // numbers come from it): the digest does depend on the seed.
    let (other, _) = lab
        .run(&RunOptions {
            seed: Some(lab.seed() + 1),
            ..RunOptions::default()
        })
        .unwrap();
    assert_ne!(other.digest.hash, first.digest.hash);
}

#[test]
fn a_host_restart_brings_its_gateways_and_published_ports_back() {
    let mut sim = world(6);
    sim.publish(Publish {
        container: "a".into(),
        network: "front".into(),
        port: 8080,
        host_port: 80,
        udp: false,
    })
    .unwrap();
    let gateways = |sim: &Sim| -> Vec<String> {
        sim.ports("h1")
            .unwrap()
            .into_iter()
            .filter(|p| p.label.ends_with("/gateway"))
            .map(|p| p.label)
            .collect::<std::collections::BTreeSet<String>>()
            .into_iter()
            .collect()
    };
    let before = gateways(&sim);
    assert_eq!(
        before,
        ["back/gateway", "bridge/gateway", "front/gateway"],
        "one gateway per non-internal bridge network"
    );
    sim.crash_host("h1").unwrap();
    let t = sim
        .start(TcpTransfer::fetch("a", WEB, 80, 1000).timeout(Duration::from_secs(3)))
        .unwrap();
    sim.run_until(|s| s.is_done(t), Duration::from_secs(10));
    assert!(
        sim.tcp_result(t).unwrap().error.is_some(),
        "no way out while down"
    );

    sim.restart_host("h1").unwrap();
    assert_eq!(gateways(&sim), before);
    let out = sim.tcp_fetch("a", WEB, 80, 10_000).unwrap();
    let r = sim.run_app(out, Duration::from_secs(30));
    assert!(r.is_done(), "{r:?}");
    assert_eq!(sim.tcp_result(out).unwrap().received, 10_000);
    let inbound = sim
        .start(TcpTransfer::fetch("visitor", "h1", 80, 10_000))
        .unwrap();
    sim.run_until(|s| s.is_done(inbound), Duration::from_secs(30));
    let r = sim.tcp_result(inbound).unwrap();
    assert_eq!((r.received, r.error.as_deref()), (10_000, None), "{r:?}");
}

#[test]
fn publishing_one_host_port_twice_is_refused_with_what_to_do() {
    let mut sim = world(7);
    let p = Publish {
        container: "a".into(),
        network: String::new(),
        port: 5353,
        host_port: 53,
        udp: true,
    };
    sim.publish(p.clone()).unwrap();
    let err = sim.publish(p.clone()).unwrap_err().to_string();
    assert!(err.contains("already publishes UDP port 53"), "{err}");
    assert!(err.contains("choose another host port"), "{err}");
    // TCP port 53 is another port.
    sim.publish(Publish { udp: false, ..p }).unwrap();
}

#[test]
fn a_published_udp_port_echoes_for_an_outside_client_with_its_real_address_inside() {
    let mut sim = world(8);
    sim.capture("a/eth0").unwrap();
    sim.publish(Publish {
        container: "a".into(),
        network: String::new(),
        port: 5353,
        host_port: 53,
        udp: true,
    })
    .unwrap();
    // `a` has sent nothing yet: the gateway does not know its MAC, asks
    // for it, and sends the first datagram when `a` answers.
    let u = sim
        .start(UdpEcho::new("visitor", "h1", 53).count(4))
        .unwrap();
    sim.run_until(|s| s.is_done(u), Duration::from_secs(30));
    let r = sim.udp_result(u).unwrap();
    assert_eq!((r.sent, r.echoed), (4, 4), "{r:?}");
    let a = sim.ip_of("a", "front").unwrap().octets();
    assert!(
        carries(sim.pcap("a/eth0").unwrap(), VISITOR.octets(), a),
        "the datagrams reach a from the visitor's own address"
    );
    let c = sim.gateway_counters("h1", "front").unwrap();
    assert_eq!((c.udp_in, c.udp_out), (4, 4), "{c:?}");
    assert_eq!(c.unresolved_dropped, 0, "{c:?}");
}

#[test]
fn lab_mistakes_about_the_outside_point_at_their_line() {
    let base =
        "[[host]]\nname = \"h1\"\n\n[[network]]\nname = \"front\"\nsubnet = \"10.0.1.0/24\"\n\n\
                [[container]]\nname = \"a\"\nnetworks = [\"front\"]\n\n";
    let bad_address = format!("{base}[[outside]]\nname = \"web\"\naddress = \"198.51.100.7\"\n");
    let err = Lab::parse("x.toml", &bad_address).unwrap_err().to_string();
    assert!(err.starts_with("x.toml:14:"), "{err}");
    assert!(err.contains("hosts' outside addresses"), "{err}");

    let ping_from_outside = format!(
        "{base}[[outside]]\nname = \"v\"\naddress = \"203.0.113.5\"\n\n\
         [[step]]\nat = \"1s\"\ndo = \"ping\"\nfrom = \"v\"\nto = \"h1\"\n"
    );
    let err = Lab::parse("y.toml", &ping_from_outside)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("y.toml:19:"), "{err}");
    assert!(err.contains("outside node"), "{err}");

    let publish_nobody = format!("{base}[[publish]]\ncontainer = \"nobody\"\nport = 80\n");
    let err = Lab::parse("z.toml", &publish_nobody)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("z.toml:13:"), "{err}");
    assert!(err.contains("no container \"nobody\""), "{err}");
}

#[test]
fn lab_show_gateway_lists_each_networks_gateway_with_its_counters() {
    let sim = nat_lab().run_to(1, Duration::from_secs(10)).unwrap();
    let t = switchyard_sim::lab::show(&sim, &["gateway".into(), "h1".into()]).unwrap();
    assert!(t.title.contains("198.51.100.1"), "{}", t.title);
    let front = t
        .rows
        .iter()
        .find(|r| r[0] == "front")
        .expect("front has a gateway");
    assert_eq!(front[1], "10.0.1.1");
    assert!(front[3].starts_with("1 out, 1 in"), "{front:?}");
    assert!(
        t.rows.iter().all(|r| r[0] != "vault"),
        "the internal network has no gateway: {:?}",
        t.rows
    );
    let served = switchyard_sim::lab::show(&sim, &["outside".into()]).unwrap();
    assert!(
        served
            .rows
            .iter()
            .any(|r| r[1] == "web:80" && r[2].starts_with("198.51.100.1:")),
        "{:?}",
        served.rows
    );
}

#[test]
fn removing_a_network_removes_its_gateway_port() {
    let mut sim = world(9);
    sim.create_network("h1", net("spare", "10.0.9.0/24", false))
        .unwrap();
    assert!(sim.gateway_counters("h1", "spare").is_ok());
    assert!(sim
        .ports("h1")
        .unwrap()
        .iter()
        .any(|p| p.label == "spare/gateway"));
    sim.remove_network("h1", "spare").unwrap();
    assert!(sim.gateway_counters("h1", "spare").is_err());
    assert!(sim
        .ports("h1")
        .unwrap()
        .iter()
        .all(|p| p.label != "spare/gateway"));
    // The others still work.
    let p = sim.ping("a", WEB, 1).unwrap();
    sim.run_until(|s| s.is_done(p), Duration::from_secs(10));
    assert_eq!(sim.ping_result(p).unwrap().received, 1);
}
