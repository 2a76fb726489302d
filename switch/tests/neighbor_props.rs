//! Property tests of ARP and neighbour-solicitation suppression: a reply to
//! any valid request for a known target is a valid reply that mirrors the
//! request; no bytes make the table panic or write anything but a valid
//! reply from a programmed entry; the table agrees with a plain model.

mod bridge_support;
mod neighbor_support;

use bridge_support::{arp, lla};
use neighbor_support::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use switchyard_switch::neighbor::MAX_REPLY_LEN;
use switchyard_switch::wire::{Icmpv6Repr, NeighborFlags, VlanTag};
use switchyard_switch::{Answer, MacAddr, NeighborTable, SegmentId};

fn unicast_mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr::local_from_bytes)
}

fn station_v4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>()
        .prop_map(Ipv4Addr::from)
        .prop_filter("a station address", |a| {
            !(a.is_unspecified() || a.is_multicast() || a.is_broadcast())
        })
}

fn station_v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>()
        .prop_map(Ipv6Addr::from)
        .prop_filter("a station address", |a| {
            !(a.is_unspecified() || a.is_multicast() || a.to_ipv4_mapped().is_some())
        })
}

/// No tag, or a priority tag with this PCP.
fn priority() -> impl Strategy<Value = Option<u8>> {
    prop::option::of(0u8..8)
}

fn with_priority(frame: Vec<u8>, pcp: Option<u8>) -> Vec<u8> {
    match pcp {
        Some(p) => tag(&frame, p, 0),
        None => frame,
    }
}

fn expected_tag(pcp: Option<u8>) -> Option<VlanTag> {
    pcp.map(|pcp| VlanTag {
        pcp,
        dei: false,
        vid: 0,
    })
}

