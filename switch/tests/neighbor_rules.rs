//! ARP and neighbour-solicitation suppression, one behaviour per test.
//! Replies are read back field by field with the wire modules.

mod bridge_support;
mod neighbor_support;

use bridge_support::*;
use neighbor_support::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use switchyard_switch::neighbor::{ARP_REPLY_LEN, MAX_REPLY_LEN, NA_REPLY_LEN};
use switchyard_switch::wire::{
    ArpOperation, EtherType, Icmpv6Message, Icmpv6Repr, IpProtocol, NeighborFlags, VlanTag,
};
use switchyard_switch::{
    Answer, Bridge, BridgeConfig, Decision, Egress, Instant, MacAddr, NeighborCounters,
    NeighborError, NeighborTable, SegmentId,
};

const SEG: SegmentId = SegmentId(1);
const OTHER_SEG: SegmentId = SegmentId(2);

/// The asker: station 1 of segment 1.
fn asker() -> (MacAddr, Ipv4Addr, Ipv6Addr) {
    (mac(1, 1), ip4(1, 1), ip6(1, 1))
}

/// The remote endpoint the table knows: station 9 of segment 1.
fn target() -> (MacAddr, Ipv4Addr, Ipv6Addr) {
    (mac(1, 9), ip4(1, 9), ip6(1, 9))
}

fn table() -> NeighborTable {
    let mut t = NeighborTable::new(7);
    let (m, v4, v6) = target();
    t.add(SEG, IpAddr::V4(v4), m).unwrap();
    t.add(SEG, IpAddr::V6(v6), m).unwrap();
    t
}

fn run(t: &NeighborTable, frame: &[u8]) -> (Answer, Vec<u8>) {
    let mut out = [0u8; MAX_REPLY_LEN];
    let a = t.answer(SEG, frame, &mut out);
    let len = match a {
        Answer::Reply(n) => n,
        _ => 0,
    };
    (a, out[..len].to_vec())
}

fn who_has_target() -> Vec<u8> {
    let (am, a4, _) = asker();
    arp(MacAddr::BROADCAST, am, am, a4, target().1)
}

fn solicit_target() -> Vec<u8> {
    let (am, _, a6) = asker();
    ns(am, a6, target().2, Some(am))
}

// ---------------------------------------------------------------- ARP

#[test]
fn an_arp_request_for_a_known_target_is_answered_from_the_target_mac() {
    let t = table();
    let (am, a4, _) = asker();
    let (tm, t4, _) = target();
    let (answer, reply) = run(&t, &who_has_target());
    assert_eq!(answer, Answer::Reply(ARP_REPLY_LEN));
    let r = read_arp_reply(&reply);
    assert_eq!(r.eth.src_addr, tm);
    assert_eq!(r.eth.dst_addr, am);
    assert_eq!(r.eth.vlan, None);
    assert_eq!(r.eth.ethertype, EtherType::ARP);
    assert_eq!(r.arp.operation, ArpOperation::Reply);
    assert_eq!(r.arp.source_hardware_addr, tm);
    assert_eq!(r.arp.source_protocol_addr, t4);
    assert_eq!(r.arp.target_hardware_addr, am);
    assert_eq!(r.arp.target_protocol_addr, a4);
    // etherparse, an independent reader, agrees.
    let arp = etherparse::ArpPacketSlice::from_slice(&reply[14..]).unwrap();
    assert_eq!(arp.operation(), etherparse::ArpOperation::REPLY);
    assert_eq!(arp.sender_hw_addr(), &tm.0);
    assert_eq!(arp.target_protocol_addr(), &a4.octets());
}

#[test]
fn an_arp_request_for_an_unknown_target_passes() {
    let (am, a4, _) = asker();
    let (answer, _) = run(&table(), &arp(MacAddr::BROADCAST, am, am, a4, ip4(1, 77)));
    assert_eq!(answer, Answer::Pass);
}

#[test]
fn an_arp_request_for_an_address_known_only_in_another_segment_passes() {
    let mut t = NeighborTable::new(0);
    t.add(OTHER_SEG, IpAddr::V4(target().1), target().0)
        .unwrap();
    assert_eq!(run(&t, &who_has_target()).0, Answer::Pass);
}

