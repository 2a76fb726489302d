//! The bridge's forwarding rules, one behaviour per test.

mod bridge_support;

use bridge_support::*;
use core::time::Duration;
use std::net::{Ipv4Addr, Ipv6Addr};
use switchyard_switch::{
    Action, Bridge, BridgeConfig, Decision, DropReason, Egress, FloodReason, FrameMeta,
    HorizonGroup, Instant, LearnOutcome, MacAddr, PortBinding, PortConfig, PortId, SegmentId,
    StaticEntryError,
};

const T0: Instant = Instant::from_secs(1);

fn bridge() -> Bridge {
    Bridge::new(BridgeConfig::default())
}

/// A bridge with `n` trunk ports in segment 1.
fn trunks(n: usize) -> (Bridge, Vec<PortId>) {
    let mut b = bridge();
    let ports = (0..n).map(|_| b.add_port(trunk(1))).collect();
    (b, ports)
}

fn send(b: &mut Bridge, at: Instant, port: PortId, frame: &[u8]) -> (Decision, Vec<PortId>) {
    let mut out = Egress::new();
    let d = b.process(at, port, frame, &mut out);
    (d, out.ports().to_vec())
}

fn dropped(b: &Bridge, port: PortId, reason: DropReason) -> u64 {
    b.counters(port).unwrap().drops_for(reason)
}

#[test]
fn a_source_is_learned_then_refreshed() {
    let (mut b, p) = trunks(2);
    let a = mac(1, 1);
    let (d, _) = send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, a));
    assert_eq!(d.learn, LearnOutcome::Learned);
    assert_eq!(b.lookup(T0, SegmentId(1), a), Some(p[0]));
    let (d, _) = send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, a));
    assert_eq!(d.learn, LearnOutcome::Refreshed);
    assert_eq!(b.stats().learned, 1);
    assert_eq!(b.stats().refreshed, 1);
}

#[test]
fn known_unicast_goes_to_exactly_one_port() {
    let (mut b, p) = trunks(4);
    send(&mut b, T0, p[2], &raw(MacAddr::BROADCAST, mac(1, 3)));
    let (d, out) = send(&mut b, T0, p[0], &raw(mac(1, 3), mac(1, 1)));
    assert_eq!(d.action, Action::Unicast(p[2]));
    assert_eq!(out, vec![p[2]]);
    assert_eq!(b.counters(p[2]).unwrap().tx_frames, 1);
    assert_eq!(
        b.counters(p[1]).unwrap().tx_frames,
        1,
        "only the first broadcast reached p1"
    );
}

#[test]
fn unknown_unicast_floods_every_port_but_the_ingress() {
    let (mut b, p) = trunks(4);
    let (d, out) = send(&mut b, T0, p[1], &raw(mac(1, 9), mac(1, 1)));
    assert_eq!(d.action, Action::Flood(FloodReason::UnknownUnicast));
    assert_eq!(out, vec![p[0], p[2], p[3]]);
}

#[test]
fn broadcast_and_multicast_flood_the_segment() {
    let (mut b, p) = trunks(3);
    let (d, out) = send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, mac(1, 1)));
    assert_eq!(d.action, Action::Flood(FloodReason::Broadcast));
    assert_eq!(out, vec![p[1], p[2]]);
    let mdns = MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]);
    let (d, out) = send(&mut b, T0, p[2], &raw(mdns, mac(1, 3)));
    assert_eq!(d.action, Action::Flood(FloodReason::Multicast));
    assert_eq!(out, vec![p[0], p[1]]);
}

#[test]
fn a_lone_port_has_no_one_to_flood_to() {
    let (mut b, p) = trunks(1);
    let (d, out) = send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, mac(1, 1)));
    assert_eq!(d.action, Action::Drop(DropReason::NoDestination));
    assert!(out.is_empty());
    assert_eq!(
        d.learn,
        LearnOutcome::Learned,
        "the source is still learned"
    );
    assert_eq!(dropped(&b, p[0], DropReason::NoDestination), 1);
}

#[test]
fn a_destination_behind_the_ingress_port_is_dropped() {
    let (mut b, p) = trunks(2);
    send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, mac(1, 2)));
    let (d, out) = send(&mut b, T0, p[0], &raw(mac(1, 2), mac(1, 1)));
    assert_eq!(d.action, Action::Drop(DropReason::SameSegmentLoop));
    assert!(out.is_empty());
    assert_eq!(dropped(&b, p[0], DropReason::SameSegmentLoop), 1);
}

#[test]
fn segments_are_isolated() {
    let mut b = bridge();
    let a1 = b.add_port(trunk(1));
    let a2 = b.add_port(trunk(1));
    let b1 = b.add_port(trunk(2));
    let b2 = b.add_port(trunk(2));
    let (_, out) = send(&mut b, T0, a1, &raw(MacAddr::BROADCAST, mac(1, 1)));
    assert_eq!(out, vec![a2]);
    // The same MAC learned in segment 2 says nothing about segment 1.
    send(&mut b, T0, b2, &raw(MacAddr::BROADCAST, mac(9, 9)));
    let (d, out) = send(&mut b, T0, a1, &raw(mac(9, 9), mac(1, 1)));
    assert_eq!(d.action, Action::Flood(FloodReason::UnknownUnicast));
    assert_eq!(out, vec![a2]);
    assert_eq!(b.lookup(T0, SegmentId(1), mac(9, 9)), None);
    assert_eq!(b.lookup(T0, SegmentId(2), mac(9, 9)), Some(b2));
    assert_eq!(
        b.counters(b1).unwrap().tx_frames,
        1,
        "only segment 2's broadcast"
    );
}

#[test]
fn a_station_that_moves_is_relearned() {
    let (mut b, p) = trunks(3);
    send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, mac(1, 1)));
    let (d, _) = send(&mut b, T0, p[1], &raw(MacAddr::BROADCAST, mac(1, 1)));
    assert_eq!(d.learn, LearnOutcome::Moved { from: p[0] });
    let (d, out) = send(&mut b, T0, p[2], &raw(mac(1, 1), mac(1, 3)));
    assert_eq!(d.action, Action::Unicast(p[1]));
    assert_eq!(out, vec![p[1]]);
    assert_eq!(b.stats().moved, 1);
}

#[test]
fn ageing_forgets_a_silent_station() {
    let (mut b, p) = trunks(3);
    send(&mut b, T0, p[1], &raw(MacAddr::BROADCAST, mac(1, 2)));
    let just_before = T0 + Duration::from_nanos(300_000_000_000 - 1);
    assert_eq!(b.lookup(just_before, SegmentId(1), mac(1, 2)), Some(p[1]));
    let aged = T0 + Duration::from_secs(300);
    assert_eq!(b.lookup(aged, SegmentId(1), mac(1, 2)), None);
    let (d, out) = send(&mut b, aged, p[0], &raw(mac(1, 2), mac(1, 1)));
    assert_eq!(d.action, Action::Flood(FloodReason::UnknownUnicast));
    assert_eq!(out, vec![p[1], p[2]]);
}

#[test]
fn expire_sweeps_aged_entries_and_counts_them() {
    let (mut b, p) = trunks(2);
    send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, mac(1, 1)));
    send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, mac(1, 2)));
    let later = T0 + Duration::from_secs(100);
    send(&mut b, later, p[1], &raw(MacAddr::BROADCAST, mac(1, 3)));
    assert_eq!(b.expire(T0 + Duration::from_secs(299)), 0);
    assert_eq!(b.expire(T0 + Duration::from_secs(300)), 2);
    assert_eq!(b.fdb_len(), 1);
    assert_eq!(b.stats().aged_out, 2);
    let entries = b.fdb_entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].mac, entries[0].port, entries[0].last_seen),
        (mac(1, 3), p[1], later)
    );
}

#[test]
fn a_full_segment_refuses_to_learn_but_keeps_forwarding() {
    let mut b = Bridge::new(BridgeConfig {
        fdb_capacity_per_segment: 2,
        ..BridgeConfig::default()
    });
    let p1 = b.add_port(trunk(1));
    let p2 = b.add_port(trunk(1));
    let q1 = b.add_port(trunk(2));
    let _q2 = b.add_port(trunk(2));
    send(&mut b, T0, p1, &raw(MacAddr::BROADCAST, mac(1, 1)));
    send(&mut b, T0, p2, &raw(MacAddr::BROADCAST, mac(1, 2)));
    // Full: a third station is not learned, but its frame still goes out.
    let (d, out) = send(&mut b, T0, p1, &raw(mac(1, 2), mac(1, 3)));
    assert_eq!(
        d,
        Decision {
            learn: LearnOutcome::RefusedFull,
            action: Action::Unicast(p2)
        }
    );
    assert_eq!(out, vec![p2]);
    assert_eq!(b.stats().refused_full, 1);
    assert_eq!(b.fdb_segment_len(SegmentId(1)), 2);
    // Frames to it are flooded.
    let (d, _) = send(&mut b, T0, p2, &raw(mac(1, 3), mac(1, 2)));
    assert_eq!(d.action, Action::Flood(FloodReason::UnknownUnicast));
    // Known stations still refresh and move.
    let (d, _) = send(&mut b, T0, p1, &raw(MacAddr::BROADCAST, mac(1, 1)));
    assert_eq!(d.learn, LearnOutcome::Refreshed);
    let (d, _) = send(&mut b, T0, p2, &raw(MacAddr::BROADCAST, mac(1, 1)));
    assert_eq!(d.learn, LearnOutcome::Moved { from: p1 });
    // Other segments still learn.
    let (d, _) = send(&mut b, T0, q1, &raw(MacAddr::BROADCAST, mac(2, 1)));
    assert_eq!(d.learn, LearnOutcome::Learned);
    // MAC flooding does not grow the table.
    for n in 0..=255u8 {
        send(
            &mut b,
            T0,
            p1,
            &raw(MacAddr::BROADCAST, MacAddr([0x02, 0, 0, 0, 7, n])),
        );
    }
    assert_eq!(b.fdb_segment_len(SegmentId(1)), 2);
    assert_eq!(b.stats().refused_full, 1 + 256);
}

