//! Builders of neighbour-discovery requests and readers of the replies
//! the neighbour table writes, shared by its rule and property tests.
//! Readers use the library's wire modules and fail on anything a valid
//! reply would not be.
#![allow(dead_code)]

use super::bridge_support::{icmpv6_bytes, ipv6_raw, solicited_node};
use std::net::Ipv6Addr;
use switchyard_switch::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, EthernetRepr, Icmpv6Packet,
    Icmpv6Repr, IpProtocol, Ipv6Packet, Ipv6Repr, VlanTag,
};
use switchyard_switch::MacAddr;

/// The Ethernet group an IPv6 multicast group maps to, written out
/// independently of the library's helper.
pub fn group_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// A Neighbor Solicitation for `target` from (`src`, `src_ip`), to the
/// target's solicited-node group, hop limit 255.
pub fn ns(src: MacAddr, src_ip: Ipv6Addr, target: Ipv6Addr, lladdr: Option<MacAddr>) -> Vec<u8> {
    let g = solicited_node(target);
    ns_to(group_mac(g), g, src, src_ip, target, lladdr, 255)
}

/// A Neighbor Solicitation with every address and the hop limit chosen.
pub fn ns_to(
    dst: MacAddr,
    dst_ip: Ipv6Addr,
    src: MacAddr,
    src_ip: Ipv6Addr,
    target: Ipv6Addr,
    lladdr: Option<MacAddr>,
    hop_limit: u8,
) -> Vec<u8> {
    let icmp = icmpv6_bytes(
        src_ip,
        dst_ip,
        &Icmpv6Repr::NeighborSolicit { target, lladdr },
        &[],
    );
    let mut frame = ipv6_raw(dst, src, src_ip, dst_ip, IpProtocol::ICMPV6, &icmp);
    frame[14 + 7] = hop_limit;
    frame
}

/// Sets the ICMPv6 checksum of `icmp` for (`src`, `dst`).
pub fn fill_checksum(icmp: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
    Icmpv6Packet::new_unchecked(icmp).fill_checksum(src, dst);
}

/// Recomputes the checksum of the ICMPv6 message right behind the IPv6
/// header of an untagged frame.
pub fn refill_icmpv6_checksum(frame: &mut [u8]) {
    let (src, dst, len) = {
        let ip = Ipv6Packet::new_checked(&frame[14..]).unwrap();
        (ip.src_addr(), ip.dst_addr(), usize::from(ip.payload_len()))
    };
    fill_checksum(&mut frame[54..54 + len], src, dst);
}

/// Overwrites the operation of an untagged ARP frame.
pub fn set_arp_operation(frame: &mut [u8], op: u16) {
    frame[14 + 6..14 + 8].copy_from_slice(&op.to_be_bytes());
}

/// The same frame with an 802.1Q tag of priority `pcp` and VLAN `vid`.
pub fn tag(frame: &[u8], pcp: u8, vid: u16) -> Vec<u8> {
    let mut out = frame[..12].to_vec();
    out.extend_from_slice(&0x8100u16.to_be_bytes());
    let tci = VlanTag {
        pcp,
        dei: false,
        vid,
    }
    .to_tci();
    out.extend_from_slice(&tci.to_be_bytes());
    out.extend_from_slice(&frame[12..]);
    out
}

/// An ARP reply as read back.
#[derive(Debug)]
pub struct ArpReply {
    pub eth: EthernetRepr,
    pub arp: ArpRepr,
}

/// Reads `reply` as an ARP reply frame of exactly the ARP length, or
/// says why it is not one.
pub fn try_read_arp_reply(reply: &[u8]) -> Result<ArpReply, String> {
    let frame = EthernetFrame::new_checked(reply).map_err(|e| e.to_string())?;
    let eth = EthernetRepr::parse(&frame).map_err(|e| e.to_string())?;
    if eth.ethertype != EtherType::ARP {
        return Err(format!("EtherType {}", eth.ethertype));
    }
    let payload = frame.payload();
    if payload.len() != 28 {
        return Err(format!("ARP payload of {} bytes", payload.len()));
    }
    let arp = ArpRepr::parse(&ArpPacket::new_checked(payload).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    if arp.operation != ArpOperation::Reply {
        return Err(format!("operation {}", arp.operation));
    }
    if arp.source_hardware_addr != eth.src_addr || !eth.src_addr.is_unicast() {
        return Err("sender hardware address is not the unicast Ethernet source".into());
    }
    Ok(ArpReply { eth, arp })
}

/// [`try_read_arp_reply`], panicking with the reason.
pub fn read_arp_reply(reply: &[u8]) -> ArpReply {
    try_read_arp_reply(reply).unwrap_or_else(|e| panic!("not an ARP reply: {e}: {reply:02x?}"))
}

/// A Neighbor Advertisement as read back.
#[derive(Debug)]
pub struct NaReply {
    pub eth: EthernetRepr,
    pub ip: Ipv6Repr,
    pub icmp: Icmpv6Repr,
    pub code: u8,
    pub checksum_ok: bool,
}

/// Reads `reply` as a Neighbor Advertisement frame (IPv6 right behind
/// the Ethernet header, no trailing bytes), or says why it is not one.
/// The checksum is reported, not required.
pub fn try_read_na_reply(reply: &[u8]) -> Result<NaReply, String> {
    let frame = EthernetFrame::new_checked(reply).map_err(|e| e.to_string())?;
    let eth = EthernetRepr::parse(&frame).map_err(|e| e.to_string())?;
    if eth.ethertype != EtherType::IPV6 {
        return Err(format!("EtherType {}", eth.ethertype));
    }
    let payload = frame.payload();
    let packet = Ipv6Packet::new_checked(payload).map_err(|e| e.to_string())?;
    let ip = Ipv6Repr::parse(&packet).map_err(|e| e.to_string())?;
    if ip.next_header != IpProtocol::ICMPV6 || 40 + ip.payload_len != payload.len() {
        return Err("not a bare ICMPv6 packet filling the frame".into());
    }
    let message = packet.payload();
    let icmp_packet = Icmpv6Packet::new_checked(message).map_err(|e| e.to_string())?;
    let icmp = Icmpv6Repr::parse(&icmp_packet).map_err(|e| e.to_string())?;
    if !matches!(icmp, Icmpv6Repr::NeighborAdvert { .. }) {
        return Err(format!("{icmp:?}"));
    }
    Ok(NaReply {
        eth,
        ip,
        icmp,
        code: icmp_packet.msg_code(),
        checksum_ok: icmp_packet.verify_checksum(ip.src_addr, ip.dst_addr),
    })
}

/// [`try_read_na_reply`], panicking with the reason.
pub fn read_na_reply(reply: &[u8]) -> NaReply {
    try_read_na_reply(reply).unwrap_or_else(|e| panic!("not an advertisement: {e}: {reply:02x?}"))
}
