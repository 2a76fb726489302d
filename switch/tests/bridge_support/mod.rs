//! Frame and topology builders shared by the bridge tests, so each test
//! reads as the behaviour it pins down.
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};
use switchyard_switch::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, EthernetRepr, IpProtocol,
    Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, VlanTag,
};
use switchyard_switch::{MacAddr, PortBinding, PortConfig, SegmentId};

/// The minimum Ethernet frame without FCS.
pub const MIN_FRAME: usize = 60;

/// A station's MAC in segment `seg`, number `n`.
pub fn mac(seg: u8, n: u8) -> MacAddr {
    MacAddr([0x02, 0x42, 0x0a, 0x00, seg, n])
}

/// A station's IPv4 address in segment `seg`, number `n`.
pub fn ip4(seg: u8, n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, seg, n)
}

/// A station's global IPv6 address in segment `seg`, number `n`.
pub fn ip6(seg: u8, n: u8) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, u16::from(seg), 0, 0, 0, u16::from(n))
}

/// An endpoint port for station (seg, n) with IPv4 and IPv6 addresses.
pub fn endpoint(seg: u8, n: u8) -> PortConfig {
    PortConfig {
        segment: SegmentId(u32::from(seg)),
        binding: PortBinding::Endpoint {
            mac: mac(seg, n),
            ipv4: Some(ip4(seg, n)),
            ipv6: Some(ip6(seg, n)),
        },
        label: format!("c{seg}-{n}/eth0"),
    }
}

/// A trunk port in segment `seg`.
pub fn trunk(seg: u32) -> PortConfig {
    PortConfig {
        segment: SegmentId(seg),
        binding: PortBinding::Trunk,
        label: format!("trunk{seg}"),
    }
}

/// An Ethernet frame with `payload`, padded to the 60-byte minimum.
pub fn eth(dst: MacAddr, src: MacAddr, ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
    let repr = EthernetRepr {
        src_addr: src,
        dst_addr: dst,
        vlan: None,
        ethertype,
    };
    let mut buf = vec![0u8; (repr.header_len() + payload.len()).max(MIN_FRAME)];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    repr.emit(&mut frame);
    frame.payload_mut()[..payload.len()].copy_from_slice(payload);
    buf
}

/// An opaque frame (local experimental EtherType), 60 bytes.
pub fn raw(dst: MacAddr, src: MacAddr) -> Vec<u8> {
    eth(dst, src, EtherType(0x88b5), &[0xab; 8])
}

/// An IPv4/UDP-ish packet's header and 8 payload bytes.
pub fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::UDP,
        payload_len: 8,
        hop_limit: 64,
    };
    let mut buf = vec![0u8; 28];
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
    buf
}

/// A 60-byte IPv4 frame.
pub fn ipv4(dst: MacAddr, src: MacAddr, src_ip: Ipv4Addr, dst_ip: Ipv4Addr) -> Vec<u8> {
    eth(dst, src, EtherType::IPV4, &ipv4_packet(src_ip, dst_ip))
}

/// An ARP frame with the given sender addresses.
pub fn arp(dst: MacAddr, src: MacAddr, sha: MacAddr, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    let repr = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: sha,
        source_protocol_addr: spa,
        target_hardware_addr: MacAddr::ZERO,
        target_protocol_addr: tpa,
    };
    let mut buf = vec![0u8; 28];
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
    eth(dst, src, EtherType::ARP, &buf)
}

/// An IPv6 frame from `src_ip`.
pub fn ipv6(dst: MacAddr, src: MacAddr, src_ip: Ipv6Addr) -> Vec<u8> {
    let repr = Ipv6Repr {
        src_addr: src_ip,
        dst_addr: "ff02::1".parse().unwrap(),
        next_header: IpProtocol::ICMPV6,
        payload_len: 8,
        hop_limit: 255,
    };
    let mut buf = vec![0u8; 48];
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
    eth(dst, src, EtherType::IPV6, &buf)
}

/// The same frame with an 802.1Q tag (VID `vid`) inserted after the MACs.
pub fn tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&frame[..12]);
    out.extend_from_slice(&0x8100u16.to_be_bytes());
    out.extend_from_slice(
        &VlanTag {
            pcp: 0,
            dei: false,
            vid,
        }
        .to_tci()
        .to_be_bytes(),
    );
    out.extend_from_slice(&frame[12..]);
    out
}