#[test]
fn expiry_makes_room_in_a_full_segment() {
    let mut b = Bridge::new(BridgeConfig {
        fdb_capacity_per_segment: 1,
        ..BridgeConfig::default()
    });
    let p = [b.add_port(trunk(1)), b.add_port(trunk(1))];
    send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, mac(1, 1)));
    let later = T0 + Duration::from_secs(301);
    let (d, _) = send(&mut b, later, p[1], &raw(MacAddr::BROADCAST, mac(1, 2)));
    assert_eq!(
        d.learn,
        LearnOutcome::RefusedFull,
        "aged entries hold their room until swept"
    );
    assert_eq!(b.expire(later), 1);
    let (d, _) = send(&mut b, later, p[1], &raw(MacAddr::BROADCAST, mac(1, 2)));
    assert_eq!(d.learn, LearnOutcome::Learned);
}

#[test]
fn removing_a_port_purges_its_entries_and_its_id_is_never_reused() {
    let (mut b, p) = trunks(3);
    send(&mut b, T0, p[1], &raw(MacAddr::BROADCAST, mac(1, 2)));
    send(&mut b, T0, p[1], &raw(MacAddr::BROADCAST, mac(1, 4)));
    send(&mut b, T0, p[2], &raw(MacAddr::BROADCAST, mac(1, 3)));
    assert_eq!(b.remove_port(p[1]).unwrap().label, "trunk1");
    assert_eq!(b.remove_port(p[1]), None);
    assert_eq!(b.stats().purged, 2);
    assert_eq!(b.lookup(T0, SegmentId(1), mac(1, 2)), None);
    assert_eq!(b.lookup(T0, SegmentId(1), mac(1, 3)), Some(p[2]));
    let (d, out) = send(&mut b, T0, p[0], &raw(mac(1, 2), mac(1, 1)));
    assert_eq!(d.action, Action::Flood(FloodReason::UnknownUnicast));
    assert_eq!(out, vec![p[2]]);
    let fresh = b.add_port(trunk(1));
    assert!(fresh > p[2], "ids count up and are never reused");
    let (d, _) = send(&mut b, T0, p[1], &raw(MacAddr::BROADCAST, mac(1, 2)));
    assert_eq!(d.action, Action::Drop(DropReason::UnknownPort));
    assert_eq!(b.stats().unknown_port, 1);
    let ids: Vec<PortId> = b.ports().map(|(id, _)| id).collect();
    assert_eq!(ids, vec![p[0], p[2], fresh]);
    assert_eq!(b.segment_ports(SegmentId(1)).collect::<Vec<_>>(), ids);
}

#[test]
fn a_segment_can_be_emptied_and_reused() {
    let mut b = bridge();
    let a = b.add_port(trunk(5));
    b.remove_port(a);
    assert_eq!(b.segment_ports(SegmentId(5)).count(), 0);
    let c = b.add_port(trunk(5));
    let d = b.add_port(trunk(5));
    let (_, out) = send(&mut b, T0, c, &raw(MacAddr::BROADCAST, mac(5, 1)));
    assert_eq!(out, vec![d]);
}

#[test]
fn sources_must_be_unicast() {
    let (mut b, p) = trunks(2);
    for src in [
        MacAddr::BROADCAST,
        MacAddr([0x01, 0, 0x5e, 0, 0, 1]),
        MacAddr::ZERO,
    ] {
        let (d, out) = send(&mut b, T0, p[0], &raw(mac(1, 2), src));
        assert_eq!(
            d,
            Decision {
                learn: LearnOutcome::NotLearned,
                action: Action::Drop(DropReason::InvalidSource)
            }
        );
        assert!(out.is_empty());
    }
    assert_eq!(dropped(&b, p[0], DropReason::InvalidSource), 3);
    assert_eq!(b.fdb_len(), 0);
}

#[test]
fn truncated_and_oversized_frames_are_counted() {
    let mut b = Bridge::new(BridgeConfig {
        max_frame_len: 100,
        ..BridgeConfig::default()
    });
    let p = [b.add_port(trunk(1)), b.add_port(trunk(1))];
    let (d, _) = send(&mut b, T0, p[0], &[0u8; 13]);
    assert_eq!(d.action, Action::Drop(DropReason::Truncated));
    let mut tagged_header = raw(MacAddr::BROADCAST, mac(1, 1));
    tagged_header[12..14].copy_from_slice(&[0x81, 0x00]);
    let (d, _) = send(&mut b, T0, p[0], &tagged_header[..17]);
    assert_eq!(d.action, Action::Drop(DropReason::Truncated));
    let (d, _) = send(&mut b, T0, p[0], &[0u8; 101]);
    assert_eq!(d.action, Action::Drop(DropReason::Oversized));
    let (d, _) = send(
        &mut b,
        T0,
        p[0],
        &eth(
            MacAddr::BROADCAST,
            mac(1, 1),
            switchyard_switch::wire::EtherType(0x88b5),
            &[0; 86],
        ),
    );
    assert!(d.is_forwarded(), "exactly the limit passes");
    let c = b.counters(p[0]).unwrap();
    assert_eq!(c.drops_for(DropReason::Truncated), 2);
    assert_eq!(c.drops_for(DropReason::Oversized), 1);
    assert_eq!(c.rx_frames, 4);
    assert_eq!(c.rx_bytes, 13 + 17 + 101 + 100);
    assert_eq!(b.fdb_len(), 1);
}

#[test]
fn counters_follow_rx_tx_and_drops() {
    let (mut b, p) = trunks(3);
    let f = raw(MacAddr::BROADCAST, mac(1, 1));
    send(&mut b, T0, p[0], &f);
    send(&mut b, T0, p[1], &raw(mac(1, 1), mac(1, 2)));
    send(&mut b, T0, p[1], &[0u8; 3]);
    let c0 = b.counters(p[0]).unwrap();
    assert_eq!(
        (c0.rx_frames, c0.rx_bytes, c0.tx_frames, c0.tx_bytes),
        (1, 60, 1, 60)
    );
    let c1 = b.counters(p[1]).unwrap();
    assert_eq!(
        (c1.rx_frames, c1.rx_bytes, c1.tx_frames, c1.dropped()),
        (2, 63, 1, 1)
    );
    let c2 = b.counters(p[2]).unwrap();
    assert_eq!((c2.rx_frames, c2.tx_frames), (0, 1));
    let s = b.stats();
    assert_eq!((s.frames, s.unicast, s.flooded, s.dropped), (3, 1, 1, 1));
}

#[test]
fn egress_is_reused_without_growing() {
    let (mut b, p) = trunks(8);
    let mut out = b.egress();
    let cap = out.ports().as_ptr();
    for i in 0..100u8 {
        b.process(
            T0,
            p[usize::from(i) % 8],
            &raw(MacAddr::BROADCAST, mac(1, i)),
            &mut out,
        );
        assert_eq!(out.len(), 7);
    }
    assert_eq!(out.ports().as_ptr(), cap, "the same buffer every time");
}

// ---- port security ----

/// Segment 1 with an endpoint port for station (1, 1) and a trunk.
fn secured() -> (Bridge, PortId, PortId) {
    let mut b = bridge();
    let ep = b.add_port(endpoint(1, 1));
    let tr = b.add_port(trunk(1));
    (b, ep, tr)
}

fn assert_refused(b: &mut Bridge, ep: PortId, frame: &[u8], reason: DropReason) {
    let before = dropped(b, ep, reason);
    let (d, out) = send(b, T0, ep, frame);
    assert_eq!(
        d,
        Decision {
            learn: LearnOutcome::NotLearned,
            action: Action::Drop(reason)
        }
    );
    assert!(out.is_empty());
    assert_eq!(dropped(b, ep, reason), before + 1);
    assert_eq!(b.fdb_len(), 0, "a refused frame must not poison the FDB");
}

#[test]
fn endpoint_frames_with_their_own_addresses_pass() {
    let (mut b, ep, tr) = secured();
    let me = mac(1, 1);
    let frames = [
        raw(MacAddr::BROADCAST, me),
        ipv4(MacAddr::BROADCAST, me, ip4(1, 1), ip4(1, 2)),
        arp(MacAddr::BROADCAST, me, me, ip4(1, 1), ip4(1, 2)),
        ipv6(MacAddr::BROADCAST, me, ip6(1, 1)),
    ];
    for f in frames {
        let (d, out) = send(&mut b, T0, ep, &f);
        assert!(d.is_forwarded(), "{d}");
        assert_eq!(out, vec![tr]);
    }
    assert_eq!(b.lookup(T0, SegmentId(1), me), Some(ep));
}

#[test]
fn a_spoofed_source_mac_is_dropped() {
    let (mut b, ep, _) = secured();
    assert_refused(
        &mut b,
        ep,
        &raw(MacAddr::BROADCAST, mac(1, 2)),
        DropReason::SpoofedMac,
    );
    assert_refused(
        &mut b,
        ep,
        &ipv4(MacAddr::BROADCAST, mac(1, 2), ip4(1, 1), ip4(1, 2)),
        DropReason::SpoofedMac,
    );
}

#[test]
fn a_spoofed_ipv4_source_is_dropped() {
    let (mut b, ep, _) = secured();
    assert_refused(
        &mut b,
        ep,
        &ipv4(MacAddr::BROADCAST, mac(1, 1), ip4(1, 2), ip4(1, 3)),
        DropReason::SpoofedIp,
    );
    assert_refused(
        &mut b,
        ep,
        &ipv4(
            MacAddr::BROADCAST,
            mac(1, 1),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
        ),
        DropReason::SpoofedIp,
    );
}

#[test]
fn an_endpoint_without_ipv4_may_not_send_ipv4() {
    let mut b = bridge();
    let ep = b.add_port(PortConfig {
        segment: SegmentId(1),
        binding: PortBinding::Endpoint {
            mac: mac(1, 1),
            ipv4: None,
            ipv6: None,
        },
        ..endpoint(1, 1)
    });
    b.add_port(trunk(1));
    assert_refused(
        &mut b,
        ep,
        &ipv4(MacAddr::BROADCAST, mac(1, 1), ip4(1, 1), ip4(1, 2)),
        DropReason::SpoofedIp,
    );
    let probe = arp(
        MacAddr::BROADCAST,
        mac(1, 1),
        mac(1, 1),
        Ipv4Addr::UNSPECIFIED,
        ip4(1, 1),
    );
    assert!(
        send(&mut b, T0, ep, &probe).0.is_forwarded(),
        "an ARP probe is still fine"
    );
}

