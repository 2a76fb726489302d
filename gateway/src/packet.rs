//! Reading the frames containers send to the gateway, and writing the
//! frames the gateway sends back itself (UDP, echo replies, neighbour
//! solicitations). Every parse is checked: a frame that does not parse is
//! a count, never a panic.

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, UdpPacket,
    UdpRepr,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use switchyard_switch::wire::checksum;
use switchyard_switch::wire::vnet_hdr::Repr as Offload;

const ETH: usize = 14;

/// The pseudo-header sum of a transport segment (the project's shared
/// RFC 1071 code in [`checksum`]).
fn pseudo(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u32 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => checksum::pseudo_header_v4(s, d, proto, len as u16),
        (IpAddr::V6(s), IpAddr::V6(d)) => checksum::pseudo_header_v6(s, d, proto, len as u32),
        _ => 0,
    }
}

/// True when the transport checksum of `segment` (TCP or UDP, with its
/// header) between `src` and `dst` verifies.
pub(crate) fn transport_checksum_ok(src: IpAddr, dst: IpAddr, proto: u8, segment: &[u8]) -> bool {
    checksum::combine(&[
        pseudo(src, dst, proto, segment.len()),
        checksum::sum(segment),
    ]) == 0xffff
}

/// The IP layer of a frame: where its transport starts and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IpView {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// Offset of the transport header in the frame.
    pub l4: usize,
    /// End of the IP packet in the frame (frames may carry padding).
    pub end: usize,
}

/// Parses the IP header of an IPv4 or IPv6 frame (no IPv6 extension
/// headers: the gateway relays none).
pub(crate) fn ip_view(frame: &[u8]) -> Option<IpView> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(&frame[ETH..]).ok()?;
            if !ip.verify_checksum() || ip.more_frags() || ip.frag_offset() != 0 {
                return None;
            }
            Some(IpView {
                src: IpAddr::V4(ip.src_addr()),
                dst: IpAddr::V4(ip.dst_addr()),
                proto: ip.next_header().into(),
                l4: ETH + usize::from(ip.header_len()),
                end: ETH + usize::from(ip.total_len()),
            })
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(&frame[ETH..]).ok()?;
            Some(IpView {
                src: IpAddr::V6(ip.src_addr()),
                dst: IpAddr::V6(ip.dst_addr()),
                proto: ip.next_header().into(),
                l4: ETH + 40,
                end: ETH + 40 + usize::from(ip.payload_len()),
            })
        }
        _ => None,
    }
}

/// The ports and flags of a TCP segment at `l4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TcpView {
    pub src_port: u16,
    pub dst_port: u16,
    pub syn: bool,
    pub ack: bool,
    pub rst: bool,
}

pub(crate) fn tcp_view(frame: &[u8], ip: &IpView) -> Option<TcpView> {
    let seg = frame.get(ip.l4..ip.end)?;
    if seg.len() < 20 || usize::from(seg[12] >> 4) * 4 > seg.len() || seg[12] >> 4 < 5 {
        return None;
    }
    let flags = seg[13];
    Some(TcpView {
        src_port: u16::from_be_bytes([seg[0], seg[1]]),
        dst_port: u16::from_be_bytes([seg[2], seg[3]]),
        syn: flags & 0x02 != 0,
        ack: flags & 0x10 != 0,
        rst: flags & 0x04 != 0,
    })
}

/// A UDP datagram at `l4`: ports and payload range.
pub(crate) fn udp_view(frame: &[u8], ip: &IpView) -> Option<(u16, u16, std::ops::Range<usize>)> {
    let seg = frame.get(ip.l4..ip.end)?;
    let udp = UdpPacket::new_checked(seg).ok()?;
    let len = usize::from(udp.len());
    if len < 8 || len > seg.len() {
        return None;
    }
    Some((udp.src_port(), udp.dst_port(), ip.l4 + 8..ip.l4 + len))
}

/// An ICMP or ICMPv6 echo request at `l4`: identifier, sequence, payload.
pub(crate) fn echo_request(
    frame: &[u8],
    ip: &IpView,
) -> Option<(u16, u16, std::ops::Range<usize>)> {
    let seg = frame.get(ip.l4..ip.end)?;
    if seg.len() < 8 {
        return None;
    }
    let want = if ip.src.is_ipv4() { 8 } else { 128 };
    if seg[0] != want || seg[1] != 0 {
        return None;
    }
    let ok = if ip.src.is_ipv4() {
        checksum::sum(seg) == 0xffff
    } else {
        transport_checksum_ok(ip.src, ip.dst, 58, seg)
    };
    if !ok {
        return None;
    }
    Some((
        u16::from_be_bytes([seg[4], seg[5]]),
        u16::from_be_bytes([seg[6], seg[7]]),
        ip.l4 + 8..ip.end,
    ))
}

