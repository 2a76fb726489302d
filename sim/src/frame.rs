//! Frames in flight: shared, immutable bytes with their content hash
//! computed once, so a flood to many ports copies a pointer, and a short
//! one-line description for reports (`ARP who-has 10.0.0.3 tell 10.0.0.2`).

use crate::digest::hash_bytes;
use smoltcp::wire::{
    ArpOperation, ArpPacket, EthernetFrame, EthernetProtocol, Icmpv4Message, Icmpv4Packet,
    IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket,
};
use std::fmt::Write as _;
use std::sync::Arc;
use switchyard_switch::MacAddr;

/// An Ethernet frame travelling through the simulated world. Cloning is a
/// reference-count increment; the bytes never change once built (corruption
/// makes a new frame).
#[derive(Clone, Debug)]
pub(crate) struct Frame(Arc<FrameBuf>);

#[derive(Debug)]
struct FrameBuf {
    bytes: Vec<u8>,
    hash: u64,
}

impl Frame {
    /// Wraps bytes, hashing them once.
    pub(crate) fn new(bytes: Vec<u8>) -> Frame {
        let hash = hash_bytes(&bytes);
        Frame(Arc::new(FrameBuf { bytes, hash }))
    }

    /// The bytes.
    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0.bytes
    }

    /// Length in bytes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.0.bytes.len()
    }

    /// The content hash (for the digest).
    #[inline]
    pub(crate) fn hash(&self) -> u64 {
        self.0.hash
    }
}

impl std::ops::Deref for Frame {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

/// A one-line, tcpdump-like summary of an Ethernet frame; never panics.
pub fn describe(bytes: &[u8]) -> String {
    let mut out = String::new();
    let Ok(eth) = EthernetFrame::new_checked(bytes) else {
        let _ = write!(out, "runt frame of {} bytes", bytes.len());
        return out;
    };
    let _ = write!(
        out,
        "{} > {} ",
        MacAddr(eth.src_addr().0),
        MacAddr(eth.dst_addr().0)
    );
    match eth.ethertype() {
        EthernetProtocol::Arp => describe_arp(eth.payload(), &mut out),
        EthernetProtocol::Ipv4 => describe_ipv4(eth.payload(), &mut out),
        EthernetProtocol::Ipv6 => match Ipv6Packet::new_checked(eth.payload()) {
            Ok(ip) => {
                let _ = write!(
                    out,
                    "IPv6 {} > {} {}",
                    ip.src_addr(),
                    ip.dst_addr(),
                    ip.next_header()
                );
            }
            Err(_) => out.push_str("IPv6 (truncated)"),
        },
        other => {
            let _ = write!(out, "ethertype {other}");
        }
    }
    out
}

fn describe_arp(payload: &[u8], out: &mut String) {
    let Ok(arp) = ArpPacket::new_checked(payload) else {
        out.push_str("ARP (truncated)");
        return;
    };
    let ip = |b: &[u8]| {
        if b.len() == 4 {
            std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()
        } else {
            "?".to_string()
        }
    };
    match arp.operation() {
        ArpOperation::Request => {
            let _ = write!(
                out,
                "ARP who-has {} tell {}",
                ip(arp.target_protocol_addr()),
                ip(arp.source_protocol_addr())
            );
        }
        ArpOperation::Reply => {
            let mac = arp.source_hardware_addr();
            let _ = write!(out, "ARP {} is-at ", ip(arp.source_protocol_addr()));
            for (i, b) in mac.iter().enumerate() {
                let _ = write!(out, "{}{b:02x}", if i == 0 { "" } else { ":" });
            }
        }
        ArpOperation::Unknown(op) => {
            let _ = write!(out, "ARP op {op}");
        }
    }
}

fn describe_ipv4(payload: &[u8], out: &mut String) {
    let Ok(ip) = Ipv4Packet::new_checked(payload) else {
        out.push_str("IPv4 (truncated)");
        return;
    };
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let body = ip.payload();
    match ip.next_header() {
        IpProtocol::Icmp => match Icmpv4Packet::new_checked(body) {
            Ok(icmp) => {
                let _ = write!(out, "IPv4 {src} > {dst} ICMP ");
                match icmp.msg_type() {
                    Icmpv4Message::EchoRequest => {
                        let _ = write!(
                            out,
                            "echo request id {} seq {}",
                            icmp.echo_ident(),
                            icmp.echo_seq_no()
                        );
                    }
                    Icmpv4Message::EchoReply => {
                        let _ = write!(
                            out,
                            "echo reply id {} seq {}",
                            icmp.echo_ident(),
                            icmp.echo_seq_no()
                        );
                    }
                    other => {
                        let _ = write!(out, "{other}");
                    }
                }
            }
            Err(_) => {
                let _ = write!(out, "IPv4 {src} > {dst} ICMP (truncated)");
            }
        },
        IpProtocol::Udp => match UdpPacket::new_checked(body) {
            Ok(udp) => {
                let _ = write!(
                    out,
                    "IPv4 {src}:{} > {dst}:{} UDP len {}",
                    udp.src_port(),
                    udp.dst_port(),
                    udp.payload().len()
                );
            }
            Err(_) => {
                let _ = write!(out, "IPv4 {src} > {dst} UDP (truncated)");
            }
        },
        IpProtocol::Tcp => match TcpPacket::new_checked(body) {
            Ok(tcp) => {
                let mut flags = String::new();
                for (set, c) in [
                    (tcp.syn(), 'S'),
                    (tcp.fin(), 'F'),
                    (tcp.rst(), 'R'),
                    (tcp.psh(), 'P'),
                    (tcp.ack(), '.'),
                ] {
                    if set {
                        flags.push(c);
                    }
                }
                let _ = write!(
                    out,
                    "IPv4 {src}:{} > {dst}:{} TCP [{flags}] seq {} ack {} len {}",
                    tcp.src_port(),
                    tcp.dst_port(),
                    tcp.seq_number().0 as u32,
                    tcp.ack_number().0 as u32,
                    tcp.payload().len()
                );
            }
            Err(_) => {
                let _ = write!(out, "IPv4 {src} > {dst} TCP (truncated)");
            }
        },
        other => {
            let _ = write!(out, "IPv4 {src} > {dst} {other}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_an_arp_request() {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[0x02, 0x42, 10, 0, 0, 2]);
        f.extend_from_slice(&[0x08, 0x06]);
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&[0x02, 0x42, 10, 0, 0, 2, 10, 0, 0, 2]);
        f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 0, 3]);
        let d = describe(&f);
        assert!(d.contains("ARP who-has 10.0.0.3 tell 10.0.0.2"), "{d}");
    }

    #[test]
    fn runt_frames_are_described_not_panicked_on() {
        assert_eq!(describe(&[1, 2, 3]), "runt frame of 3 bytes");
    }
}