#[test]
fn broken_ipv4_headers_from_endpoints_are_truncated_or_malformed() {
    let (mut b, ep, _) = secured();
    let me = mac(1, 1);
    // Only 10 bytes of IPv4 header before the frame ends.
    let mut short = eth(
        MacAddr::BROADCAST,
        me,
        switchyard_switch::wire::EtherType::IPV4,
        &[],
    );
    short.truncate(24);
    short[14] = 0x45;
    assert_refused(&mut b, ep, &short, DropReason::Truncated);
    // Total length larger than the frame.
    let mut long = ipv4(MacAddr::BROADCAST, me, ip4(1, 1), ip4(1, 2));
    long[16..18].copy_from_slice(&1000u16.to_be_bytes());
    assert_refused(&mut b, ep, &long, DropReason::Truncated);
    let mut v6 = ipv4(MacAddr::BROADCAST, me, ip4(1, 1), ip4(1, 2));
    v6[14] = 0x65;
    assert_refused(&mut b, ep, &v6, DropReason::Malformed);
    let mut ihl = ipv4(MacAddr::BROADCAST, me, ip4(1, 1), ip4(1, 2));
    ihl[14] = 0x43;
    assert_refused(&mut b, ep, &ihl, DropReason::Malformed);
}

#[test]
fn arp_sender_addresses_are_checked() {
    let (mut b, ep, _) = secured();
    let me = mac(1, 1);
    assert_refused(
        &mut b,
        ep,
        &arp(MacAddr::BROADCAST, me, mac(1, 2), ip4(1, 1), ip4(1, 2)),
        DropReason::SpoofedMac,
    );
    assert_refused(
        &mut b,
        ep,
        &arp(MacAddr::BROADCAST, me, me, ip4(1, 2), ip4(1, 3)),
        DropReason::SpoofedIp,
    );
    let mut not_ipv4 = arp(MacAddr::BROADCAST, me, me, ip4(1, 1), ip4(1, 2));
    not_ipv4[16..18].copy_from_slice(&0x86ddu16.to_be_bytes());
    assert_refused(&mut b, ep, &not_ipv4, DropReason::Malformed);
}

#[test]
fn an_arp_probe_from_0_0_0_0_is_allowed() {
    let (mut b, ep, tr) = secured();
    let me = mac(1, 1);
    let (d, out) = send(
        &mut b,
        T0,
        ep,
        &arp(MacAddr::BROADCAST, me, me, Ipv4Addr::UNSPECIFIED, ip4(1, 1)),
    );
    assert_eq!(d.action, Action::Flood(FloodReason::Broadcast));
    assert_eq!(out, vec![tr]);
}

#[test]
fn ipv6_sources_must_be_the_endpoints_address_or_its_mac_derived_link_local() {
    let (mut b, ep, _) = secured();
    let me = mac(1, 1);
    for ok in [ip6(1, 1), "fe80::42:aff:fe00:101".parse().unwrap()] {
        assert!(
            send(&mut b, T0, ep, &ipv6(MacAddr::BROADCAST, me, ok))
                .0
                .is_forwarded(),
            "{ok}"
        );
        let udp = ipv6_raw(mac(1, 2), me, ok, ip6(1, 2), IpProtocol::UDP, &[0; 8]);
        assert!(send(&mut b, T0, ep, &udp).0.is_forwarded(), "UDP from {ok}");
    }
    let mut fresh = secured();
    for bad in [
        ip6(1, 2),
        lla(mac(1, 2)),
        "fe80::1".parse().unwrap(),
        "febf::1".parse().unwrap(),
        "fec0::1".parse().unwrap(),
        "2001:db8::1".parse().unwrap(),
        // An ICMPv6 message that is no address-less host's to send.
        Ipv6Addr::UNSPECIFIED,
    ] {
        assert_refused(
            &mut fresh.0,
            fresh.1,
            &ipv6(MacAddr::BROADCAST, me, bad),
            DropReason::SpoofedIp,
        );
        // TCP and UDP take a shorter path through the checks, to the same
        // verdict.
        for (proto, len) in [(IpProtocol::UDP, 8), (IpProtocol::TCP, 20)] {
            let f = ipv6_raw(mac(1, 2), me, bad, ip6(1, 2), proto, &vec![0; len]);
            assert_refused(&mut fresh.0, fresh.1, &f, DropReason::SpoofedIp);
        }
    }
}

#[test]
fn tagged_frames_are_checked_on_their_inner_header() {
    let (mut b, ep, tr) = secured();
    let me = mac(1, 1);
    let good = tagged(&ipv4(MacAddr::BROADCAST, me, ip4(1, 1), ip4(1, 2)), 10);
    let (d, out) = send(&mut b, T0, ep, &good);
    assert!(d.is_forwarded());
    assert_eq!(out, vec![tr]);
    let mut fresh = secured();
    let spoofed = tagged(&ipv4(MacAddr::BROADCAST, me, ip4(1, 9), ip4(1, 2)), 10);
    assert_refused(&mut fresh.0, fresh.1, &spoofed, DropReason::SpoofedIp);
    let spoofed_arp = tagged(
        &arp(MacAddr::BROADCAST, me, mac(1, 9), ip4(1, 1), ip4(1, 2)),
        10,
    );
    assert_refused(&mut fresh.0, fresh.1, &spoofed_arp, DropReason::SpoofedMac);
    // A second tag would hide the IPv4 header: refused.
    let double = tagged(
        &tagged(&ipv4(MacAddr::BROADCAST, me, ip4(1, 9), ip4(1, 2)), 10),
        20,
    );
    assert_refused(&mut fresh.0, fresh.1, &double, DropReason::Malformed);
}

#[test]
fn trunk_ports_are_not_checked() {
    let (mut b, ep, tr) = secured();
    let spoof = ipv4(MacAddr::BROADCAST, mac(1, 1), ip4(9, 9), ip4(1, 2));
    let (d, out) = send(&mut b, T0, tr, &spoof);
    assert_eq!(d.learn, LearnOutcome::Learned);
    assert_eq!(out, vec![ep]);
}

// ---- explanations ----

#[test]
fn explanations_say_why_a_frame_went_where_it_went() {
    let mut b = bridge();
    let p1 = b.add_port(PortConfig {
        label: "web/eth0".into(),
        ..trunk(1)
    });
    let p2 = b.add_port(PortConfig {
        label: "db/eth0".into(),
        ..trunk(1)
    });
    let p3 = b.add_port(trunk(1));
    let mut out = b.egress();
    let db = MacAddr([0x02, 0x42, 0xac, 0x12, 0x00, 0x03]);
    let web = MacAddr([0x02, 0x42, 0xac, 0x12, 0x00, 0x02]);

    let f = raw(web, db);
    let d = b.process(Instant::from_millis(1200), p2, &f, &mut out);
    assert_eq!(
        b.explain(p2, &f, d, &out).to_string(),
        "p2 (db/eth0) in seg1: src 02:42:ac:12:00:03 learned on p2; \
         dst 02:42:ac:12:00:02 unknown in seg1 -> flooded to 2 ports (p1, p3)"
    );
    let f = raw(db, web);
    let d = b.process(Instant::from_secs(2), p1, &f, &mut out);
    assert_eq!(
        b.explain(p1, &f, d, &out).to_string(),
        "p1 (web/eth0) in seg1: src 02:42:ac:12:00:02 learned on p1; \
         dst 02:42:ac:12:00:03 learned on p2 at 1.2s -> unicast to p2 (db/eth0)"
    );
    let f = raw(MacAddr::BROADCAST, MacAddr::BROADCAST);
    let d = b.process(Instant::from_secs(2), p3, &f, &mut out);
    assert_eq!(
        b.explain(p3, &f, d, &out).to_string(),
        "p3 (trunk1) in seg1: src ff:ff:ff:ff:ff:ff is not a unicast address -> dropped"
    );
    assert_eq!(
        d.to_string(),
        "source not learned -> dropped (source MAC is not a unicast address)"
    );
}

#[test]
fn explanations_of_port_security_name_the_endpoint() {
    let (mut b, ep, _) = secured();
    let mut out = b.egress();
    let f = ipv4(MacAddr::BROADCAST, mac(1, 1), ip4(1, 7), ip4(1, 2));
    let d = b.process(T0, ep, &f, &mut out);
    let text = b.explain(ep, &f, d, &out).to_string();
    assert!(text.contains("sender IP is not the endpoint's"), "{text}");
    assert!(text.contains("10.0.1.1"), "{text}");
    assert!(text.ends_with("-> dropped, not learned"), "{text}");
}

// ---- IPv6 neighbour discovery ----

use switchyard_switch::wire::{Icmpv6Message, Icmpv6Repr, IpProtocol, NeighborFlags};

/// An unsolicited, overriding Neighbor Advertisement from `src_ip` for
/// `target` at `tlla`: the cache-poisoning shape.
fn na(src: MacAddr, src_ip: Ipv6Addr, target: Ipv6Addr, tlla: Option<MacAddr>) -> Vec<u8> {
    ndp(
        src,
        src_ip,
        &Icmpv6Repr::NeighborAdvert {
            flags: NeighborFlags::OVERRIDE,
            target,
            lladdr: tlla,
        },
        &[],
    )
}

fn ns(src: MacAddr, src_ip: Ipv6Addr, target: Ipv6Addr, slla: Option<MacAddr>) -> Vec<u8> {
    ndp(
        src,
        src_ip,
        &Icmpv6Repr::NeighborSolicit {
            target,
            lladdr: slla,
        },
        &[],
    )
}

fn forwarded_to(b: &mut Bridge, ep: PortId, frame: &[u8]) -> Vec<PortId> {
    let (d, out) = send(b, T0, ep, frame);
    assert!(
        d.is_forwarded(),
        "{d}: {}",
        b.explain(ep, frame, d, &b.egress())
    );
    out
}