/// Checks that `reply` is a valid ARP reply or Neighbor Advertisement
/// from an entry of `table` on `segment`.
fn check_reply(table: &NeighborTable, segment: SegmentId, reply: &[u8]) -> Result<(), String> {
    if let Ok(r) = try_read_arp_reply(reply) {
        let known = table.get(segment, IpAddr::V4(r.arp.source_protocol_addr));
        if known != Some(r.eth.src_addr) {
            return Err(format!("ARP reply for {known:?}"));
        }
        if r.eth.vlan.is_some_and(|t| t.vid != 0) {
            return Err("tagged ARP reply".into());
        }
        return Ok(());
    }
    let r = try_read_na_reply(reply)?;
    let Icmpv6Repr::NeighborAdvert {
        flags,
        target,
        lladdr,
    } = r.icmp
    else {
        return Err("not an advertisement".into());
    };
    if !r.checksum_ok || r.code != 0 || r.ip.hop_limit != 255 {
        return Err(format!("invalid NA: {r:?}"));
    }
    if flags.contains(NeighborFlags::OVERRIDE) || flags.contains(NeighborFlags::ROUTER) {
        return Err(format!("flags {flags:?}"));
    }
    let known = table.get(segment, IpAddr::V6(target));
    if known.is_none() || known != Some(r.eth.src_addr) || lladdr != known {
        return Err(format!("NA for {known:?}: {r:?}"));
    }
    if r.ip.src_addr != target || r.eth.vlan.is_some_and(|t| t.vid != 0) {
        return Err(format!("{r:?}"));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_reply_to_any_valid_arp_request_for_a_known_target_mirrors_it(
        segment in any::<u32>(),
        target_ip in station_v4(),
        target_mac in unicast_mac(),
        asker in unicast_mac(),
        spa in any::<u32>().prop_map(Ipv4Addr::from),
        unicast in any::<bool>(),
        pcp in priority(),
        seed in any::<u64>(),
    ) {
        prop_assume!(asker != target_mac && spa != target_ip);
        let segment = SegmentId(segment);
        let mut table = NeighborTable::new(seed);
        table.add(segment, IpAddr::V4(target_ip), target_mac).unwrap();
        let dst = if unicast { target_mac } else { MacAddr::BROADCAST };
        let request = with_priority(arp(dst, asker, asker, spa, target_ip), pcp);
        let mut out = [0u8; MAX_REPLY_LEN];
        let answer = table.answer(segment, &request, &mut out);
        let Answer::Reply(len) = answer else {
            return Err(TestCaseError::fail(format!("{answer:?}")));
        };
        let r = try_read_arp_reply(&out[..len]).map_err(TestCaseError::fail)?;
        prop_assert_eq!(r.eth.src_addr, target_mac);
        prop_assert_eq!(r.eth.dst_addr, asker);
        prop_assert_eq!(r.eth.vlan, expected_tag(pcp));
        prop_assert_eq!(r.arp.source_hardware_addr, target_mac);
        prop_assert_eq!(r.arp.source_protocol_addr, target_ip);
        prop_assert_eq!(r.arp.target_hardware_addr, asker);
        prop_assert_eq!(r.arp.target_protocol_addr, spa);
        prop_assert_eq!(table.counters().arp_answered, 1);
    }

    #[test]
    fn a_reply_to_any_valid_solicitation_for_a_known_target_mirrors_it(
        segment in any::<u32>(),
        target in station_v6(),
        target_mac in unicast_mac(),
        asker in unicast_mac(),
        global_src in station_v6(),
        source in 0u8..3,
        with_option in any::<bool>(),
        unicast in any::<bool>(),
        pcp in priority(),
        seed in any::<u64>(),
    ) {
        prop_assume!(asker != target_mac);
        let segment = SegmentId(segment);
        let mut table = NeighborTable::new(seed);
        table.add(segment, IpAddr::V6(target), target_mac).unwrap();
        let src = match source {
            0 => Ipv6Addr::UNSPECIFIED,
            1 => lla(asker),
            _ => global_src,
        };
        let dad = src.is_unspecified();
        // A probe from `::` goes to the group and carries no option.
        let lladdr = (with_option && !dad).then_some(asker);
        let request = if unicast && !dad {
            ns_to(target_mac, target, asker, src, target, lladdr, 255)
        } else {
            ns(asker, src, target, lladdr)
        };
        let request = with_priority(request, pcp);
        let mut out = [0u8; MAX_REPLY_LEN];
        let answer = table.answer(segment, &request, &mut out);
        let Answer::Reply(len) = answer else {
            return Err(TestCaseError::fail(format!("{answer:?}")));
        };
        let r = try_read_na_reply(&out[..len]).map_err(TestCaseError::fail)?;
        let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        prop_assert!(r.checksum_ok);
        prop_assert_eq!(r.code, 0);
        prop_assert_eq!(r.ip.hop_limit, 255);
        prop_assert_eq!(r.eth.src_addr, target_mac);
        prop_assert_eq!(r.eth.vlan, expected_tag(pcp));
        prop_assert_eq!(r.ip.src_addr, target);
        if dad {
            prop_assert_eq!(r.eth.dst_addr, group_mac(all_nodes));
            prop_assert_eq!(r.ip.dst_addr, all_nodes);
        } else {
            prop_assert_eq!(r.eth.dst_addr, asker);
            prop_assert_eq!(r.ip.dst_addr, src);
        }
        let flags = if dad { NeighborFlags::NONE } else { NeighborFlags::SOLICITED };
        prop_assert_eq!(
            r.icmp,
            Icmpv6Repr::NeighborAdvert { flags, target, lladdr: Some(target_mac) }
        );
        prop_assert_eq!(table.counters().ns_answered, 1);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_make_an_invalid_reply(
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..160), 1..16),
    ) {
        let table = fixture();
        let mut out = [0u8; MAX_REPLY_LEN];
        for frame in &frames {
            if let Answer::Reply(len) = table.answer(FIXTURE_SEG, frame, &mut out) {
                prop_assert!(len <= MAX_REPLY_LEN);
                check_reply(&table, FIXTURE_SEG, &out[..len]).map_err(TestCaseError::fail)?;
            }
        }
        prop_assert_eq!(table.counters().frames(), frames.len() as u64);
    }

    #[test]
    fn damaged_requests_never_panic_and_never_make_an_invalid_reply(
        which in 0usize..4,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let table = fixture();
        let mut frame = fixture_requests().swap_remove(which);
        for (at, byte) in &edits {
            let i = at.index(frame.len());
            frame[i] = *byte;
        }
        if truncate {
            frame.truncate(cut.index(frame.len() + 1));
        }
        let mut out = [0u8; MAX_REPLY_LEN];
        if let Answer::Reply(len) = table.answer(FIXTURE_SEG, &frame, &mut out) {
            check_reply(&table, FIXTURE_SEG, &out[..len]).map_err(TestCaseError::fail)?;
        }
        prop_assert_eq!(table.counters().frames(), 1);
    }

    #[test]
    fn the_table_agrees_with_a_map(
        ops in prop::collection::vec((0u8..4, 0u32..3, 0u8..6, any::<bool>(), 1u8..5), 0..64),
        seed in any::<u64>(),
    ) {
        let mut table = NeighborTable::new(seed);
        let mut model: BTreeMap<(u32, bool, IpAddr), MacAddr> = BTreeMap::new();
        let ip = |n: u8, v6: bool| -> IpAddr {
            if v6 {
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(n) + 1))
            } else {
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, n + 1))
            }
        };
        for (op, seg, n, v6, m) in ops {
            let addr = ip(n, v6);
            let mac = MacAddr([2, 0, 0, 0, 0, m]);
            let key = (seg, v6, addr);
            match op {
                0 | 1 => {
                    let before = table.add(SegmentId(seg), addr, mac).unwrap();
                    prop_assert_eq!(before, model.insert(key, mac));
                }
                2 => prop_assert_eq!(table.remove(SegmentId(seg), addr), model.remove(&key)),
                _ => {
                    let gone = model.keys().filter(|k| k.0 == seg).count();
                    model.retain(|k, _| k.0 != seg);
                    prop_assert_eq!(table.remove_segment(SegmentId(seg)), gone);
                }
            }
            prop_assert_eq!(table.len(), model.len());
        }
        for seg in 0..3 {
            for n in 0..6 {
                for v6 in [false, true] {
                    let addr = ip(n, v6);
                    prop_assert_eq!(
                        table.get(SegmentId(seg), addr),
                        model.get(&(seg, v6, addr)).copied()
                    );
                }
            }
        }
        let listed: Vec<_> = model.iter().map(|(&(s, _, ip), &m)| (SegmentId(s), ip, m)).collect();
        prop_assert_eq!(table.entries(), listed);
    }
}