#[test]
fn an_arp_reply_passes() {
    let (am, a4, _) = asker();
    let mut frame = arp(MacAddr::BROADCAST, am, am, a4, target().1);
    set_arp_operation(&mut frame, 2);
    assert_eq!(run(&table(), &frame).0, Answer::Pass);
}

#[test]
fn an_arp_of_another_operation_passes() {
    let mut frame = who_has_target();
    set_arp_operation(&mut frame, 8); // InARP request
    assert_eq!(run(&table(), &frame).0, Answer::Pass);
}

#[test]
fn a_gratuitous_arp_for_a_known_address_passes() {
    // The target announcing itself (sender address = target address) must
    // reach everybody, not be answered.
    let (tm, t4, _) = target();
    let frame = arp(MacAddr::BROADCAST, mac(1, 2), mac(1, 2), t4, t4);
    assert_eq!(run(&table(), &frame).0, Answer::Pass);
    let frame = arp(MacAddr::BROADCAST, tm, tm, t4, t4);
    assert_eq!(run(&table(), &frame).0, Answer::Pass);
}

#[test]
fn an_arp_probe_for_a_taken_address_is_answered_to_the_unspecified_address() {
    // RFC 5227: the prober sends from 0.0.0.0; any ARP from the probed
    // address tells it the address is taken. Linux replies to 0.0.0.0.
    let (am, _, _) = asker();
    let (tm, t4, _) = target();
    let frame = arp(MacAddr::BROADCAST, am, am, Ipv4Addr::UNSPECIFIED, t4);
    let (answer, reply) = run(&table(), &frame);
    assert_eq!(answer, Answer::Reply(ARP_REPLY_LEN));
    let r = read_arp_reply(&reply);
    assert_eq!(r.arp.source_hardware_addr, tm);
    assert_eq!(r.arp.source_protocol_addr, t4);
    assert_eq!(r.arp.target_hardware_addr, am);
    assert_eq!(r.arp.target_protocol_addr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.eth.dst_addr, am);
}

#[test]
fn an_arp_probe_from_the_owner_itself_passes() {
    let (tm, t4, _) = target();
    let frame = arp(MacAddr::BROADCAST, tm, tm, Ipv4Addr::UNSPECIFIED, t4);
    assert_eq!(run(&table(), &frame).0, Answer::Pass);
}

#[test]
fn an_arp_request_whose_sender_hardware_address_is_the_target_mac_passes() {
    let (am, a4, _) = asker();
    let (tm, t4, _) = target();
    let frame = arp(MacAddr::BROADCAST, am, tm, a4, t4);
    assert_eq!(run(&table(), &frame).0, Answer::Pass);
}

#[test]
fn a_unicast_arp_request_to_the_target_mac_is_answered() {
    // Linux re-checks a cached neighbour with a unicast request.
    let (am, a4, _) = asker();
    let (tm, t4, _) = target();
    let (answer, reply) = run(&table(), &arp(tm, am, am, a4, t4));
    assert_eq!(answer, Answer::Reply(ARP_REPLY_LEN));
    assert_eq!(read_arp_reply(&reply).eth.dst_addr, am);
}

#[test]
fn a_unicast_arp_request_to_another_mac_passes() {
    // The target would never see it.
    let (am, a4, _) = asker();
    let frame = arp(mac(1, 5), am, am, a4, target().1);
    assert_eq!(run(&table(), &frame).0, Answer::Pass);
}

#[test]
fn a_truncated_arp_packet_is_malformed_and_counted() {
    let frame = who_has_target();
    let t = table();
    assert_eq!(run(&t, &frame[..14 + 27]).0, Answer::Malformed);
    assert_eq!(run(&t, &frame[..14]).0, Answer::Malformed);
    assert_eq!(t.counters().malformed, 2);
}

#[test]
fn an_arp_packet_for_other_hardware_is_malformed() {
    let mut frame = who_has_target();
    frame[14 + 1] = 6; // IEEE 802 hardware type
    assert_eq!(run(&table(), &frame).0, Answer::Malformed);
}

#[test]
fn an_arp_request_with_a_group_sender_hardware_address_is_malformed() {
    let (am, a4, _) = asker();
    let frame = arp(MacAddr::BROADCAST, am, MacAddr::BROADCAST, a4, target().1);
    assert_eq!(run(&table(), &frame).0, Answer::Malformed);
}