#[test]
fn a_neighbour_advertisement_for_another_stations_address_is_dropped() {
    let (mut b, ep, _) = secured();
    let me = mac(1, 1);
    // A advertises B's global address at A's MAC, from A's own link-local
    // address: C would send B's traffic to A.
    for target in [
        ip6(1, 2),
        lla(mac(1, 2)),
        "fe80::1".parse().unwrap(),
        "febf::1".parse().unwrap(),
        "ff02::1".parse().unwrap(),
        Ipv6Addr::UNSPECIFIED,
    ] {
        for src_ip in [lla(me), ip6(1, 1)] {
            assert_refused(
                &mut b,
                ep,
                &na(me, src_ip, target, Some(me)),
                DropReason::SpoofedIp,
            );
        }
    }
    assert_eq!(b.lookup(T0, SegmentId(1), me), None, "nothing was learned");
    assert_eq!(b.counters(ep).unwrap().tx_frames, 0);
}

#[test]
fn a_neighbour_advertisement_with_a_foreign_target_link_layer_address_is_dropped() {
    let (mut b, ep, _) = secured();
    let me = mac(1, 1);
    for target in [ip6(1, 1), lla(me)] {
        assert_refused(
            &mut b,
            ep,
            &na(me, lla(me), target, Some(mac(1, 2))),
            DropReason::SpoofedMac,
        );
    }
}

#[test]
fn a_neighbour_solicitation_with_a_foreign_source_link_layer_address_is_dropped() {
    let (mut b, ep, _) = secured();
    let me = mac(1, 1);
    for src_ip in [lla(me), ip6(1, 1)] {
        assert_refused(
            &mut b,
            ep,
            &ns(me, src_ip, ip6(1, 2), Some(mac(1, 2))),
            DropReason::SpoofedMac,
        );
    }
    // The same option in a router solicitation.
    assert_refused(
        &mut b,
        ep,
        &ndp(
            me,
            lla(me),
            &Icmpv6Repr::RouterSolicit {
                lladdr: Some(mac(1, 2)),
            },
            &[],
        ),
        DropReason::SpoofedMac,
    );
}

#[test]
fn neighbour_discovery_from_another_stations_link_local_address_is_dropped() {
    let (mut b, ep, _) = secured();
    let me = mac(1, 1);
    // A solicitation installs its source in the receiver's cache at the
    // link-layer address it gives: from B's (or the gateway's) link-local
    // address at A's MAC it poisons just like an advertisement.
    for src_ip in [lla(mac(1, 2)), "fe80::1".parse().unwrap()] {
        assert_refused(
            &mut b,
            ep,
            &ns(me, src_ip, ip6(1, 2), Some(me)),
            DropReason::SpoofedIp,
        );
        assert_refused(
            &mut b,
            ep,
            &na(me, src_ip, ip6(1, 1), Some(me)),
            DropReason::SpoofedIp,
        );
        assert_refused(
            &mut b,
            ep,
            &ndp(
                me,
                src_ip,
                &Icmpv6Repr::RouterSolicit { lladdr: Some(me) },
                &[],
            ),
            DropReason::SpoofedIp,
        );
    }
    // An advertisement has no business coming from `::`.
    assert_refused(
        &mut b,
        ep,
        &na(me, Ipv6Addr::UNSPECIFIED, ip6(1, 1), Some(me)),
        DropReason::SpoofedIp,
    );
}

#[test]
fn legitimate_neighbour_discovery_passes() {
    let (mut b, ep, tr) = secured();
    let me = mac(1, 1);
    let frames = [
        // Answers for its own addresses, from either of them.
        na(me, ip6(1, 1), ip6(1, 1), Some(me)),
        na(me, lla(me), lla(me), Some(me)),
        na(me, lla(me), ip6(1, 1), None),
        ndp(
            me,
            ip6(1, 1),
            &Icmpv6Repr::NeighborAdvert {
                flags: NeighborFlags::SOLICITED,
                target: ip6(1, 1),
                lladdr: Some(me),
            },
            &[],
        ),
        // Questions about anyone, from its own addresses.
        ns(me, lla(me), ip6(1, 2), Some(me)),
        ns(me, ip6(1, 1), lla(mac(1, 2)), Some(me)),
        ns(me, ip6(1, 1), ip6(1, 2), None),
        // Duplicate address detection: from ::, no link-layer option.
        ns(me, Ipv6Addr::UNSPECIFIED, ip6(1, 1), None),
        ns(me, Ipv6Addr::UNSPECIFIED, lla(me), None),
        ndp(
            me,
            lla(me),
            &Icmpv6Repr::RouterSolicit { lladdr: Some(me) },
            &[],
        ),
        ndp(
            me,
            Ipv6Addr::UNSPECIFIED,
            &Icmpv6Repr::RouterSolicit { lladdr: None },
            &[],
        ),
        // Not neighbour discovery at all.
        ndp(
            me,
            ip6(1, 1),
            &Icmpv6Repr::Other {
                msg_type: Icmpv6Message::ECHO_REQUEST,
                code: 0,
            },
            &[0, 1, 0, 1],
        ),
        ipv6_raw(
            mac(1, 2),
            me,
            ip6(1, 1),
            ip6(1, 2),
            IpProtocol::UDP,
            &[0; 8],
        ),
    ];
    for f in &frames {
        assert_eq!(forwarded_to(&mut b, ep, f), vec![tr]);
    }
    assert_eq!(b.lookup(T0, SegmentId(1), me), Some(ep));
}

#[test]
fn an_endpoint_without_ipv6_may_advertise_only_its_mac_derived_link_local_address() {
    let mut b = bridge();
    let me = mac(1, 1);
    let ep = b.add_port(PortConfig {
        segment: SegmentId(1),
        binding: PortBinding::Endpoint {
            mac: me,
            ipv4: Some(ip4(1, 1)),
            ipv6: None,
        },
        ..endpoint(1, 1)
    });
    b.add_port(trunk(1));
    forwarded_to(&mut b, ep, &na(me, lla(me), lla(me), Some(me)));
    let mut fresh = bridge();
    let ep = fresh.add_port(b.port(ep).unwrap().clone());
    fresh.add_port(trunk(1));
    assert_refused(
        &mut fresh,
        ep,
        &na(me, lla(me), ip6(1, 1), Some(me)),
        DropReason::SpoofedIp,
    );
}

#[test]
fn router_advertisements_and_redirects_from_an_endpoint_are_dropped() {
    let (mut b, ep, _) = secured();
    let me = mac(1, 1);
    for msg in [Icmpv6Message::ROUTER_ADVERT, Icmpv6Message::REDIRECT] {
        for src_ip in [lla(me), ip6(1, 1)] {
            assert_refused(
                &mut b,
                ep,
                &router_message(me, src_ip, msg),
                DropReason::SpoofedIp,
            );
        }
    }
}

#[test]
fn trunk_ports_pass_neighbour_discovery_unchecked() {
    let (mut b, ep, tr) = secured();
    let gw = mac(1, 9);
    for f in [
        na(gw, lla(gw), ip6(1, 1), Some(mac(1, 2))),
        ns(gw, "fe80::1".parse().unwrap(), ip6(1, 1), Some(mac(1, 3))),
        router_message(gw, "fe80::1".parse().unwrap(), Icmpv6Message::ROUTER_ADVERT),
        router_message(gw, "fe80::1".parse().unwrap(), Icmpv6Message::REDIRECT),
    ] {
        let (d, out) = send(&mut b, T0, tr, &f);
        assert!(d.is_forwarded(), "{d}");
        assert_eq!(out, vec![ep]);
    }
    assert_eq!(b.lookup(T0, SegmentId(1), gw), Some(tr));
}

