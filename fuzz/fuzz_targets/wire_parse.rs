//! Every wire view on arbitrary bytes: checked constructors either refuse
//! or yield views whose getters and `Repr::parse` never panic, and what
//! parses re-emits to something that parses the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_switch::wire::ipv6::header_chain;
use switchyard_switch::wire::{
    ArpPacket, ArpRepr, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr,
    Ipv6FragmentHeader, Ipv6FragmentRepr, Ipv6Packet, Ipv6Repr, UdpPacket, UdpRepr, VnetHdrRepr,
    VnetHeader, VxlanHeader, VxlanRepr,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = EthernetFrame::new_checked(data) {
        let _ = (
            f.dst_addr(),
            f.src_addr(),
            f.ethertype(),
            f.tci(),
            f.vlan_tag(),
            f.inner_ethertype(),
        );
        let payload = f.payload();
        assert_eq!(payload.len() + f.header_len(), data.len());
        let repr = EthernetRepr::parse(&f).expect("checked frames parse");
        let mut buf = data.to_vec();
        repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        assert_eq!(
            EthernetRepr::parse(&EthernetFrame::new_checked(&buf[..]).unwrap()).unwrap(),
            repr
        );
    }
    if let Ok(p) = ArpPacket::new_checked(data) {
        let repr = ArpRepr::parse(&p).expect("checked ARP parses");
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()).unwrap(),
            repr
        );
    }
    if let Ok(p) = Ipv4Packet::new_checked(data) {
        let _ = (
            p.dscp(),
            p.ecn(),
            p.ident(),
            p.dont_frag(),
            p.more_frags(),
            p.frag_offset(),
            p.payload(),
        );
        if let Ok(repr) = Ipv4Repr::parse(&p) {
            let mut buf = vec![0u8; repr.buffer_len() + repr.payload_len];
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
            assert_eq!(
                Ipv4Repr::parse(&Ipv4Packet::new_checked(&buf[..]).unwrap()).unwrap(),
                repr
            );
        }
    }
    if let Ok(p) = Ipv6Packet::new_checked(data) {
        let _ = (p.traffic_class(), p.flow_label(), p.payload());
        if let Ok(chain) = header_chain(p.next_header(), p.payload(), 8) {
            assert!(chain.payload.len() <= p.payload().len());
        }
        let repr = Ipv6Repr::parse(&p).expect("checked IPv6 parses");
        let mut buf = vec![0u8; repr.buffer_len() + repr.payload_len];
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
        assert_eq!(
            Ipv6Repr::parse(&Ipv6Packet::new_checked(&buf[..]).unwrap()).unwrap(),
            repr
        );
    }
    if let Some((&next, rest)) = data.split_first() {
        // Any bytes as an extension header chain: bounded, no panic.
        let _ = header_chain(IpProtocol(next), rest, 8);
    }
    if let Ok(h) = Ipv6FragmentHeader::new_checked(data) {
        let repr = Ipv6FragmentRepr::parse(&h).expect("checked fragment header parses");
        let _ = h.payload();
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Ipv6FragmentHeader::new_unchecked(&mut buf[..]));
        assert_eq!(
            Ipv6FragmentRepr::parse(&Ipv6FragmentHeader::new_checked(&buf[..]).unwrap()).unwrap(),
            repr
        );
    }
    if let Ok(p) = UdpPacket::new_checked(data) {
        let _ = (
            p.payload(),
            p.verify_checksum_v4([1, 2, 3, 4].into(), [5, 6, 7, 8].into()),
        );
        let repr = UdpRepr::parse(&p).expect("checked UDP parses");
        let mut buf = vec![0u8; repr.buffer_len() + repr.payload_len];
        repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]));
        assert_eq!(
            UdpRepr::parse(&UdpPacket::new_checked(&buf[..]).unwrap()).unwrap(),
            repr
        );
    }
    if let Ok(h) = VxlanHeader::new_checked(data) {
        let repr = VxlanRepr::parse(&h).expect("checked VXLAN parses");
        let _ = h.payload();
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut VxlanHeader::new_unchecked(&mut buf[..]));
        assert_eq!(
            VxlanRepr::parse(&VxlanHeader::new_checked(&buf[..]).unwrap()).unwrap(),
            repr
        );
    }
    if let Ok(h) = VnetHeader::new_checked(data) {
        let _ = h.payload();
        if let Ok(repr) = VnetHdrRepr::parse(&h) {
            let _ = repr.check_frame_len(h.payload().len());
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut VnetHeader::new_unchecked(&mut buf[..]));
            assert_eq!(
                VnetHdrRepr::parse(&VnetHeader::new_checked(&buf[..]).unwrap()).unwrap(),
                repr
            );
        }
    }
});
