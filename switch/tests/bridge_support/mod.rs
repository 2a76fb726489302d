//! Frame and topology builders shared by the bridge tests, so each test
//! reads as the behaviour it pins down.
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};
use switchyard_switch::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, EthernetRepr, Icmpv6Message,
    Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6FragmentHeader,
    Ipv6FragmentRepr, Ipv6Packet, Ipv6Repr, VlanTag,
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
        mtu: PortConfig::DEFAULT_MTU,
        horizon: None,
    }
}

/// A trunk port in segment `seg`.
pub fn trunk(seg: u32) -> PortConfig {
    PortConfig {
        segment: SegmentId(seg),
        binding: PortBinding::Trunk,
        label: format!("trunk{seg}"),
        mtu: PortConfig::DEFAULT_MTU,
        horizon: None,
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

/// The link-local address Linux derives from `mac` (modified EUI-64),
/// written out independently of the library's helper.
pub fn lla(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 0x02,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// The solicited-node multicast address of `target` (ff02::1:ffXX:XXXX).
pub fn solicited_node(target: Ipv6Addr) -> Ipv6Addr {
    let o = target.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// An IPv6 frame carrying `payload` after `next_header`, hop limit 255.
pub fn ipv6_raw(
    dst: MacAddr,
    src: MacAddr,
    src_ip: Ipv6Addr,
    dst_ip: Ipv6Addr,
    next_header: IpProtocol,
    payload: &[u8],
) -> Vec<u8> {
    let repr = Ipv6Repr {
        src_addr: src_ip,
        dst_addr: dst_ip,
        next_header,
        payload_len: payload.len(),
        hop_limit: 255,
    };
    let mut buf = vec![0u8; 40 + payload.len()];
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
    buf[40..].copy_from_slice(payload);
    eth(dst, src, EtherType::IPV6, &buf)
}

/// An ICMPv6 message as `repr` writes it, plus `body` (the rest of an
/// `Other` message), with a correct checksum.
pub fn icmpv6_bytes(src_ip: Ipv6Addr, dst_ip: Ipv6Addr, repr: &Icmpv6Repr, body: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; repr.buffer_len() + body.len()];
    let mut p = Icmpv6Packet::new_unchecked(&mut buf[..]);
    repr.emit(&mut p);
    let header = repr.buffer_len();
    buf[header..].copy_from_slice(body);
    Icmpv6Packet::new_unchecked(&mut buf[..]).fill_checksum(src_ip, dst_ip);
    buf
}

/// A neighbour discovery (or any ICMPv6) frame, sent to the multicast
/// group a host would use: the solicited-node group of an NS target,
/// all-nodes for the rest.
pub fn ndp(src: MacAddr, src_ip: Ipv6Addr, repr: &Icmpv6Repr, body: &[u8]) -> Vec<u8> {
    let dst_ip = match repr {
        Icmpv6Repr::NeighborSolicit { target, .. } => solicited_node(*target),
        Icmpv6Repr::RouterSolicit { .. } => "ff02::2".parse().unwrap(),
        _ => "ff02::1".parse().unwrap(),
    };
    let o = dst_ip.octets();
    let dst = MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]]);
    let icmp = icmpv6_bytes(src_ip, dst_ip, repr, body);
    ipv6_raw(dst, src, src_ip, dst_ip, IpProtocol::ICMPV6, &icmp)
}

/// A Router Advertisement or Redirect (or any other `Other` message) with
/// a zeroed body of the fixed size its type needs.
pub fn router_message(src: MacAddr, src_ip: Ipv6Addr, msg: Icmpv6Message) -> Vec<u8> {
    let body = vec![0u8; msg.ndisc_fixed_len().unwrap_or(8) - 4];
    ndp(
        src,
        src_ip,
        &Icmpv6Repr::Other {
            msg_type: msg,
            code: 0,
        },
        &body,
    )
}

/// The same IPv6 frame with `headers` (next header, bytes) inserted between
/// the fixed header and its payload; each header's first byte is set to the
/// next one's type and the payload length grows to match.
pub fn with_ext_headers(frame: &[u8], headers: &[(IpProtocol, Vec<u8>)]) -> Vec<u8> {
    let ip_at = 14;
    let ip = Ipv6Packet::new_checked(&frame[ip_at..]).unwrap();
    let payload = ip.payload().to_vec();
    let mut next = ip.next_header();
    let mut chain = Vec::new();
    for (kind, bytes) in headers.iter().rev() {
        let mut h = bytes.clone();
        h[0] = next.0;
        h.extend_from_slice(&chain);
        chain = h;
        next = *kind;
    }
    chain.extend_from_slice(&payload);
    let mut header = frame[ip_at..ip_at + 40].to_vec();
    let mut p = Ipv6Packet::new_unchecked(&mut header[..]);
    p.set_next_header(next);
    p.set_payload_len(chain.len() as u16);
    header.extend_from_slice(&chain);
    let mut out = frame[..ip_at].to_vec();
    out.extend_from_slice(&header);
    out.resize(out.len().max(MIN_FRAME), 0);
    out
}

/// An 8-byte Hop-by-Hop / Destination Options header holding PadN.
pub fn options_header() -> Vec<u8> {
    vec![0, 0, 1, 4, 0, 0, 0, 0]
}

/// The same IPv6 frame with a Fragment header (offset in bytes, M flag)
/// in front of its payload. What follows is not cut: a test frame stands
/// for whichever fragment the header says it is.
pub fn fragmented(frame: &[u8], offset: u16, more: bool) -> Vec<u8> {
    let mut h = vec![0u8; 8];
    Ipv6FragmentRepr {
        next_header: IpProtocol(0),
        offset,
        more_fragments: more,
        ident: 0x1234_5678,
    }
    .emit(&mut Ipv6FragmentHeader::new_unchecked(&mut h[..]));
    with_ext_headers(frame, &[(IpProtocol::IPV6_FRAG, h)])
}
