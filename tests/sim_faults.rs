//! Faults in the simulator: lossy links, partitions (both ways and one
//! way), heals, host and container crashes and restarts.

use std::time::Duration;
use switchyard_sim::{
    EndpointSpec, Fault, Instant, LinkConfig, LinkDirection, Loss, NetworkSpec, Sim, TcpTransfer,
};

fn two_on_front(seed: u64) -> Sim {
    let mut sim = Sim::builder().seed(seed).build();
    sim.add_host("h1").unwrap();
    sim.create_network(
        "h1",
        NetworkSpec {
            name: "front".into(),
            subnets: vec!["10.0.1.0/24".parse().unwrap()],
            ..NetworkSpec::default()
        },
    )
    .unwrap();
    for (c, ip) in [("a", "10.0.1.10"), ("b", "10.0.1.11")] {
        let spec = EndpointSpec {
            ipv4: Some(ip.parse().unwrap()),
            ..EndpointSpec::default()
        };
        sim.add_container("h1", c, &[("front", spec)]).unwrap();
    }
    sim
}

fn ping_received(sim: &mut Sim, from: &str, to: &str, count: u32) -> u32 {
    let p = sim.ping(from, to, count).unwrap();
    sim.run_until(|s| s.is_done(p), Duration::from_secs(30));
    sim.ping_result(p).unwrap().received
}

#[test]
fn tcp_completes_over_a_lossy_reordering_duplicating_link() {
    let mut sim = two_on_front(11);
    let bad = LinkConfig {
        latency: Duration::from_millis(1),
        jitter: Duration::from_micros(500),
        loss: Loss::Random(0.01),
        duplicate: 0.02,
        reorder: 0.02,
        ..LinkConfig::default()
    };
    sim.set_link("a", LinkDirection::Both, bad).unwrap();
    // smoltcp waits at least 1 s before a timeout retransmission, doubling
    // each time: give it room.
    let t = sim
        .start(TcpTransfer::send("a", "b", 9000, 200_000).timeout(Duration::from_secs(300)))
        .unwrap();
    sim.run_until(|s| s.is_done(t), Duration::from_secs(300));
    let r = sim.tcp_result(t).unwrap();
    assert!(r.completed_at.is_some() && r.error.is_none(), "{r:?}");
    assert_eq!(r.received, 200_000);
    let [up, down] = sim.link_stats("a/eth0").unwrap();
    assert!(up.lost + down.lost > 0, "the link did lose frames");
    assert!(up.duplicated + down.duplicated > 0, "and duplicated some");
}

#[test]
fn a_partition_stops_pings_and_a_heal_resumes_them() {
    let mut sim = two_on_front(12);
    assert_eq!(ping_received(&mut sim, "a", "b", 2), 2);
    sim.partition("a", "b").unwrap();
    assert_eq!(ping_received(&mut sim, "a", "b", 3), 0);
    assert_eq!(ping_received(&mut sim, "b", "a", 3), 0);
    let stats = sim.link_stats("b/eth0").unwrap();
    assert!(
        stats[1].partitioned > 0,
        "the frames were dropped by the partition"
    );
    sim.heal("a", "b").unwrap();
    assert_eq!(ping_received(&mut sim, "a", "b", 2), 2);
}

#[test]
fn a_scheduled_partition_and_heal_cut_the_middle_of_a_ping_run() {
    let mut sim = two_on_front(13);
    sim.at(
        Instant::from_millis(2_500),
        Fault::Partition {
            a: "a".into(),
            b: "b".into(),
            oneway: false,
        },
    );
    sim.at(
        Instant::from_millis(5_500),
        Fault::Heal {
            a: "a".into(),
            b: "b".into(),
        },
    );
    let p = sim.ping("a", "b", 8).unwrap();
    sim.run_until(|s| s.is_done(p), Duration::from_secs(30));
    // Requests at 0,1,2 and 6,7 s are answered; 3,4,5 s fall in the cut.
    assert_eq!(sim.ping_result(p).unwrap().received, 5);
    assert_eq!(sim.fault_log().len(), 2);
}

#[test]
fn a_one_way_partition_drops_one_direction_only() {
    let mut sim = two_on_front(14);
    assert_eq!(
        ping_received(&mut sim, "a", "b", 1),
        1,
        "ARP done while connected"
    );
    sim.partition_oneway("a", "b").unwrap();
    let a_rx_before = sim.interfaces("a").unwrap()[0].rx_frames;
    let b_rx_before = sim.interfaces("b").unwrap()[0].rx_frames;
    // b's requests reach a; a's replies never reach b.
    assert_eq!(ping_received(&mut sim, "b", "a", 3), 0);
    assert_eq!(sim.interfaces("a").unwrap()[0].rx_frames, a_rx_before + 3);
    assert_eq!(sim.interfaces("b").unwrap()[0].rx_frames, b_rx_before);
}

#[test]
fn a_host_restart_restores_networks_and_endpoints_from_the_store() {
    let mut sim = two_on_front(15);
    assert_eq!(ping_received(&mut sim, "a", "b", 1), 1);
    let endpoints_before: Vec<String> = sim
        .controller("h1")
        .unwrap()
        .endpoints()
        .map(|e| e.id.clone())
        .collect();

    sim.crash_host("h1").unwrap();
    assert!(sim.controller("h1").is_err(), "the daemon is down");
    assert_eq!(
        ping_received(&mut sim, "a", "b", 2),
        0,
        "no switch, no traffic"
    );

    sim.restart_host("h1").unwrap();
    let ctrl = sim.controller("h1").unwrap();
    assert!(ctrl.network("front").is_ok());
    let endpoints_after: Vec<String> = ctrl.endpoints().map(|e| e.id.clone()).collect();
    assert_eq!(endpoints_after, endpoints_before);
    assert!(sim.fdb("h1").unwrap().is_empty(), "the FDB starts empty");
    // Two endpoints, plus the gateways of `front` and `bridge`.
    assert_eq!(
        sim.ports("h1").unwrap().len(),
        4,
        "both endpoint ports and both gateways re-planned"
    );
    assert_eq!(ping_received(&mut sim, "a", "b", 2), 2, "traffic resumes");
}

#[test]
fn a_container_crash_fails_its_apps_and_a_restart_brings_it_back() {
    let mut sim = two_on_front(16);
    let t = sim.tcp_transfer("b", "a", 80, 10_000_000).unwrap();
    sim.run_for(Duration::from_millis(5));
    sim.crash_container("b").unwrap();
    let r = sim.tcp_result(t).unwrap();
    assert!(
        r.done && r.error.as_deref() == Some("container b crashed"),
        "{r:?}"
    );
    assert!(sim.ports("h1").unwrap().iter().all(|p| p.label != "b/eth0"));
    assert_eq!(ping_received(&mut sim, "a", "10.0.1.11", 2), 0);

    sim.restart_container("b").unwrap();
    assert_eq!(
        sim.ip_of("b", "front"),
        Some("10.0.1.11".parse().unwrap()),
        "static address kept"
    );
    // The fresh stack knows no neighbour: smoltcp drops its first echo
    // reply while it resolves a's MAC, so the first request goes unanswered.
    assert!(ping_received(&mut sim, "a", "b", 3) >= 2);
}