/// Marks a TCP segment the stack made for the kernel behind a TAP: the
/// checksum field gets the pseudo-header sum and the offload header says
/// where to finish it; a segment longer than `gso_size` is marked for
/// segmentation. Other frames go as they are.
pub(crate) fn offload_tcp(frame: &mut [u8], gso_size: Option<u16>) -> Offload {
    let Some(ip) = ip_view(frame) else {
        return Offload::NONE;
    };
    if ip.proto != 6 || ip.end > frame.len() || ip.end < ip.l4 + 20 {
        return Offload::NONE;
    }
    let seg_len = ip.end - ip.l4;
    let sum = pseudo(ip.src, ip.dst, 6, seg_len) as u16;
    frame[ip.l4 + 16..ip.l4 + 18].copy_from_slice(&sum.to_be_bytes());
    let header = usize::from(frame[ip.l4 + 12] >> 4) * 4;
    let mut offload = Offload {
        needs_csum: true,
        csum_start: ip.l4 as u16,
        csum_offset: 16,
        hdr_len: (ip.l4 + header) as u16,
        ..Offload::NONE
    };
    if let Some(size) = gso_size {
        if seg_len - header > usize::from(size) {
            offload.gso = crate::device::tcp_gso(ip.src.is_ipv6());
            offload.gso_size = size;
        }
    }
    offload
}

fn eth_header(buf: &mut Vec<u8>, src: [u8; 6], dst: [u8; 6], ethertype: EthernetProtocol) {
    buf.resize(ETH, 0);
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr: EthernetAddress(src),
        dst_addr: EthernetAddress(dst),
        ethertype,
    }
    .emit(&mut eth);
}

/// Appends an IP header for `payload_len` bytes of `proto` to `buf`
/// (which holds the Ethernet header).
fn ip_header(buf: &mut Vec<u8>, src: IpAddr, dst: IpAddr, proto: IpProtocol, payload_len: usize) {
    let caps = ChecksumCapabilities::default();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let at = buf.len();
            buf.resize(at + 20 + payload_len, 0);
            let repr = Ipv4Repr {
                src_addr: s,
                dst_addr: d,
                next_header: proto,
                payload_len,
                hop_limit: 64,
            };
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[at..]), &caps);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let at = buf.len();
            buf.resize(at + 40 + payload_len, 0);
            let repr = Ipv6Repr {
                src_addr: s,
                dst_addr: d,
                next_header: proto,
                payload_len,
                hop_limit: 64,
            };
            repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[at..]));
        }
        _ => unreachable!("callers pair addresses of one family"),
    }
}

fn ethertype_of(ip: IpAddr) -> EthernetProtocol {
    if ip.is_ipv4() {
        EthernetProtocol::Ipv4
    } else {
        EthernetProtocol::Ipv6
    }
}

fn ip_len(ip: IpAddr) -> usize {
    if ip.is_ipv4() {
        20
    } else {
        40
    }
}

/// Writes a UDP datagram from `src` to `dst` into `buf`, checksummed.
pub(crate) fn build_udp(
    buf: &mut Vec<u8>,
    macs: ([u8; 6], [u8; 6]),
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
) {
    eth_header(buf, macs.0, macs.1, ethertype_of(src.ip()));
    ip_header(buf, src.ip(), dst.ip(), IpProtocol::Udp, 8 + payload.len());
    let at = ETH + ip_len(src.ip());
    let mut udp = UdpPacket::new_unchecked(&mut buf[at..]);
    UdpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
    }
    .emit(
        &mut udp,
        &IpAddress::from(src.ip()),
        &IpAddress::from(dst.ip()),
        payload.len(),
        |p| p.copy_from_slice(payload),
        &ChecksumCapabilities::default(),
    );
}

/// Writes an echo reply from `src` to `dst` into `buf`, checksummed.
pub(crate) fn build_echo_reply(
    buf: &mut Vec<u8>,
    macs: ([u8; 6], [u8; 6]),
    src: IpAddr,
    dst: IpAddr,
    ident: u16,
    seq: u16,
    payload: &[u8],
) {
    eth_header(buf, macs.0, macs.1, ethertype_of(src));
    let (proto, kind) = if src.is_ipv4() {
        (IpProtocol::Icmp, 0u8)
    } else {
        (IpProtocol::Icmpv6, 129u8)
    };
    ip_header(buf, src, dst, proto, 8 + payload.len());
    let at = ETH + ip_len(src);
    let seg = &mut buf[at..];
    seg[0] = kind;
    seg[1] = 0;
    seg[2..4].copy_from_slice(&[0, 0]);
    seg[4..6].copy_from_slice(&ident.to_be_bytes());
    seg[6..8].copy_from_slice(&seq.to_be_bytes());
    seg[8..].copy_from_slice(payload);
    let acc = if src.is_ipv4() {
        checksum::sum(seg)
    } else {
        checksum::combine(&[pseudo(src, dst, 58, seg.len()), checksum::sum(seg)])
    };
    let c = checksum::finish(acc);
    seg[2..4].copy_from_slice(&c.to_be_bytes());
}

/// Writes a broadcast ARP request for `target` into `buf`.
pub(crate) fn build_arp_request(buf: &mut Vec<u8>, mac: [u8; 6], own: Ipv4Addr, target: Ipv4Addr) {
    eth_header(buf, mac, [0xff; 6], EthernetProtocol::Arp);
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(mac),
        source_protocol_addr: own,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    buf.resize(ETH + repr.buffer_len(), 0);
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[ETH..]));
}