#[test]
fn neighbour_discovery_behind_extension_headers_is_still_checked() {
    let (mut b, ep, tr) = secured();
    let me = mac(1, 1);
    let spoof = na(me, lla(me), ip6(1, 2), Some(me));
    let good = na(me, lla(me), ip6(1, 1), Some(me));
    let hbh = [(IpProtocol::HOP_BY_HOP, options_header())];
    let chain = [
        (IpProtocol::HOP_BY_HOP, options_header()),
        (IpProtocol::IPV6_OPTS, options_header()),
        (IpProtocol::IPV6_ROUTE, vec![0, 0, 0, 0, 0, 0, 0, 0]),
        // AH: length 1 means (1 + 2) * 4 = 12 bytes.
        (IpProtocol::AH, vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        (IpProtocol::IPV6_OPTS, options_header()),
    ];
    assert_refused(
        &mut b,
        ep,
        &with_ext_headers(&spoof, &hbh),
        DropReason::SpoofedIp,
    );
    assert_refused(
        &mut b,
        ep,
        &with_ext_headers(&spoof, &chain),
        DropReason::SpoofedIp,
    );
    assert_refused(
        &mut b,
        ep,
        &with_ext_headers(
            &router_message(me, lla(me), Icmpv6Message::ROUTER_ADVERT),
            &hbh,
        ),
        DropReason::SpoofedIp,
    );
    assert_refused(
        &mut b,
        ep,
        &tagged(&with_ext_headers(&spoof, &hbh), 10),
        DropReason::SpoofedIp,
    );
    // A chain longer than any real packet carries is refused outright.
    let nine = vec![(IpProtocol::IPV6_OPTS, options_header()); 9];
    assert_refused(
        &mut b,
        ep,
        &with_ext_headers(&good, &nine),
        DropReason::Malformed,
    );
    // A header running past the packet.
    let mut overrun = with_ext_headers(&good, &hbh);
    overrun[14 + 40 + 1] = 200;
    assert_refused(&mut b, ep, &overrun, DropReason::Truncated);
    // The same, legitimate, pass; eight headers are still fine.
    let eight = vec![(IpProtocol::IPV6_OPTS, options_header()); 8];
    for f in [
        with_ext_headers(&good, &hbh),
        with_ext_headers(&good, &chain),
        with_ext_headers(&good, &eight),
    ] {
        assert_eq!(forwarded_to(&mut b, ep, &f), vec![tr]);
    }
}

#[test]
fn fragmented_neighbour_discovery_from_an_endpoint_is_dropped_as_malformed() {
    // RFC 6980: neighbour discovery is never fragmented; receivers drop
    // it, and so does the bridge rather than trust every receiver to.
    let (mut b, ep, _) = secured();
    let me = mac(1, 1);
    for f in [
        na(me, lla(me), ip6(1, 2), Some(me)),
        na(me, lla(me), ip6(1, 1), Some(me)),
        ns(me, lla(me), ip6(1, 2), Some(me)),
        ndp(
            me,
            lla(me),
            &Icmpv6Repr::RouterSolicit { lladdr: Some(me) },
            &[],
        ),
    ] {
        for (offset, more) in [(0, true), (0, false)] {
            assert_refused(
                &mut b,
                ep,
                &fragmented(&f, offset, more),
                DropReason::Malformed,
            );
        }
        let hbh = with_ext_headers(&f, &[(IpProtocol::HOP_BY_HOP, options_header())]);
        assert_refused(
            &mut b,
            ep,
            &fragmented(&hbh, 0, true),
            DropReason::Malformed,
        );
    }
}

#[test]
fn a_first_fragment_without_its_whole_header_chain_is_dropped_as_malformed() {
    // RFC 7112: the first fragment carries every header up to and
    // including the upper-layer one; without them nobody can check it.
    let (mut b, ep, _) = secured();
    let me = mac(1, 1);
    let good = na(me, lla(me), ip6(1, 1), Some(me));
    let chain = fragmented(
        &with_ext_headers(&good, &[(IpProtocol::IPV6_OPTS, options_header())]),
        0,
        true,
    );
    let mut overrun = chain.clone();
    // The Destination Options header after the Fragment header claims
    // more bytes than the fragment holds.
    overrun[14 + 40 + 8 + 1] = 200;
    assert_refused(&mut b, ep, &overrun, DropReason::Malformed);
    // A UDP header cut short in a first fragment.
    let udp = ipv6_raw(
        mac(1, 2),
        me,
        ip6(1, 1),
        ip6(1, 2),
        IpProtocol::UDP,
        &[0; 4],
    );
    assert_refused(
        &mut b,
        ep,
        &fragmented(&udp, 0, true),
        DropReason::Malformed,
    );
}

#[test]
fn fragments_of_other_traffic_pass() {
    let (mut b, ep, tr) = secured();
    let me = mac(1, 1);
    let echo = ndp(
        me,
        ip6(1, 1),
        &Icmpv6Repr::Other {
            msg_type: Icmpv6Message::ECHO_REQUEST,
            code: 0,
        },
        &[0; 1200],
    );
    let udp = ipv6_raw(
        mac(1, 2),
        me,
        ip6(1, 1),
        ip6(1, 2),
        IpProtocol::UDP,
        &[0; 64],
    );
    for f in [
        fragmented(&echo, 0, true),
        fragmented(&udp, 0, true),
        // A later fragment is the middle of a packet: without its first
        // fragment it is nothing, whatever its bytes look like.
        fragmented(&na(me, lla(me), ip6(1, 2), Some(me)), 1232, false),
    ] {
        assert_eq!(forwarded_to(&mut b, ep, &f), vec![tr]);
    }
    // Still from the endpoint's own address.
    let mut fresh = secured();
    let foreign = ipv6_raw(
        mac(1, 2),
        me,
        ip6(1, 2),
        ip6(1, 3),
        IpProtocol::UDP,
        &[0; 64],
    );
    assert_refused(
        &mut fresh.0,
        fresh.1,
        &fragmented(&foreign, 8, false),
        DropReason::SpoofedIp,
    );
}

#[test]
fn tagged_neighbour_discovery_is_checked_on_the_inner_header() {
    let (mut b, ep, tr) = secured();
    let me = mac(1, 1);
    let good = tagged(&na(me, lla(me), ip6(1, 1), Some(me)), 10);
    assert_eq!(forwarded_to(&mut b, ep, &good), vec![tr]);
    let mut fresh = secured();
    for (f, reason) in [
        (
            tagged(&na(me, lla(me), ip6(1, 2), Some(me)), 10),
            DropReason::SpoofedIp,
        ),
        (
            tagged(&ns(me, lla(me), ip6(1, 2), Some(mac(1, 2))), 10),
            DropReason::SpoofedMac,
        ),
        (
            tagged(
                &router_message(me, lla(me), Icmpv6Message::ROUTER_ADVERT),
                10,
            ),
            DropReason::SpoofedIp,
        ),
    ] {
        assert_refused(&mut fresh.0, fresh.1, &f, reason);
    }
}

/// Rewrites the IPv6 payload length of an untagged frame to `len`.
fn with_payload_len(frame: &[u8], len: usize) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[18..20].copy_from_slice(&(len as u16).to_be_bytes());
    f
}

#[test]
fn broken_neighbour_discovery_is_truncated_or_malformed_and_never_panics() {
    let (mut b, ep, _) = secured();
    let me = mac(1, 1);
    let good = na(me, lla(me), ip6(1, 1), Some(me));
    // Shorter than the 24 bytes an advertisement needs, or than an ICMPv6
    // header.
    for len in [0, 1, 3, 4, 20, 23] {
        assert_refused(
            &mut b,
            ep,
            &with_payload_len(&good, len),
            DropReason::Truncated,
        );
    }
    // A router advertisement shorter than its 16 fixed bytes.
    let ra = router_message(me, lla(me), Icmpv6Message::ROUTER_ADVERT);
    assert_refused(
        &mut b,
        ep,
        &with_payload_len(&ra, 15),
        DropReason::Truncated,
    );
    // Options: cut short, zero length, overrunning, wrong size for a MAC.
    assert_refused(
        &mut b,
        ep,
        &with_payload_len(&good, 25),
        DropReason::Truncated,
    );
    assert_refused(
        &mut b,
        ep,
        &with_payload_len(&good, 31),
        DropReason::Truncated,
    );
    let mut zero = good.clone();
    zero[14 + 40 + 25] = 0;
    assert_refused(&mut b, ep, &zero, DropReason::Malformed);
    let mut overrun = good.clone();
    overrun[14 + 40 + 25] = 2;
    assert_refused(&mut b, ep, &overrun, DropReason::Truncated);
    let mut long_lla = na(me, lla(me), ip6(1, 1), None);
    let mut option = vec![2u8, 2];
    option.extend_from_slice(&me.0);
    option.extend_from_slice(&[0; 8]);
    long_lla.truncate(14 + 40 + 24);
    long_lla.extend_from_slice(&option);
    let long_lla = with_payload_len(&long_lla, 24 + 16);
    assert_refused(&mut b, ep, &long_lla, DropReason::Malformed);
    // A payload length past the frame is caught by the IPv6 check.
    assert_refused(
        &mut b,
        ep,
        &with_payload_len(&good, 200),
        DropReason::Truncated,
    );

    // Whatever the cut and whatever the option bytes, no panic.
    let hbh = with_ext_headers(&good, &[(IpProtocol::HOP_BY_HOP, options_header())]);
    for frame in [&good, &hbh, &ra] {
        let ip_len = frame.len() - 14 - 40;
        for len in 0..=ip_len {
            let _ = send(&mut b, T0, ep, &with_payload_len(frame, len));
            let _ = send(
                &mut b,
                T0,
                ep,
                &with_payload_len(frame, len)[..14 + 40 + len],
            );
        }
        for at in 14 + 40..frame.len() {
            for v in [0u8, 1, 2, 3, 0x7f, 0xff] {
                let mut f = frame.clone();
                f[at] = v;
                let (d, out) = send(&mut b, T0, ep, &f);
                let _ = b.explain(ep, &f, d, &b.egress()).to_string();
                assert!(out.len() <= 1);
            }
        }
    }
}

#[test]
fn explanations_say_which_neighbour_discovery_rule_refused_a_frame() {
    let (mut b, ep, _) = secured();
    let me = mac(1, 1);
    let mut out = b.egress();
    let cases = [
        (
            na(me, lla(me), ip6(1, 2), Some(me)),
            "neighbour advertisement for fd00:0:0:1::2, which is neither the endpoint's \
             address nor the link-local address of its MAC (the endpoint is \
             02:42:0a:00:01:01, 10.0.1.1, fd00:0:0:1::1, fe80::42:aff:fe00:101)",
        ),
        (
            ns(me, lla(me), ip6(1, 2), Some(mac(1, 2))),
            "gives 02:42:0a:00:01:02 as its source link-layer address",
        ),
        (
            router_message(me, lla(me), Icmpv6Message::ROUTER_ADVERT),
            "router advertisement from an endpoint, which is not a router",
        ),
        (
            ns(me, "fe80::1".parse().unwrap(), ip6(1, 2), Some(me)),
            "neighbour solicitation from fe80::1",
        ),
    ];
    for (f, want) in cases {
        let d = b.process(T0, ep, &f, &mut out);
        let text = b.explain(ep, &f, d, &out).to_string();
        assert!(text.contains(want), "{text}");
        assert!(text.contains("port security: "), "{text}");
        assert!(text.ends_with("-> dropped, not learned"), "{text}");
    }
}

// ---- IPv6 sources: link-local spoofing and the unspecified address ----

/// A Packet Too Big (RFC 4443 section 3.2) from `src_ip` saying the path
/// MTU towards `victim` is `mtu`, quoting the start of a packet.
fn packet_too_big(src: MacAddr, src_ip: Ipv6Addr, victim: Ipv6Addr, mtu: u32) -> Vec<u8> {
    let mut body = mtu.to_be_bytes().to_vec();
    let quoted = ipv6_raw(src, src, victim, src_ip, IpProtocol::UDP, &[0; 8]);
    body.extend_from_slice(&quoted[14..]);
    let f = ndp(
        src,
        src_ip,
        &Icmpv6Repr::Other {
            msg_type: Icmpv6Message::PACKET_TOO_BIG,
            code: 0,
        },
        &body,
    );
    let mut f = f;
    // Unicast to the victim, as the attack sends it.
    f[..6].copy_from_slice(&mac(1, 2).0);
    f
}

#[test]
fn a_packet_too_big_from_another_stations_link_local_address_is_dropped() {
    // The finding: a container sent a Packet Too Big from a link-local
    // address that was not its own and lowered a peer's path MTU.
    let (mut b, ep, tr) = secured();
    let me = mac(1, 1);
    for forged in [lla(mac(1, 2)), "fe80::1".parse().unwrap()] {
        assert_refused(
            &mut b,
            ep,
            &packet_too_big(me, forged, ip6(1, 2), 1280),
            DropReason::SpoofedIp,
        );
    }
    for own in [lla(me), ip6(1, 1)] {
        assert_eq!(
            forwarded_to(&mut b, ep, &packet_too_big(me, own, ip6(1, 2), 1280)),
            vec![tr]
        );
    }
}