const FIXTURE_SEG: SegmentId = SegmentId(3);

/// A table with a few IPv4 and IPv6 entries, in the fuzzed segment and
/// another.
fn fixture() -> NeighborTable {
    let mut t = NeighborTable::new(11);
    for n in 1..5u8 {
        let m = MacAddr([0x02, 0x42, 0, 0, 3, n]);
        t.add(FIXTURE_SEG, IpAddr::V4(Ipv4Addr::new(10, 0, 3, n)), m)
            .unwrap();
        t.add(
            FIXTURE_SEG,
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 3, 0, 0, 0, u16::from(n))),
            m,
        )
        .unwrap();
        t.add(SegmentId(4), IpAddr::V4(Ipv4Addr::new(10, 0, 4, n)), m)
            .unwrap();
    }
    t
}

/// Valid requests the fixture answers: ARP, tagged ARP, NS, DAD.
fn fixture_requests() -> Vec<Vec<u8>> {
    let asker = MacAddr([0x02, 0x42, 0, 0, 3, 0x77]);
    let a4 = Ipv4Addr::new(10, 0, 3, 0x77);
    let t4 = Ipv4Addr::new(10, 0, 3, 2);
    let t6 = Ipv6Addr::new(0xfd00, 0, 0, 3, 0, 0, 0, 2);
    vec![
        arp(MacAddr::BROADCAST, asker, asker, a4, t4),
        tag(&arp(MacAddr::BROADCAST, asker, asker, a4, t4), 3, 0),
        ns(asker, lla(asker), t6, Some(asker)),
        ns(asker, Ipv6Addr::UNSPECIFIED, t6, None),
    ]
}

#[test]
fn the_fixture_requests_are_all_answered() {
    // The damaged-request property starts from requests that work.
    let table = fixture();
    let mut out = [0u8; MAX_REPLY_LEN];
    for frame in fixture_requests() {
        assert!(matches!(
            table.answer(FIXTURE_SEG, &frame, &mut out),
            Answer::Reply(_)
        ));
    }
}