#[test]
fn an_entry_removed_is_no_longer_answered() {
    let mut t = table();
    assert_eq!(t.remove(SEG, IpAddr::V4(target().1)), Some(target().0));
    assert_eq!(run(&t, &who_has_target()).0, Answer::Pass);
    // The IPv6 entry of the same endpoint is still there.
    assert!(matches!(run(&t, &solicit_target()).0, Answer::Reply(_)));
}

// ---------------------------------------------------------------- IPv6

#[test]
fn a_solicitation_for_a_known_target_is_answered_with_a_solicited_advertisement() {
    let (am, _, a6) = asker();
    let (tm, _, t6) = target();
    let (answer, reply) = run(&table(), &solicit_target());
    assert_eq!(answer, Answer::Reply(NA_REPLY_LEN));
    let r = read_na_reply(&reply);
    assert_eq!(r.eth.src_addr, tm);
    assert_eq!(r.eth.dst_addr, am);
    assert_eq!(r.eth.vlan, None);
    assert_eq!(r.eth.ethertype, EtherType::IPV6);
    assert_eq!(r.ip.src_addr, t6);
    assert_eq!(r.ip.dst_addr, a6);
    assert_eq!(r.ip.hop_limit, 255);
    assert_eq!(r.ip.next_header, IpProtocol::ICMPV6);
    assert!(r.checksum_ok);
    assert_eq!(r.code, 0);
    let Icmpv6Repr::NeighborAdvert {
        flags,
        target,
        lladdr,
    } = r.icmp
    else {
        panic!("not an advertisement: {:?}", r.icmp);
    };
    assert!(flags.contains(NeighborFlags::SOLICITED));
    assert!(!flags.contains(NeighborFlags::OVERRIDE));
    assert!(!flags.contains(NeighborFlags::ROUTER));
    assert_eq!(target, t6);
    assert_eq!(lladdr, Some(tm));
    // etherparse, an independent reader, agrees on type, flags and checksum.
    let icmp = etherparse::Icmpv6Slice::from_slice(&reply[54..]).unwrap();
    match icmp.icmp_type() {
        etherparse::Icmpv6Type::NeighborAdvertisement(na) => {
            assert!(na.solicited && !na.r#override && !na.router);
        }
        other => panic!("{other:?}"),
    }
    assert!(icmp
        .icmp_type()
        .calc_checksum(t6.octets(), a6.octets(), icmp.payload())
        .is_ok_and(|c| c == icmp.checksum()));
}

#[test]
fn a_solicitation_from_a_link_local_address_is_answered_to_it() {
    let (am, _, _) = asker();
    let (_, _, t6) = target();
    let (answer, reply) = run(&table(), &ns(am, lla(am), t6, Some(am)));
    assert!(matches!(answer, Answer::Reply(_)));
    assert_eq!(read_na_reply(&reply).ip.dst_addr, lla(am));
}

#[test]
fn a_unicast_solicitation_to_the_target_is_answered() {
    // Neighbour unreachability detection probes the cached MAC directly.
    let (am, _, a6) = asker();
    let (tm, _, t6) = target();
    let frame = ns_to(tm, t6, am, a6, t6, None, 255);
    let (answer, reply) = run(&table(), &frame);
    assert_eq!(answer, Answer::Reply(NA_REPLY_LEN));
    let r = read_na_reply(&reply);
    assert_eq!((r.eth.dst_addr, r.ip.dst_addr), (am, a6));
}

#[test]
fn a_unicast_solicitation_to_another_mac_passes() {
    let (am, _, a6) = asker();
    let (_, _, t6) = target();
    let frame = ns_to(mac(1, 5), t6, am, a6, t6, None, 255);
    assert_eq!(run(&table(), &frame).0, Answer::Pass);
}

#[test]
fn a_solicitation_to_another_solicited_node_group_passes() {
    // Only stations whose addresses end like the group's listen to it.
    let (am, _, a6) = asker();
    let (_, _, t6) = target();
    let group = solicited_node(ip6(1, 77));
    let frame = ns_to(group_mac(group), group, am, a6, t6, Some(am), 255);
    assert_eq!(run(&table(), &frame).0, Answer::Pass);
}

#[test]
fn a_duplicate_address_probe_is_answered_to_all_nodes_without_the_solicited_flag() {
    let (am, _, _) = asker();
    let (tm, _, t6) = target();
    let (answer, reply) = run(&table(), &ns(am, Ipv6Addr::UNSPECIFIED, t6, None));
    assert_eq!(answer, Answer::Reply(NA_REPLY_LEN));
    let r = read_na_reply(&reply);
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    assert_eq!(r.eth.src_addr, tm);
    assert_eq!(r.eth.dst_addr, MacAddr([0x33, 0x33, 0, 0, 0, 1]));
    assert_eq!(r.ip.src_addr, t6);
    assert_eq!(r.ip.dst_addr, all_nodes);
    assert_eq!(r.ip.hop_limit, 255);
    assert!(r.checksum_ok);
    assert_eq!(
        r.icmp,
        Icmpv6Repr::NeighborAdvert {
            flags: NeighborFlags::NONE,
            target: t6,
            lladdr: Some(tm),
        }
    );
}

#[test]
fn a_duplicate_address_probe_from_the_owner_itself_passes() {
    let (tm, _, t6) = target();
    assert_eq!(
        run(&table(), &ns(tm, Ipv6Addr::UNSPECIFIED, t6, None)).0,
        Answer::Pass
    );
}

#[test]
fn a_solicitation_whose_link_layer_option_is_the_target_mac_passes() {
    let (am, _, a6) = asker();
    let (tm, _, t6) = target();
    assert_eq!(run(&table(), &ns(am, a6, t6, Some(tm))).0, Answer::Pass);
}

#[test]
fn a_solicitation_for_an_unknown_target_passes() {
    let (am, _, a6) = asker();
    assert_eq!(
        run(&table(), &ns(am, a6, ip6(1, 77), Some(am))).0,
        Answer::Pass
    );
}

#[test]
fn a_solicitation_with_a_hop_limit_below_255_is_malformed() {
    // RFC 4861 section 7.1.1: it crossed a router, receivers discard it.
    let (am, _, a6) = asker();
    let (_, _, t6) = target();
    let g = solicited_node(t6);
    let frame = ns_to(group_mac(g), g, am, a6, t6, Some(am), 254);
    assert_eq!(run(&table(), &frame).0, Answer::Malformed);
}

#[test]
fn a_solicitation_with_a_bad_checksum_is_malformed() {
    let mut frame = solicit_target();
    frame[54 + 2] ^= 0x01;
    assert_eq!(run(&table(), &frame).0, Answer::Malformed);
}

#[test]
fn a_solicitation_with_a_nonzero_code_is_malformed() {
    let mut frame = solicit_target();
    frame[54 + 1] = 1;
    refill_icmpv6_checksum(&mut frame);
    assert_eq!(run(&table(), &frame).0, Answer::Malformed);
}

#[test]
fn a_solicitation_for_a_multicast_target_is_malformed() {
    let (am, _, a6) = asker();
    let group: Ipv6Addr = "ff02::1".parse().unwrap();
    assert_eq!(
        run(&table(), &ns(am, a6, group, Some(am))).0,
        Answer::Malformed
    );
}

#[test]
fn a_duplicate_address_probe_with_a_link_layer_option_is_malformed() {
    let (am, _, _) = asker();
    let frame = ns(am, Ipv6Addr::UNSPECIFIED, target().2, Some(am));
    assert_eq!(run(&table(), &frame).0, Answer::Malformed);
}

#[test]
fn a_duplicate_address_probe_to_the_target_itself_is_malformed() {
    // From `::`, RFC 4861 allows only a solicited-node destination.
    let (am, _, _) = asker();
    let (tm, _, t6) = target();
    let frame = ns_to(tm, t6, am, Ipv6Addr::UNSPECIFIED, t6, None, 255);
    assert_eq!(run(&table(), &frame).0, Answer::Malformed);
}

#[test]
fn a_solicitation_with_a_zero_length_option_is_malformed() {
    let (am, _, a6) = asker();
    let (_, _, t6) = target();
    let g = solicited_node(t6);
    let icmp = {
        let mut b = icmpv6_bytes(
            a6,
            g,
            &Icmpv6Repr::NeighborSolicit {
                target: t6,
                lladdr: None,
            },
            &[14, 0, 0, 0, 0, 0, 0, 0],
        );
        fill_checksum(&mut b, a6, g);
        b
    };
    let frame = ipv6_raw(group_mac(g), am, a6, g, IpProtocol::ICMPV6, &icmp);
    assert_eq!(run(&table(), &frame).0, Answer::Malformed);
}

#[test]
fn a_solicitation_with_a_long_link_layer_option_is_malformed() {
    let (am, _, a6) = asker();
    let (_, _, t6) = target();
    let g = solicited_node(t6);
    let mut option = vec![1, 2];
    option.extend_from_slice(&am.0);
    option.extend_from_slice(&[0; 8]);
    let mut icmp = icmpv6_bytes(
        a6,
        g,
        &Icmpv6Repr::NeighborSolicit {
            target: t6,
            lladdr: None,
        },
        &option,
    );
    fill_checksum(&mut icmp, a6, g);
    let frame = ipv6_raw(group_mac(g), am, a6, g, IpProtocol::ICMPV6, &icmp);
    assert_eq!(run(&table(), &frame).0, Answer::Malformed);
}

#[test]
fn a_truncated_solicitation_is_malformed() {
    let (am, _, a6) = asker();
    let g = solicited_node(target().2);
    // The ICMPv6 header and half a target.
    let mut icmp = solicit_target()[54..54 + 16].to_vec();
    fill_checksum(&mut icmp, a6, g);
    let frame = ipv6_raw(group_mac(g), am, a6, g, IpProtocol::ICMPV6, &icmp);
    assert_eq!(run(&table(), &frame).0, Answer::Malformed);
}

#[test]
fn a_solicitation_in_a_fragment_is_malformed() {
    // RFC 6980: neighbour discovery is never fragmented.
    let frame = fragmented(&solicit_target(), 0, false);
    assert_eq!(run(&table(), &frame).0, Answer::Malformed);
}

#[test]
fn a_later_fragment_passes() {
    let frame = fragmented(&solicit_target(), 8, false);
    assert_eq!(run(&table(), &frame).0, Answer::Pass);
}

#[test]
fn a_solicitation_behind_a_hop_by_hop_header_is_answered() {
    let frame = with_ext_headers(
        &solicit_target(),
        &[(IpProtocol::HOP_BY_HOP, options_header())],
    );
    let (answer, reply) = run(&table(), &frame);
    assert_eq!(answer, Answer::Reply(NA_REPLY_LEN));
    assert!(read_na_reply(&reply).checksum_ok);
}

#[test]
fn advertisements_and_other_icmpv6_messages_pass() {
    let (tm, _, t6) = target();
    let na = ndp(
        tm,
        t6,
        &Icmpv6Repr::NeighborAdvert {
            flags: NeighborFlags::OVERRIDE,
            target: t6,
            lladdr: Some(tm),
        },
        &[],
    );
    assert_eq!(run(&table(), &na).0, Answer::Pass);
    let rs = ndp(
        asker().0,
        asker().2,
        &Icmpv6Repr::RouterSolicit { lladdr: None },
        &[],
    );
    assert_eq!(run(&table(), &rs).0, Answer::Pass);
    let echo = router_message(asker().0, asker().2, Icmpv6Message::ECHO_REQUEST);
    assert_eq!(run(&table(), &echo).0, Answer::Pass);
}

#[test]
fn ipv6_tcp_and_udp_pass_without_being_read() {
    let (am, _, a6) = asker();
    let g = solicited_node(target().2);
    for proto in [IpProtocol::TCP, IpProtocol::UDP] {
        // An ICMPv6 solicitation's bytes behind a TCP/UDP next header are
        // not a solicitation.
        let payload = solicit_target()[54..].to_vec();
        let frame = ipv6_raw(group_mac(g), am, a6, g, proto, &payload);
        assert_eq!(run(&table(), &frame).0, Answer::Pass);
    }
}

#[test]
fn a_broken_ipv6_header_is_malformed() {
    let mut frame = solicit_target();
    frame[14] = 0x45; // version 4 inside an IPv6 EtherType
    assert_eq!(run(&table(), &frame).0, Answer::Malformed);
    let frame = solicit_target();
    assert_eq!(run(&table(), &frame[..14 + 39]).0, Answer::Malformed);
}

// ---------------------------------------------------------------- framing

#[test]
fn a_priority_tagged_request_is_answered_with_the_same_tag() {
    let t = table();
    for (request, arp_kind) in [
        (tag(&who_has_target(), 5, 0), true),
        (tag(&solicit_target(), 5, 0), false),
    ] {
        let (answer, reply) = run(&t, &request);
        let want = VlanTag {
            pcp: 5,
            dei: false,
            vid: 0,
        };
        if arp_kind {
            assert_eq!(answer, Answer::Reply(ARP_REPLY_LEN + 4));
            let r = read_arp_reply(&reply);
            assert_eq!(r.eth.vlan, Some(want));
            assert_eq!(r.arp.source_protocol_addr, target().1);
        } else {
            assert_eq!(answer, Answer::Reply(NA_REPLY_LEN + 4));
            let r = read_na_reply(&reply);
            assert_eq!(r.eth.vlan, Some(want));
            assert!(r.checksum_ok);
        }
    }
}

#[test]
fn a_request_tagged_for_a_vlan_passes() {
    // The table holds the untagged network's addresses: on VLAN 100 the
    // target may not exist, so the station there answers for itself.
    let t = table();
    assert_eq!(run(&t, &tagged(&who_has_target(), 100)).0, Answer::Pass);
    assert_eq!(run(&t, &tagged(&solicit_target(), 100)).0, Answer::Pass);
}

#[test]
fn a_request_with_stacked_tags_passes() {
    let t = table();
    let double = tagged(&tagged(&who_has_target(), 0), 0);
    assert_eq!(run(&t, &double).0, Answer::Pass);
    let mut qinq = tagged(&who_has_target(), 0);
    qinq[12..14].copy_from_slice(&0x88a8u16.to_be_bytes());
    assert_eq!(run(&t, &qinq).0, Answer::Pass);
}

#[test]
fn a_request_from_a_group_source_mac_passes_to_the_bridge() {
    // The bridge refuses the frame (InvalidSource); it is not ours.
    let mut frame = who_has_target();
    frame[6] |= 0x01;
    assert_eq!(run(&table(), &frame).0, Answer::Pass);
}

#[test]
fn other_frames_and_runts_pass() {
    let t = table();
    let (am, a4, _) = asker();
    assert_eq!(
        run(&t, &ipv4(mac(1, 9), am, a4, target().1)).0,
        Answer::Pass
    );
    assert_eq!(run(&t, &raw(MacAddr::BROADCAST, am)).0, Answer::Pass);
    assert_eq!(run(&t, &who_has_target()[..13]).0, Answer::Pass);
    assert_eq!(run(&t, &[]).0, Answer::Pass);
}

#[test]
fn an_output_buffer_too_short_for_the_reply_passes_untouched_and_is_counted() {
    let t = table();
    let mut out = [0xeeu8; NA_REPLY_LEN - 1];
    assert_eq!(t.answer(SEG, &solicit_target(), &mut out), Answer::Pass);
    let mut small = [0xeeu8; ARP_REPLY_LEN - 1];
    assert_eq!(t.answer(SEG, &who_has_target(), &mut small), Answer::Pass);
    assert!(out.iter().chain(small.iter()).all(|&b| b == 0xee));
    let c = t.counters();
    assert_eq!((c.no_room, c.passed, c.arp_answered), (2, 0, 0));
    // An exact fit is enough.
    let mut exact = [0u8; ARP_REPLY_LEN];
    assert_eq!(
        t.answer(SEG, &who_has_target(), &mut exact),
        Answer::Reply(ARP_REPLY_LEN)
    );
}

#[test]
fn counters_count_each_frame_once_by_outcome_and_serialize() {
    let t = table();
    run(&t, &who_has_target());
    run(&t, &who_has_target());
    run(&t, &solicit_target());
    run(&t, &raw(MacAddr::BROADCAST, asker().0));
    run(&t, &who_has_target()[..20]);
    let c = t.counters();
    assert_eq!(
        c,
        NeighborCounters {
            arp_answered: 2,
            ns_answered: 1,
            passed: 1,
            malformed: 1,
            no_room: 0,
        }
    );
    assert_eq!(c.frames(), 5);
    let json = serde_json::to_value(c).unwrap();
    assert_eq!(json["arp_answered"], 2);
    assert_eq!(json["ns_answered"], 1);
    let back: NeighborCounters = serde_json::from_value(json).unwrap();
    assert_eq!(back, c);
}

#[test]
fn replies_pass_the_bridges_port_security_as_if_the_target_had_sent_them() {
    // The answer speaks for the target exactly as the target may speak
    // for itself: on the target's own endpoint port, the bridge accepts it.
    let mut bridge = Bridge::new(BridgeConfig::default());
    let asker_port = bridge.add_port(endpoint(1, 1));
    let target_port = bridge.add_port(endpoint(1, 9));
    let mut egress = Egress::new();
    for request in [who_has_target(), solicit_target()] {
        let (answer, reply) = run(&table(), &request);
        assert!(matches!(answer, Answer::Reply(_)));
        let d: Decision = bridge.process(Instant::from_secs(1), target_port, &reply, &mut egress);
        assert!(d.is_forwarded(), "{d:?}");
        assert_eq!(egress.ports(), &[asker_port]);
    }
}

// ---------------------------------------------------------------- table

#[test]
fn adding_an_address_again_moves_it_and_returns_the_old_mac() {
    let mut t = table();
    let (tm, t4, _) = target();
    assert_eq!(t.add(SEG, IpAddr::V4(t4), mac(1, 10)), Ok(Some(tm)));
    assert_eq!(t.len(), 2);
    let (_, reply) = run(&t, &who_has_target());
    assert_eq!(read_arp_reply(&reply).arp.source_hardware_addr, mac(1, 10));
}

#[test]
fn the_table_refuses_group_macs_and_addresses_no_station_owns() {
    let mut t = NeighborTable::new(0);
    let v4 = IpAddr::V4(ip4(1, 2));
    assert_eq!(
        t.add(SEG, v4, MacAddr::BROADCAST),
        Err(NeighborError::NotUnicastMac(MacAddr::BROADCAST))
    );
    assert!(matches!(
        t.add(SEG, v4, MacAddr::ZERO),
        Err(NeighborError::NotUnicastMac(_))
    ));
    for ip in [
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "::",
        "ff02::1",
        "::ffff:10.0.1.2",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(
            t.add(SEG, ip, mac(1, 2)),
            Err(NeighborError::NotUnicastIp(ip))
        );
    }
    assert!(t.is_empty());
}

#[test]
fn removing_a_segment_forgets_only_its_entries() {
    let mut t = table();
    t.add(OTHER_SEG, IpAddr::V4(ip4(2, 3)), mac(2, 3)).unwrap();
    assert_eq!(t.remove_segment(SEG), 2);
    assert_eq!(t.len(), 1);
    assert_eq!(t.get(OTHER_SEG, IpAddr::V4(ip4(2, 3))), Some(mac(2, 3)));
    assert_eq!(run(&t, &who_has_target()).0, Answer::Pass);
    assert_eq!(t.remove_segment(SEG), 0);
}

#[test]
fn ipv4_and_ipv6_addresses_with_the_same_bits_are_different_entries() {
    let mut t = NeighborTable::new(0);
    let v4: IpAddr = "10.0.1.2".parse().unwrap();
    let v6: IpAddr = "::a00:102".parse().unwrap();
    t.add(SEG, v4, mac(1, 2)).unwrap();
    t.add(SEG, v6, mac(1, 3)).unwrap();
    assert_eq!(t.get(SEG, v4), Some(mac(1, 2)));
    assert_eq!(t.get(SEG, v6), Some(mac(1, 3)));
}

#[test]
fn entries_are_listed_in_order_whatever_the_seed() {
    let mut lists = Vec::new();
    for seed in [0, 1, u64::MAX] {
        let mut t = NeighborTable::new(seed);
        for n in (1..40).rev() {
            t.add(
                SegmentId(u32::from(n % 3)),
                IpAddr::V6(ip6(1, n)),
                mac(1, n),
            )
            .unwrap();
            t.add(
                SegmentId(u32::from(n % 3)),
                IpAddr::V4(ip4(1, n)),
                mac(1, n),
            )
            .unwrap();
        }
        let list = t.entries();
        let mut sorted = list.clone();
        sorted.sort_by_key(|&(s, ip, _)| (s, matches!(ip, IpAddr::V6(_)), ip));
        assert_eq!(list, sorted);
        lists.push(list);
    }
    assert!(lists.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn the_table_can_be_handed_to_the_data_plane_thread() {
    fn send<T: Send>(t: T) -> T {
        t
    }
    let t = std::thread::spawn(move || send(table())).join().unwrap();
    assert!(matches!(run(&t, &who_has_target()).0, Answer::Reply(_)));
}