/// An MLD message (`msg`) with `body`, behind the Hop-by-Hop header with
/// the Router Alert option that MLD requires.
fn mld(src: MacAddr, src_ip: Ipv6Addr, msg: Icmpv6Message, body: &[u8]) -> Vec<u8> {
    let f = ndp(
        src,
        src_ip,
        &Icmpv6Repr::Other {
            msg_type: msg,
            code: 0,
        },
        body,
    );
    // Router Alert (type 5, length 2, value 0) and PadN.
    with_ext_headers(
        &f,
        &[(IpProtocol::HOP_BY_HOP, vec![0, 0, 5, 2, 0, 0, 1, 0])],
    )
}

#[test]
fn the_unspecified_source_is_only_for_dad_router_solicitation_and_mld() {
    let (mut b, ep, tr) = secured();
    let me = mac(1, 1);
    let any = Ipv6Addr::UNSPECIFIED;
    for f in [
        ns(me, any, ip6(1, 1), None),
        ndp(me, any, &Icmpv6Repr::RouterSolicit { lladdr: None }, &[]),
        mld(me, any, Icmpv6Message::MLDV2_REPORT, &[0; 24]),
        mld(me, any, Icmpv6Message::MLD_REPORT, &[0; 20]),
        mld(me, any, Icmpv6Message::MLD_DONE, &[0; 20]),
    ] {
        assert_eq!(forwarded_to(&mut b, ep, &f), vec![tr]);
    }
    let echo = ndp(
        me,
        any,
        &Icmpv6Repr::Other {
            msg_type: Icmpv6Message::ECHO_REQUEST,
            code: 0,
        },
        &[0; 4],
    );
    let (mut b, ep, _) = secured();
    for f in [
        echo,
        mld(me, any, Icmpv6Message::MLD_QUERY, &[0; 20]),
        ipv6_raw(mac(1, 2), me, any, ip6(1, 2), IpProtocol::UDP, &[0; 8]),
        ipv6_raw(mac(1, 2), me, any, ip6(1, 2), IpProtocol::TCP, &[0; 20]),
        ipv6_raw(mac(1, 2), me, any, ip6(1, 2), IpProtocol(59), &[]),
        fragmented(
            &ipv6_raw(mac(1, 2), me, any, ip6(1, 2), IpProtocol::UDP, &[0; 8]),
            0,
            true,
        ),
    ] {
        assert_refused(&mut b, ep, &f, DropReason::SpoofedIp);
    }
}

#[test]
fn a_linux_interface_coming_up_passes_port_security() {
    // What a Linux network namespace sends when its interface comes up
    // with the endpoint's MAC and address (captured from kernel 6.x,
    // addr_gen_mode 0): MLDv2 reports and duplicate address detection
    // from ::, then reports and a router solicitation from the MAC-derived
    // link-local address.
    let (mut b, ep, tr) = secured();
    let me = mac(1, 1);
    let any = Ipv6Addr::UNSPECIFIED;
    for f in [
        mld(me, any, Icmpv6Message::MLDV2_REPORT, &[0; 24]),
        ns(me, any, lla(me), None),
        ns(me, any, ip6(1, 1), None),
        mld(me, lla(me), Icmpv6Message::MLDV2_REPORT, &[0; 44]),
        ndp(
            me,
            lla(me),
            &Icmpv6Repr::RouterSolicit { lladdr: Some(me) },
            &[],
        ),
        ns(me, ip6(1, 1), ip6(1, 2), Some(me)),
        na(me, ip6(1, 1), ip6(1, 1), Some(me)),
    ] {
        assert_eq!(forwarded_to(&mut b, ep, &f), vec![tr]);
    }
}

#[test]
fn explanations_say_why_an_ipv6_source_or_fragment_was_refused() {
    let (mut b, ep, _) = secured();
    let me = mac(1, 1);
    let mut out = b.egress();
    let udp_from = |ip| ipv6_raw(mac(1, 2), me, ip, ip6(1, 2), IpProtocol::UDP, &[0; 8]);
    let cases = [
        (
            packet_too_big(me, lla(mac(1, 2)), ip6(1, 2), 1280),
            "packet too big from fe80::42:aff:fe00:102, which is neither the endpoint's \
             address nor the link-local address of its MAC",
        ),
        (
            udp_from("fe80::1".parse().unwrap()),
            "IPv6 packet from fe80::1, which is neither",
        ),
        (
            udp_from(Ipv6Addr::UNSPECIFIED),
            "IPv6 packet from ::, which only duplicate address detection",
        ),
        (
            fragmented(&na(me, lla(me), ip6(1, 1), Some(me)), 0, true),
            "neighbour advertisement in a fragment, which receivers must ignore (RFC 6980)",
        ),
        (
            fragmented(
                &ipv6_raw(
                    mac(1, 2),
                    me,
                    ip6(1, 1),
                    ip6(1, 2),
                    IpProtocol::UDP,
                    &[0; 4],
                ),
                0,
                true,
            ),
            "first fragment without the whole header chain (RFC 7112)",
        ),
    ];
    for (f, want) in cases {
        let d = b.process(T0, ep, &f, &mut out);
        assert!(!d.is_forwarded());
        let text = b.explain(ep, &f, d, &out).to_string();
        assert!(text.contains(want), "{text}");
        assert!(text.contains("port security: "), "{text}");
    }
}

// ---- split horizon ----

/// A trunk in segment 1 that belongs to horizon group `g`.
fn tunnel(g: u32) -> PortConfig {
    PortConfig {
        horizon: Some(HorizonGroup(g)),
        ..trunk(1)
    }
}

#[test]
fn a_flood_from_a_horizon_group_skips_the_other_ports_of_the_group() {
    let mut b = bridge();
    let local = b.add_port(endpoint(1, 1));
    let t1 = b.add_port(tunnel(7));
    let t2 = b.add_port(tunnel(7));
    let t3 = b.add_port(tunnel(7));
    let other = b.add_port(trunk(1));
    for dst in [
        MacAddr::BROADCAST,
        MacAddr([0x33, 0x33, 0, 0, 0, 1]),
        mac(1, 9),
    ] {
        let (d, out) = send(&mut b, T0, t2, &raw(dst, mac(1, 20)));
        assert!(matches!(d.action, Action::Flood(_)), "{d}");
        assert_eq!(out, vec![local, other], "never into another tunnel");
    }
    assert_eq!(b.counters(t1).unwrap().tx_frames, 0);
    assert_eq!(b.counters(t3).unwrap().tx_frames, 0);
    // From outside the group, a flood reaches every tunnel.
    let (_, out) = send(&mut b, T0, local, &raw(MacAddr::BROADCAST, mac(1, 1)));
    assert_eq!(out, vec![t1, t2, t3, other]);
}

#[test]
fn known_unicast_between_ports_of_one_horizon_group_is_dropped_and_counted() {
    let mut b = bridge();
    let t1 = b.add_port(tunnel(7));
    let t2 = b.add_port(tunnel(7));
    let local = b.add_port(trunk(1));
    send(&mut b, T0, t2, &raw(MacAddr::BROADCAST, mac(1, 2)));
    let (d, out) = send(&mut b, T0, t1, &raw(mac(1, 2), mac(1, 1)));
    assert_eq!(d.action, Action::Drop(DropReason::SplitHorizon));
    assert_eq!(
        d.learn,
        LearnOutcome::Learned,
        "the source is still learned"
    );
    assert!(out.is_empty());
    assert_eq!(dropped(&b, t1, DropReason::SplitHorizon), 1);
    // The same destination is reachable from outside the group.
    let (d, _) = send(&mut b, T0, local, &raw(mac(1, 2), mac(1, 3)));
    assert_eq!(d.action, Action::Unicast(t2));
    // And a tunnel reaches local stations.
    let (d, _) = send(&mut b, T0, t1, &raw(mac(1, 3), mac(1, 1)));
    assert_eq!(d.action, Action::Unicast(local));
}

#[test]
fn ports_of_different_horizon_groups_exchange_frames() {
    let mut b = bridge();
    let a = b.add_port(tunnel(1));
    let c = b.add_port(tunnel(2));
    send(&mut b, T0, c, &raw(MacAddr::BROADCAST, mac(1, 2)));
    let (d, out) = send(&mut b, T0, a, &raw(mac(1, 2), mac(1, 1)));
    assert_eq!(d.action, Action::Unicast(c));
    assert_eq!(out, vec![c]);
    let (_, out) = send(&mut b, T0, a, &raw(MacAddr::BROADCAST, mac(1, 1)));
    assert_eq!(out, vec![c]);
}

#[test]
fn a_flood_only_the_ingress_group_could_receive_is_dropped_as_split_horizon() {
    let mut b = bridge();
    let t1 = b.add_port(tunnel(7));
    b.add_port(tunnel(7));
    let (d, out) = send(&mut b, T0, t1, &raw(MacAddr::BROADCAST, mac(1, 1)));
    assert_eq!(d.action, Action::Drop(DropReason::SplitHorizon));
    assert!(out.is_empty());
    // Alone in its segment, a grouped port has simply no one to flood to.
    let mut lone = bridge();
    let t = lone.add_port(tunnel(7));
    let (d, _) = send(&mut lone, T0, t, &raw(MacAddr::BROADCAST, mac(1, 1)));
    assert_eq!(d.action, Action::Drop(DropReason::NoDestination));
}

#[test]
fn horizon_groups_do_not_reach_across_segments() {
    let mut b = bridge();
    let t1 = b.add_port(tunnel(7));
    let t2 = b.add_port(PortConfig {
        segment: SegmentId(2),
        ..tunnel(7)
    });
    let l2 = b.add_port(trunk(2));
    let (_, out) = send(&mut b, T0, t2, &raw(MacAddr::BROADCAST, mac(2, 1)));
    assert_eq!(out, vec![l2]);
    assert_eq!(b.counters(t1).unwrap().tx_frames, 0);
}