/// Writes a neighbour solicitation for `target` into `buf`, to its
/// solicited-node multicast group.
pub(crate) fn build_neighbor_solicit(
    buf: &mut Vec<u8>,
    mac: [u8; 6],
    own: Ipv6Addr,
    target: Ipv6Addr,
) {
    let t = target.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    let g = group.octets();
    let dst_mac = [0x33, 0x33, g[12], g[13], g[14], g[15]];
    eth_header(buf, mac, dst_mac, EthernetProtocol::Ipv6);
    // type 135, code 0, checksum, reserved, target, source link-layer option
    let body_len = 8 + 16 + 8;
    let at = buf.len();
    ip_header(
        buf,
        IpAddr::V6(own),
        IpAddr::V6(group),
        IpProtocol::Icmpv6,
        body_len,
    );
    buf[at + 7] = 255; // hop limit of neighbour discovery
    let seg_at = ETH + 40;
    let seg = &mut buf[seg_at..];
    seg[0] = 135;
    seg[8..24].copy_from_slice(&t);
    seg[24] = 1;
    seg[25] = 1;
    seg[26..32].copy_from_slice(&mac);
    let c = checksum::finish(checksum::combine(&[
        pseudo(IpAddr::V6(own), IpAddr::V6(group), 58, body_len),
        checksum::sum(seg),
    ]));
    seg[2..4].copy_from_slice(&c.to_be_bytes());
}

/// What an ARP frame says: (operation is request, sender MAC, sender IP,
/// target IP).
pub(crate) fn arp_view(frame: &[u8]) -> Option<(bool, [u8; 6], Ipv4Addr, Ipv4Addr)> {
    let packet = ArpPacket::new_checked(frame.get(ETH..)?).ok()?;
    match ArpRepr::parse(&packet).ok()? {
        ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        } => Some((
            operation == ArpOperation::Request,
            source_hardware_addr.0,
            source_protocol_addr,
            target_protocol_addr,
        )),
        _ => None,
    }
}

/// The target of a neighbour solicitation or advertisement (ICMPv6 type
/// 135 or 136), if the frame is one.
pub(crate) fn ndp_target(frame: &[u8], ip: &IpView) -> Option<(u8, Ipv6Addr)> {
    let seg = frame.get(ip.l4..ip.end)?;
    if seg.len() < 24 || !(seg[0] == 135 || seg[0] == 136) {
        return None;
    }
    let mut t = [0u8; 16];
    t.copy_from_slice(&seg[8..24]);
    Some((seg[0], Ipv6Addr::from(t)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_built_udp_datagram_parses_back_and_verifies() {
        let mut buf = Vec::new();
        let src: SocketAddr = "93.184.216.34:53".parse().unwrap();
        let dst: SocketAddr = "172.18.0.2:40000".parse().unwrap();
        build_udp(&mut buf, ([2; 6], [4; 6]), src, dst, b"hello");
        let ip = ip_view(&buf).expect("ip");
        assert_eq!((ip.src, ip.dst, ip.proto), (src.ip(), dst.ip(), 17));
        let (sp, dp, range) = udp_view(&buf, &ip).expect("udp");
        assert_eq!((sp, dp, &buf[range]), (53, 40000, &b"hello"[..]));
        assert!(transport_checksum_ok(
            ip.src,
            ip.dst,
            17,
            &buf[ip.l4..ip.end]
        ));
        buf[ip.end - 1] ^= 1;
        assert!(!transport_checksum_ok(
            ip.src,
            ip.dst,
            17,
            &buf[ip.l4..ip.end]
        ));
    }

    #[test]
    fn echo_replies_of_both_families_verify() {
        for (s, d) in [("10.0.0.1", "10.0.0.2"), ("fd00::1", "fd00::2")] {
            let (s, d): (IpAddr, IpAddr) = (s.parse().unwrap(), d.parse().unwrap());
            let mut buf = Vec::new();
            build_echo_reply(&mut buf, ([2; 6], [4; 6]), s, d, 7, 9, b"abc");
            let ip = ip_view(&buf).unwrap();
            let seg = &buf[ip.l4..ip.end];
            let ok = if s.is_ipv4() {
                checksum::sum(seg) == 0xffff
            } else {
                transport_checksum_ok(s, d, 58, seg)
            };
            assert!(ok, "{s}");
            assert_eq!(&seg[4..8], &[0, 7, 0, 9]);
        }
    }

    proptest! {
        #[test]
        fn no_frame_makes_a_parser_panic(frame in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Some(ip) = ip_view(&frame) {
                let _ = tcp_view(&frame, &ip);
                let _ = udp_view(&frame, &ip);
                let _ = echo_request(&frame, &ip);
                let _ = ndp_target(&frame, &ip);
            }
            let _ = arp_view(&frame);
            let mut f = frame.clone();
            let _ = offload_tcp(&mut f, Some(1460));
        }
    }
}
