//! ARP / neighbour-solicitation suppression on arbitrary frames: it never
//! panics, counts every frame once, and any reply it writes is a valid ARP
//! reply or Neighbor Advertisement (checksum, hop limit 255, Override
//! clear) from a programmed entry, no longer than MAX_REPLY_LEN.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use switchyard_switch::neighbor::MAX_REPLY_LEN;
use switchyard_switch::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, Icmpv6Packet, Icmpv6Repr,
    IpProtocol, Ipv6Packet, NeighborFlags,
};
use switchyard_switch::{Answer, MacAddr, NeighborTable, SegmentId};

const SEG: SegmentId = SegmentId(1);

fn table() -> NeighborTable {
    let mut t = NeighborTable::new(5);
    for n in 1..4u8 {
        let mac = MacAddr([0x02, 0x42, 0, 0, 1, n]);
        t.add(SEG, IpAddr::V4(Ipv4Addr::new(10, 0, 1, n)), mac)
            .unwrap();
        t.add(
            SEG,
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, u16::from(n))),
            mac,
        )
        .unwrap();
    }
    t
}

fuzz_target!(|data: &[u8]| {
    let table = table();
    let mut out = [0u8; MAX_REPLY_LEN];
    let answer = table.answer(SEG, data, &mut out);
    assert_eq!(table.counters().frames(), 1);
    let Answer::Reply(len) = answer else {
        return;
    };
    assert!(len <= MAX_REPLY_LEN);
    let reply = &out[..len];
    let eth = EthernetFrame::new_checked(reply).unwrap();
    let src = eth.src_addr();
    assert!(src.is_unicast());
    assert!(eth.vlan_tag().is_none_or(|t| t.vid == 0));
    let payload = eth.payload();
    match eth.inner_ethertype() {
        EtherType::ARP => {
            let arp = ArpRepr::parse(&ArpPacket::new_checked(payload).unwrap()).unwrap();
            assert_eq!(payload.len(), 28);
            assert_eq!(arp.operation, ArpOperation::Reply);
            assert_eq!(arp.source_hardware_addr, src);
            assert_eq!(
                table.get(SEG, IpAddr::V4(arp.source_protocol_addr)),
                Some(src)
            );
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(payload).unwrap();
            assert_eq!(ip.hop_limit(), 255);
            assert_eq!(ip.next_header(), IpProtocol::ICMPV6);
            assert_eq!(40 + usize::from(ip.payload_len()), payload.len());
            let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
            assert!(icmp.verify_checksum(ip.src_addr(), ip.dst_addr()));
            let Icmpv6Repr::NeighborAdvert {
                flags,
                target,
                lladdr,
            } = Icmpv6Repr::parse(&icmp).unwrap()
            else {
                panic!("a reply that is not an advertisement");
            };
            assert!(!flags.contains(NeighborFlags::OVERRIDE));
            assert_eq!(ip.src_addr(), target);
            assert_eq!(lladdr, Some(src));
            assert_eq!(table.get(SEG, IpAddr::V6(target)), Some(src));
        }
        other => panic!("a reply of EtherType {other}"),
    }
});