#[test]
fn explanations_name_the_horizon_group() {
    let mut b = bridge();
    let local = b.add_port(trunk(1));
    let t1 = b.add_port(tunnel(7));
    let t2 = b.add_port(tunnel(7));
    let mut out = b.egress();
    let f = raw(MacAddr::BROADCAST, mac(1, 2));
    let d = b.process(T0, t2, &f, &mut out);
    assert_eq!(
        b.explain(t2, &f, d, &out).to_string(),
        format!(
            "{t2} (trunk1) in seg1: src 02:42:0a:00:01:02 learned on {t2}; dst is broadcast \
             -> flooded to 1 port ({local}); not to {t1} (horizon7, like {t2})"
        )
    );
    let f = raw(mac(1, 2), mac(1, 1));
    let d = b.process(T0, t1, &f, &mut out);
    let text = b.explain(t1, &f, d, &out).to_string();
    assert!(
        text.ends_with(&format!(
            "dst 02:42:0a:00:01:02 learned on {t2}, which is in horizon7 like {t1} \
             -> dropped (split horizon)"
        )),
        "{text}"
    );
}

// ---- static FDB entries ----

const FAR: Instant = Instant::from_secs(1_000_000);

#[test]
fn a_static_entry_sends_known_unicast_to_its_port_without_learning() {
    let (mut b, p) = trunks(3);
    b.add_static_entry(T0, SegmentId(1), mac(1, 9), p[2])
        .unwrap();
    let (d, out) = send(&mut b, T0, p[0], &raw(mac(1, 9), mac(1, 1)));
    assert_eq!(d.action, Action::Unicast(p[2]));
    assert_eq!(out, vec![p[2]]);
    assert_eq!(b.lookup(T0, SegmentId(1), mac(1, 9)), Some(p[2]));
}

#[test]
fn a_static_entry_never_ages() {
    let (mut b, p) = trunks(2);
    b.add_static_entry(T0, SegmentId(1), mac(1, 9), p[1])
        .unwrap();
    assert_eq!(b.expire(FAR), 0);
    assert_eq!(b.lookup(FAR, SegmentId(1), mac(1, 9)), Some(p[1]));
    let (d, _) = send(&mut b, FAR, p[0], &raw(mac(1, 9), mac(1, 1)));
    assert_eq!(d.action, Action::Unicast(p[1]));
}

#[test]
fn a_frame_from_another_port_does_not_move_a_static_entry_and_is_counted() {
    let (mut b, p) = trunks(3);
    b.add_static_entry(T0, SegmentId(1), mac(1, 9), p[2])
        .unwrap();
    let (d, out) = send(&mut b, T0, p[1], &raw(MacAddr::BROADCAST, mac(1, 9)));
    assert_eq!(d.learn, LearnOutcome::StaticConflict { owner: p[2] });
    assert_eq!(
        d.action,
        Action::Flood(FloodReason::Broadcast),
        "the frame itself is still forwarded"
    );
    assert_eq!(out, vec![p[0], p[2]]);
    assert_eq!(b.stats().static_conflicts, 1);
    assert_eq!(b.stats().moved, 0);
    assert_eq!(b.lookup(T0, SegmentId(1), mac(1, 9)), Some(p[2]));
    // From its own port the station is simply known.
    let (d, _) = send(&mut b, T0, p[2], &raw(MacAddr::BROADCAST, mac(1, 9)));
    assert_eq!(d.learn, LearnOutcome::Static);
}

#[test]
fn static_entries_do_not_count_against_the_learning_capacity() {
    let mut b = Bridge::new(BridgeConfig {
        fdb_capacity_per_segment: 2,
        ..BridgeConfig::default()
    });
    let p: Vec<PortId> = (0..2).map(|_| b.add_port(trunk(1))).collect();
    for n in 100..110 {
        b.add_static_entry(T0, SegmentId(1), mac(1, n), p[1])
            .unwrap();
    }
    assert_eq!(b.fdb_segment_len(SegmentId(1)), 0);
    assert_eq!(b.fdb_len(), 10);
    // Learning still has its full room, and a MAC flood evicts nothing.
    for n in 1..=20 {
        send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, mac(1, n)));
    }
    assert_eq!(b.stats().learned, 2);
    assert_eq!(b.stats().refused_full, 18);
    for n in 100..110 {
        assert_eq!(b.lookup(T0, SegmentId(1), mac(1, n)), Some(p[1]));
    }
}

#[test]
fn a_static_entry_replaces_a_learned_one() {
    let mut b = Bridge::new(BridgeConfig {
        fdb_capacity_per_segment: 1,
        ..BridgeConfig::default()
    });
    let p: Vec<PortId> = (0..3).map(|_| b.add_port(trunk(1))).collect();
    send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, mac(1, 9)));
    b.add_static_entry(T0, SegmentId(1), mac(1, 9), p[2])
        .unwrap();
    assert_eq!(b.lookup(T0, SegmentId(1), mac(1, 9)), Some(p[2]));
    assert_eq!(b.fdb_segment_len(SegmentId(1)), 0, "room to learn again");
    let (d, _) = send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, mac(1, 1)));
    assert_eq!(d.learn, LearnOutcome::Learned);
}

#[test]
fn static_entries_vanish_with_their_port() {
    let (mut b, p) = trunks(3);
    b.add_static_entry(T0, SegmentId(1), mac(1, 9), p[2])
        .unwrap();
    b.remove_port(p[2]);
    assert_eq!(b.lookup(T0, SegmentId(1), mac(1, 9)), None);
    assert_eq!(b.fdb_len(), 0);
    assert_eq!(b.stats().purged, 1);
    let (d, _) = send(&mut b, T0, p[0], &raw(mac(1, 9), mac(1, 1)));
    assert_eq!(d.action, Action::Flood(FloodReason::UnknownUnicast));
}

#[test]
fn static_entries_are_listed_marked_static() {
    let (mut b, p) = trunks(2);
    send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, mac(1, 1)));
    b.add_static_entry(T0, SegmentId(1), mac(1, 9), p[1])
        .unwrap();
    let entries = b.fdb_entries();
    assert_eq!(entries.len(), 2);
    assert_eq!((entries[0].mac, entries[0].is_static), (mac(1, 1), false));
    assert_eq!(
        (entries[1].mac, entries[1].port, entries[1].is_static),
        (mac(1, 9), p[1], true)
    );
    assert!(entries[1].to_string().contains("static"), "{}", entries[1]);
}

#[test]
fn removing_a_static_entry_forgets_the_station_but_not_learned_ones() {
    let (mut b, p) = trunks(2);
    b.add_static_entry(T0, SegmentId(1), mac(1, 9), p[1])
        .unwrap();
    send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, mac(1, 1)));
    assert_eq!(b.remove_static_entry(SegmentId(1), mac(1, 9)), Some(p[1]));
    assert_eq!(b.lookup(T0, SegmentId(1), mac(1, 9)), None);
    assert_eq!(b.remove_static_entry(SegmentId(1), mac(1, 9)), None);
    assert_eq!(
        b.remove_static_entry(SegmentId(1), mac(1, 1)),
        None,
        "a learned entry is not static"
    );
    assert_eq!(b.lookup(T0, SegmentId(1), mac(1, 1)), Some(p[0]));
}

#[test]
fn static_entries_need_a_live_port_of_their_segment_and_a_unicast_mac() {
    let mut b = bridge();
    let p1 = b.add_port(trunk(1));
    let p2 = b.add_port(trunk(2));
    assert_eq!(
        b.add_static_entry(T0, SegmentId(1), mac(1, 9), p2),
        Err(StaticEntryError::WrongSegment {
            port: p2,
            segment: SegmentId(1),
            actual: SegmentId(2)
        })
    );
    assert_eq!(
        b.add_static_entry(T0, SegmentId(1), mac(1, 9), PortId(99)),
        Err(StaticEntryError::UnknownPort(PortId(99)))
    );
    for bad in [
        MacAddr::BROADCAST,
        MacAddr::ZERO,
        MacAddr([0x33, 0x33, 0, 0, 0, 1]),
    ] {
        assert_eq!(
            b.add_static_entry(T0, SegmentId(1), bad, p1),
            Err(StaticEntryError::NotUnicast(bad))
        );
    }
    assert_eq!(b.fdb_len(), 0);
}

#[test]
fn split_horizon_applies_to_static_destinations() {
    // The overlay case: remote stations programmed on tunnel ports are
    // never reached from another tunnel.
    let mut b = bridge();
    let t1 = b.add_port(tunnel(7));
    let t2 = b.add_port(tunnel(7));
    b.add_static_entry(T0, SegmentId(1), mac(1, 9), t2).unwrap();
    let (d, _) = send(&mut b, T0, t1, &raw(mac(1, 9), mac(1, 1)));
    assert_eq!(d.action, Action::Drop(DropReason::SplitHorizon));
}

#[test]
fn explanations_say_an_entry_is_static() {
    let (mut b, p) = trunks(3);
    b.add_static_entry(T0, SegmentId(1), mac(1, 9), p[2])
        .unwrap();
    let mut out = b.egress();
    let f = raw(mac(1, 9), mac(1, 1));
    let d = b.process(T0, p[0], &f, &mut out);
    let text = b.explain(p[0], &f, d, &out).to_string();
    assert!(
        text.ends_with(&format!(
            "dst 02:42:0a:00:01:09 is a static entry on {} -> unicast to {} (trunk1)",
            p[2], p[2]
        )),
        "{text}"
    );
    let f = raw(MacAddr::BROADCAST, mac(1, 9));
    let d = b.process(T0, p[1], &f, &mut out);
    let text = b.explain(p[1], &f, d, &out).to_string();
    assert!(
        text.contains(&format!(
            "src 02:42:0a:00:01:09 is a static entry on {}, not moved to {}",
            p[2], p[1]
        )),
        "{text}"
    );
}

// ---- router (gateway) ports ----

const GW4: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 254);
const GW4B: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 254);

fn gw6() -> Ipv6Addr {
    ip6(1, 0xfe)
}

fn gw_mac() -> MacAddr {
    mac(1, 0xfe)
}

/// Segment 1 with a router port (the gateway) and an endpoint.
fn routed() -> (Bridge, PortId, PortId) {
    let mut b = bridge();
    let gw = b.add_port(PortConfig {
        binding: PortBinding::Router {
            mac: gw_mac(),
            ipv4: vec![GW4, GW4B],
            ipv6: vec![gw6()],
        },
        label: "gateway".into(),
        ..trunk(1)
    });
    let ep = b.add_port(endpoint(1, 1));
    (b, gw, ep)
}

#[test]
fn a_router_forwards_packets_from_any_source_address() {
    let (mut b, gw, ep) = routed();
    let me = gw_mac();
    for f in [
        ipv4(mac(1, 1), me, Ipv4Addr::new(8, 8, 8, 8), ip4(1, 1)),
        ipv6_raw(
            mac(1, 1),
            me,
            "2001:db8::53".parse().unwrap(),
            ip6(1, 1),
            IpProtocol::UDP,
            &[0; 8],
        ),
        ipv6_raw(
            mac(1, 1),
            me,
            "2001:db8::53".parse().unwrap(),
            ip6(1, 1),
            IpProtocol::TCP,
            &[0; 20],
        ),
        packet_too_big(me, "2001:db8::1".parse().unwrap(), ip6(1, 1), 1400),
        fragmented(
            &ipv6_raw(
                mac(1, 1),
                me,
                "2001:db8::53".parse().unwrap(),
                ip6(1, 1),
                IpProtocol::UDP,
                &[0; 64],
            ),
            0,
            true,
        ),
    ] {
        assert_eq!(forwarded_to(&mut b, gw, &f), vec![ep]);
    }
}

#[test]
fn a_router_must_send_from_its_own_mac() {
    let (mut b, gw, _) = routed();
    let f = ipv4(
        MacAddr::BROADCAST,
        mac(1, 7),
        Ipv4Addr::new(8, 8, 8, 8),
        ip4(1, 1),
    );
    assert_refused(&mut b, gw, &f, DropReason::SpoofedMac);
}

#[test]
fn a_router_answers_arp_only_for_its_own_addresses() {
    let (mut b, gw, ep) = routed();
    let me = gw_mac();
    for spa in [GW4, GW4B, Ipv4Addr::UNSPECIFIED] {
        let f = arp(MacAddr::BROADCAST, me, me, spa, ip4(1, 1));
        assert_eq!(forwarded_to(&mut b, gw, &f), vec![ep]);
    }
    let mut fresh = routed();
    assert_refused(
        &mut fresh.0,
        fresh.1,
        &arp(MacAddr::BROADCAST, me, me, ip4(1, 2), ip4(1, 1)),
        DropReason::SpoofedIp,
    );
    assert_refused(
        &mut fresh.0,
        fresh.1,
        &arp(MacAddr::BROADCAST, me, mac(1, 2), GW4, ip4(1, 1)),
        DropReason::SpoofedMac,
    );
}

#[test]
fn a_router_speaks_neighbour_discovery_for_its_own_addresses_only() {
    let (mut b, gw, ep) = routed();
    let me = gw_mac();
    for f in [
        na(me, lla(me), gw6(), Some(me)),
        na(me, gw6(), gw6(), Some(me)),
        na(me, lla(me), lla(me), None),
        ns(me, lla(me), ip6(1, 1), Some(me)),
        ns(me, Ipv6Addr::UNSPECIFIED, gw6(), None),
        router_message(me, lla(me), Icmpv6Message::ROUTER_ADVERT),
        router_message(me, lla(me), Icmpv6Message::REDIRECT),
    ] {
        assert_eq!(forwarded_to(&mut b, gw, &f), vec![ep]);
    }
    let mut fresh = routed();
    for (f, reason) in [
        (na(me, lla(me), ip6(1, 1), Some(me)), DropReason::SpoofedIp),
        (
            na(me, lla(mac(1, 1)), gw6(), Some(me)),
            DropReason::SpoofedIp,
        ),
        (
            na(me, lla(me), gw6(), Some(mac(1, 1))),
            DropReason::SpoofedMac,
        ),
        (
            ns(me, "fe80::1".parse().unwrap(), ip6(1, 1), Some(me)),
            DropReason::SpoofedIp,
        ),
        (
            router_message(me, "fe80::1".parse().unwrap(), Icmpv6Message::ROUTER_ADVERT),
            DropReason::SpoofedIp,
        ),
        (
            fragmented(&na(me, lla(me), gw6(), Some(me)), 0, true),
            DropReason::Malformed,
        ),
    ] {
        assert_refused(&mut fresh.0, fresh.1, &f, reason);
    }
}

#[test]
fn explanations_of_router_port_security_name_the_router() {
    let (mut b, gw, _) = routed();
    let me = gw_mac();
    let mut out = b.egress();
    let f = na(me, lla(me), ip6(1, 1), Some(me));
    let d = b.process(T0, gw, &f, &mut out);
    let text = b.explain(gw, &f, d, &out).to_string();
    assert!(
        text.contains(
            "neighbour advertisement for fd00:0:0:1::1, which is neither one of the router's \
             addresses nor the link-local address of its MAC (the router is 02:42:0a:00:01:fe, \
             10.0.1.254, 10.0.2.254, fd00:0:0:1::fe, fe80::42:aff:fe00:1fe)"
        ),
        "{text}"
    );
}

// ---- MTU ----

/// A trunk in segment 1 with layer-3 MTU `mtu`.
fn mtu_port(mtu: u32) -> PortConfig {
    PortConfig { mtu, ..trunk(1) }
}

/// An opaque frame whose payload (its layer-3 part) is `l3` bytes.
fn sized(dst: MacAddr, src: MacAddr, l3: usize) -> Vec<u8> {
    eth(dst, src, EtherType(0x88b5), &vec![0xab; l3])
}

use switchyard_switch::wire::EtherType;

#[test]
fn a_plain_frame_larger_than_the_destinations_mtu_is_not_delivered() {
    let mut b = bridge();
    let a = b.add_port(trunk(1));
    let small = b.add_port(mtu_port(1400));
    send(&mut b, T0, small, &raw(MacAddr::BROADCAST, mac(1, 2)));
    let (d, out) = send(&mut b, T0, a, &sized(mac(1, 2), mac(1, 1), 1401));
    assert_eq!(d.action, Action::Drop(DropReason::MtuExceeded));
    assert!(out.is_empty());
    assert_eq!(dropped(&b, a, DropReason::MtuExceeded), 1, "ingress drop");
    let c = b.counters(small).unwrap();
    assert_eq!((c.tx_frames, c.tx_mtu_exceeded), (0, 1), "egress count");
}

#[test]
fn the_mtu_counts_the_packet_not_the_ethernet_header_or_tag() {
    let mut b = bridge();
    let a = b.add_port(trunk(1));
    let small = b.add_port(mtu_port(1400));
    send(&mut b, T0, small, &raw(MacAddr::BROADCAST, mac(1, 2)));
    let exact = sized(mac(1, 2), mac(1, 1), 1400);
    assert_eq!(exact.len(), 1414);
    let (d, _) = send(&mut b, T0, a, &exact);
    assert_eq!(d.action, Action::Unicast(small));
    let (d, _) = send(&mut b, T0, a, &tagged(&exact, 5));
    assert_eq!(
        d.action,
        Action::Unicast(small),
        "the 802.1Q tag is not counted"
    );
}

#[test]
fn a_flood_skips_the_ports_whose_mtu_it_exceeds() {
    let mut b = bridge();
    let a = b.add_port(trunk(1));
    let small = b.add_port(mtu_port(1400));
    let big = b.add_port(mtu_port(9000));
    let (d, out) = send(&mut b, T0, a, &sized(MacAddr::BROADCAST, mac(1, 1), 1500));
    assert_eq!(d.action, Action::Flood(FloodReason::Broadcast));
    assert_eq!(out, vec![big]);
    assert_eq!(b.counters(small).unwrap().tx_mtu_exceeded, 1);
    assert_eq!(b.counters(a).unwrap().dropped(), 0, "it went somewhere");
}

#[test]
fn a_flood_too_big_for_every_port_is_dropped_as_mtu_exceeded() {
    let mut b = bridge();
    let a = b.add_port(trunk(1));
    b.add_port(mtu_port(1400));
    b.add_port(tunnel(3));
    let (d, out) = send(&mut b, T0, a, &sized(mac(1, 9), mac(1, 1), 1600));
    assert_eq!(d.action, Action::Drop(DropReason::MtuExceeded));
    assert!(out.is_empty());
    assert_eq!(dropped(&b, a, DropReason::MtuExceeded), 1);
}

#[test]
fn gso_super_frames_skip_the_mtu_check_but_not_the_frame_limit() {
    let mut b = bridge();
    let a = b.add_port(trunk(1));
    let small = b.add_port(mtu_port(1500));
    send(&mut b, T0, small, &raw(MacAddr::BROADCAST, mac(1, 2)));
    let gso = sized(mac(1, 2), mac(1, 1), 64_000);
    let mut out = b.egress();
    let d = b.process_with(T0, a, &gso, FrameMeta::GSO, &mut out);
    assert_eq!(d.action, Action::Unicast(small));
    assert_eq!(out.ports(), &[small][..]);
    let d = b.process_with(T0, a, &gso, FrameMeta::PLAIN, &mut out);
    assert_eq!(d.action, Action::Drop(DropReason::MtuExceeded));
    let d = b.process(T0, a, &gso, &mut out);
    assert_eq!(
        d.action,
        Action::Drop(DropReason::MtuExceeded),
        "process is plain"
    );
    let huge = sized(mac(1, 2), mac(1, 1), 70_000);
    let d = b.process_with(T0, a, &huge, FrameMeta::GSO, &mut out);
    assert_eq!(d.action, Action::Drop(DropReason::Oversized));
}

#[test]
fn explanations_say_which_mtu_a_frame_exceeded() {
    let mut b = bridge();
    let a = b.add_port(trunk(1));
    let small = b.add_port(mtu_port(1400));
    let big = b.add_port(mtu_port(9000));
    let mut out = b.egress();
    let f = sized(MacAddr::BROADCAST, mac(1, 1), 1500);
    let d = b.process(T0, a, &f, &mut out);
    assert!(
        b.explain(a, &f, d, &out).to_string().ends_with(&format!(
            "-> flooded to 1 port ({big}); not to {small} (MTU 1400): a 1500-byte packet"
        )),
        "{}",
        b.explain(a, &f, d, &out)
    );
    send(&mut b, T0, small, &raw(MacAddr::BROADCAST, mac(1, 2)));
    let f = sized(mac(1, 2), mac(1, 1), 1500);
    let d = b.process(T0, a, &f, &mut out);
    let text = b.explain(a, &f, d, &out).to_string();
    assert!(
        text.ends_with(&format!(
            "dst 02:42:0a:00:01:02 learned on {small}, but a 1500-byte packet exceeds its \
             1400-byte MTU -> dropped"
        )),
        "{text}"
    );
}
